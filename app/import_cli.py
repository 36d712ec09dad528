"""`hearth import PATH|REPO [--file NAME]` and `hearth convert REPO`: from where Llama 2 really is
(GGUF files, old MLX uploads, Hugging Face fp16 weights) to a model Hearth runs.

Each shows a progress bar on stderr and ends with one line on stdout: the name that `hearth chat`,
`generate` and `prompt` take. Ctrl-C cancels a conversion (nothing is kept) or pauses a download.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from engine.convert.common import ConversionCancelled, ConversionProgress
from engine.errors import HearthError
from engine.library import library
from engine.library.downloads import DownloadJob
from engine.model_folder import REPO_ID_RE

from .models_cli import _follow


def add_import_parsers(commands: argparse._SubParsersAction) -> None:
    imp = commands.add_parser("import", help="add a model: a folder (mlx-lm or old MLX layout), a .gguf "
                                             "file, or a Hub repo to download first")
    imp.add_argument("path", nargs="?", help="folder, .gguf file, or Hugging Face repo id")
    imp.add_argument("--found", action="store_true",
                     help="list GGUF models Ollama and LM Studio already downloaded, to import")
    imp.add_argument("--file", help="with a repo: the one file to fetch (e.g. a GGUF quantization)")
    imp.add_argument("--name", help="name for the imported model (default: from the source)")
    imp.add_argument("--keep-download", action="store_true",
                     help="keep the downloaded source in the Hugging Face cache after converting")
    imp.set_defaults(handler=_import)

    convert = commands.add_parser("convert", help="download Hugging Face fp16/bf16 weights and quantize them")
    convert.add_argument("repo")
    convert.add_argument("--bits", type=int, default=4)
    convert.add_argument("--group-size", type=int, default=64)
    convert.add_argument("--name")
    convert.add_argument("--keep-download", action="store_true")
    convert.set_defaults(handler=_convert)


def _import(args: argparse.Namespace) -> int:
    if args.found:
        return _list_found()
    if not args.path:
        raise HearthError("Give a folder, a .gguf file or a repo id to import (or --found).")
    source = Path(args.path).expanduser()
    if source.exists():
        print(import_local(source, args.name))
        return 0
    if not REPO_ID_RE.match(args.path):
        raise HearthError(f"{args.path} is neither a file, a folder nor a Hugging Face repo id.")
    files = [args.file] if args.file else _old_layout_files(args.path)
    folder = _download(args.path, files)
    if files is None:  # already an mlx-lm model: it stays in the cache, under its repo id
        print(args.path)
        return 0
    local = folder / args.file if args.file else folder
    name = import_local(local, args.name or (Path(args.file).stem if args.file else args.path.split("/")[-1]))
    if not args.keep_download:
        library.remove(args.path)
    print(name)
    return 0


def import_local(source: Path, name: str | None) -> str:
    """A model from a local file or folder; its name for `hearth chat`."""
    if source.is_file():
        from engine.convert.discover import is_gguf

        if not is_gguf(source):  # Ollama's blobs have no .gguf suffix: go by the file's magic
            raise HearthError(f"{source.name} is not a GGUF file; give a GGUF file or a model folder.")
        from engine.convert.gguf_import import import_gguf

        return _run_conversion(import_gguf, source, name).name
    if (source / "weights.npz").exists():
        from engine.convert.old_mlx import convert_old_mlx

        return _run_conversion(convert_old_mlx, source, name).name
    return library.import_folder(source).ref


def _list_found() -> int:
    from engine.convert.discover import find_models

    found = find_models()
    if not found:
        print("No Ollama or LM Studio models were found on this machine.", file=sys.stderr)
    for model in found:
        print(f"{model.app}: {model.name} ({model.size_bytes / 1e9:.2f} GB)\n"
              f"    hearth import {model.path} --name {model.name}")
    return 0


def _old_layout_files(repo_id: str) -> list[str] | None:
    """Files to fetch from a repo to import: all of an old-layout upload's, or the model's."""
    from engine.library import downloads, hub

    info = hub.call(lambda api: api.model_info(repo_id, files_metadata=True), what=f"looking up {repo_id}",
                    repo_id=repo_id)
    names = {s.rfilename for s in info.siblings or []}
    if "weights.npz" in names:
        return [n for n in ("weights.npz", "config.json", "tokenizer.model") if n in names]
    ggufs = sorted(n for n in names if n.endswith(".gguf"))
    if ggufs:
        raise HearthError(f"{repo_id} holds several GGUF files; pick one with --file (e.g. "
                          f"{next((g for g in ggufs if 'Q4_0' in g), ggufs[0])}).")
    downloads.choose_files(repo_id, [downloads._remote(s) for s in info.siblings or []])
    return None


def _convert(args: argparse.Namespace) -> int:
    from engine.convert.hf_quantize import quantize_hf

    folder = _download(args.repo, None)
    name = args.name or f"{args.repo.split('/')[-1]}-{args.bits}bit"
    result = _run_conversion(lambda src, nm, **kw: quantize_hf(src, nm, bits=args.bits,
                                                               group_size=args.group_size, **kw), folder, name)
    if not args.keep_download:
        library.remove(args.repo)
    print(result.name)
    return 0


def _download(repo_id: str, files: list[str] | None) -> Path:
    events: queue.Queue = queue.Queue()
    job = DownloadJob(repo_id, files=files, on_event=events.put)
    threading.Thread(target=job.run, name="hearth-download", daemon=True).start()
    done = _follow(job, events)
    sys.stderr.write("\n")
    if done.status == "paused":
        raise KeyboardInterrupt
    if done.status != "complete" or not done.path:
        raise HearthError(done.error or f"download {done.status}")
    return Path(done.path)


def _run_conversion(convert: Callable, source: Path, name: str | None) -> Path:
    """Run a conversion with a progress line; Ctrl-C cancels it cleanly (nothing is kept)."""
    cancel = threading.Event()
    result: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            result.put(("ok", convert(source, name, on_progress=_progress_line, cancel=cancel)))
        except BaseException as exc:  # handed to the main thread
            result.put(("error", exc))

    worker = threading.Thread(target=work, name="hearth-convert", daemon=True)
    worker.start()
    while True:
        try:
            kind, value = result.get(timeout=0.2)
            break
        except queue.Empty:
            continue
        except KeyboardInterrupt:
            cancel.set()
    sys.stderr.write("\n")
    if kind == "error":
        if isinstance(value, ConversionCancelled):
            raise KeyboardInterrupt from value
        raise value
    return Path(value)


def _progress_line(progress: ConversionProgress) -> None:
    share = f"{100 * progress.done // progress.total}%" if progress.total else ""
    line = f"{progress.stage:<12} {share:>4} {progress.message}"
    sys.stderr.write("\r" + line[:150].ljust(150))
    sys.stderr.flush()
