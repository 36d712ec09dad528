"""`hearth import PATH|REPO [--file NAME]` and `hearth convert REPO|FOLDER`: any source of a model,
through the one acquisition pipeline (engine.library.acquire) that the app's doors also use.

Each shows progress on stderr and ends with one line on stdout: the name that `hearth chat`,
`generate` and `prompt` take. Ctrl-C cancels a conversion (nothing is kept) or pauses a download.
With `--progress json` (what the app's child process uses) progress and the result are JSON lines.
"""

from __future__ import annotations

import argparse
import gc
import json
import queue
import sys
import threading
import traceback

from engine.convert.common import ConversionCancelled
from engine.errors import HearthError
from engine.library.acquire import Acquired, Request, Step, acquire
from engine.platform import release_thread_streams


def add_import_parsers(commands: argparse._SubParsersAction) -> None:
    imp = commands.add_parser("import", help="add a model: a folder (mlx-lm or old MLX layout), a .gguf "
                                             "file, or a Hub repo to download first")
    imp.add_argument("path", nargs="?", help="folder, .gguf file, or Hugging Face repo id")
    imp.add_argument("--found", action="store_true",
                     help="list GGUF models Ollama and LM Studio already downloaded, to import")
    imp.add_argument("--file", help="with a repo: the one file to fetch (e.g. a GGUF quantization)")
    _common_options(imp)
    imp.set_defaults(handler=_import)

    convert = commands.add_parser("convert", help="quantize Hugging Face fp16/bf16 weights (a repo to "
                                                  "download, or a folder) to MLX")
    convert.add_argument("repo", help="Hugging Face repo id or local folder")
    convert.add_argument("--bits", type=int, default=4)
    convert.add_argument("--group-size", type=int, default=64)
    _common_options(convert)
    convert.set_defaults(handler=_convert)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="name for the converted model (default: from the source)")
    parser.add_argument("--keep-download", action="store_true",
                        help="keep the downloaded source in the Hugging Face cache after converting")
    parser.add_argument("--progress", choices=("bar", "json"), default="bar",
                        help="how progress is shown on stderr (json: one object a line, for programs)")


def _import(args: argparse.Namespace) -> int:
    if args.found:
        return _list_found()
    if not args.path:
        raise HearthError("Give a folder, a .gguf file or a repo id to import (or --found).")
    request = Request(args.path, file=args.file, name=args.name, keep_download=args.keep_download)
    return _run(request, args.progress)


def _convert(args: argparse.Namespace) -> int:
    request = Request(args.repo, name=args.name, quantize=True, bits=args.bits, group_size=args.group_size,
                      keep_download=args.keep_download)
    return _run(request, args.progress)


def _list_found() -> int:
    from engine.convert.discover import find_models

    found = find_models()
    if not found:
        print("No Ollama or LM Studio models were found on this machine.", file=sys.stderr)
    for model in found:
        print(f"{model.app}: {model.name} ({model.size_bytes / 1e9:.2f} GB)\n"
              f"    hearth import {model.path} --name {model.name}")
    return 0


def _run(request: Request, progress: str) -> int:
    """The pipeline on a worker thread; Ctrl-C asks it to stop (a download pauses, a conversion ends
    with nothing kept) and the main thread waits for it to have stopped."""
    show = _json_line if progress == "json" else _progress_line
    cancel = threading.Event()
    outcome: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            outcome.put(("ok", acquire(request, on_step=show, cancel=cancel)))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            _drop_frames(exc)  # their locals hold MLX arrays, which must die on this thread
            outcome.put(("error", exc))
        finally:
            gc.collect()
            release_thread_streams()  # a conversion made MLX streams on this thread

    worker = threading.Thread(target=work, name="hearth-acquire", daemon=True)
    worker.start()
    while worker.is_alive():
        try:
            worker.join(0.2)
        except KeyboardInterrupt:
            cancel.set()
    kind, value = outcome.get()
    if progress == "bar":
        sys.stderr.write("\n")
    if kind == "error":
        if cancel.is_set() and isinstance(value, (ConversionCancelled, HearthError)):
            raise KeyboardInterrupt from value
        raise value
    _print_result(value, progress)
    return 0


def _drop_frames(exc: BaseException | None) -> None:
    """Clear the locals of every frame in an exception's tracebacks (and its causes'), so that
    what a failed or cancelled conversion held is freed now, not when the main thread exits
    (MLX arrays freed after their thread's streams are gone abort the process)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


def _print_result(result: Acquired, progress: str) -> None:
    if progress == "json":
        print(json.dumps({"ref": result.ref, "path": str(result.path)}))
    else:
        print(result.ref)


def _json_line(step: Step) -> None:
    sys.stderr.write(step.as_json() + "\n")
    sys.stderr.flush()


def _progress_line(step: Step) -> None:
    share = f"{100 * step.done // step.total}%" if step.total else ""
    line = f"{step.stage:<12} {share:>4} {step.message}"
    sys.stderr.write("\r" + line[:150].ljust(150))
    sys.stderr.flush()
