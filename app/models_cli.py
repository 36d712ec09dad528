"""`hearth models|catalog|search|download|rm|import|token|default`: the model library in a terminal."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import queue
import signal
import sys
import threading
import time

from engine.errors import HearthError
from engine.library import catalog, library
from engine.library.downloads import (
    DownloadDone,
    DownloadJob,
    DownloadProgress,
    Worker,
    start_worker,
)


def add_model_parsers(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="installed models, with sizes and fit")
    models.set_defaults(handler=_models)

    cat = commands.add_parser("catalog", help="curated models that work with Hearth")
    cat.add_argument("--check", action="store_true", help="check each entry against the Hub (online)")
    cat.set_defaults(handler=_catalog)

    search = commands.add_parser("search", help="search the Hub for mlx-format models (online)")
    search.add_argument("text")
    search.add_argument("--limit", type=int, default=20)
    search.set_defaults(handler=_search)

    download = commands.add_parser("download", help="download a model; Ctrl-C pauses, run again to resume")
    download.add_argument("repo", help="Hugging Face repo id, e.g. mlx-community/Llama-3.2-1B-Instruct-4bit")
    download.add_argument("--revision", default="main")
    download.set_defaults(handler=_download)

    rm = commands.add_parser("rm", help="remove a model (frees its disk space)")
    rm.add_argument("model")
    rm.set_defaults(handler=_rm)

    token = commands.add_parser("token", help="store a Hugging Face token (for gated models)")
    token.add_argument("token", nargs="?", help="the token; asked for (hidden) when left out")
    token.set_defaults(handler=_token)

    default = commands.add_parser("default", help="choose the model `hearth run` starts with")
    default.add_argument("model", nargs="?", help="leave out to show the current default")
    default.set_defaults(handler=_default)


def gb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e9:.2f} GB"


def _params(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def _models(args: argparse.Namespace) -> int:
    models = library.installed_models()
    if not models:
        print("No models yet. `hearth catalog` lists some that work; `hearth download REPO` fetches one.",
              file=sys.stderr)
    for m in models:
        mark = "*" if m.is_default else " "
        if m.usable:
            report = m.fit()
            unverified = "  unverified (no Hub hashes on this computer)" if m.verification == "unverified" else ""
            print(f"{mark} {m.name}  {gb(m.size_bytes)}  {_params(m.parameters)} params  {m.quantization}  "
                  f"{m.context:,} ctx  fit: {report.verdict.replace('_', ' ')}  last used: {_ago(m.last_used)}"
                  f"{unverified}")
        else:
            print(f"{mark} {m.name}  {gb(m.size_bytes)}  NOT USABLE: {m.problem}")
    return 0


def _catalog(args: argparse.Namespace) -> int:
    entries = catalog.load()
    if args.check:
        entries = catalog.check_online(entries)
    for e in entries:
        report = e.fit()
        how = {"mlx": f"hearth download {e.repo_id}",
               "old-mlx": f"hearth import {e.repo_id}",
               "gguf": f"hearth import {e.repo_id} --file {e.file}",
               "hf": f"hearth convert {e.repo_id}"}[e.source]
        state = "" if e.usable else f"  UNUSABLE: {e.problem}"
        gated = "  (gated: needs a token)" if e.gated else ""
        star = "*" if e.recommended else " "
        print(f"{star} {e.name}  [{e.repo_id}]  {gb(e.download_bytes)}  {_params(e.parameters)}  "
              f"{e.context:,} ctx  fit: {report.verdict.replace('_', ' ')} ({report.describe()})  "
              f"{gated}{state}\n    get it: {how}\n    license: {e.license}")
    return 0


def _search(args: argparse.Namespace) -> int:
    results = catalog.search_hub(args.text, limit=args.limit)
    if not results:
        print("No mlx-format models match.", file=sys.stderr)
    for r in results:
        report = r.fit()
        fit_text = report.verdict.replace("_", " ") if report else "unknown"
        print(f"{r.repo_id}  {gb(r.weight_bytes)}  {r.downloads:,} downloads  fit: {fit_text}")
    return 0


def _download(args: argparse.Namespace) -> int:
    events: queue.Queue = queue.Queue()
    job = DownloadJob(args.repo, args.revision, on_event=events.put)
    done = _follow(job, events, start_worker(job))
    sys.stderr.write("\n")
    if done.status == "complete":
        print(args.repo)  # the name `hearth chat` takes
        return 0
    if done.status == "paused":
        print(f"Paused at {_share(done)}; run `hearth download {args.repo}` again to resume.", file=sys.stderr)
        return 130
    raise HearthError(done.error or f"download {done.status}")


@contextlib.contextmanager
def _ctrl_c_pauses(job: DownloadJob):
    """While a download runs, Ctrl-C pauses it (the job then ends with a "paused" event) instead of
    raising KeyboardInterrupt wherever the main thread happens to be; a second Ctrl-C quits at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses: list[bool] = []

    def on_sigint(signum, frame) -> None:
        presses.append(True)
        if len(presses) > 1:
            raise KeyboardInterrupt
        job.pause()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _follow(job: DownloadJob, events: queue.Queue, worker: Worker) -> DownloadDone:
    """Show progress until the job is done; Ctrl-C pauses it (the partial files stay), a second
    Ctrl-C quits at once."""
    with _ctrl_c_pauses(job):
        while True:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if not worker.is_alive() and events.empty():
                    return worker.result  # the worker ended without its last event
                continue
            if isinstance(event, DownloadProgress):
                _bar(event)
            elif isinstance(event, DownloadDone):
                return event


def _share(event) -> str:
    return f"{100 * event.done_bytes // event.total_bytes}%" if event.total_bytes else "0%"


def _bar(p: DownloadProgress) -> None:
    speed = f"{p.speed_bps / 1e6:.1f} MB/s" if p.speed_bps else ""
    eta = f"ETA {int(p.eta_s) // 60}:{int(p.eta_s) % 60:02d}" if p.eta_s is not None else ""
    line = (f"{p.state:<11} {_share(p):>4} {gb(p.done_bytes)} of {gb(p.total_bytes)} {speed} {eta} "
            f"{p.file or ''} {p.message}")
    sys.stderr.write("\r" + line[:150].ljust(150))
    sys.stderr.flush()


def _rm(args: argparse.Namespace) -> int:
    model, freed = library.remove(args.model)
    where = f"; its folder {model.path} was left as it is" if model.kind == "folder" else ""
    print(f"Removed {model.name} ({gb(freed)} freed{where}).", file=sys.stderr)
    return 0


def _token(args: argparse.Namespace) -> int:
    from engine.library import hub

    token = args.token
    if token is None:
        token = getpass.getpass("Hugging Face token: ") if sys.stdin.isatty() else sys.stdin.readline()
    user = hub.save_token(token)
    print(f"Token saved for {user} in {hub.token_path()}.", file=sys.stderr)
    return 0


def _default(args: argparse.Namespace) -> int:
    if args.model:
        library.set_default(args.model)
    current = library.default_model()
    print(current or "No default model.", file=sys.stdout if current else sys.stderr)
    return 0
