"""Getting a model: one pipeline for every way a model arrives.

A catalog entry, a Hub repo id (with or without one file of it), a GGUF file (Ollama's and LM Studio's
included), an old MLX folder (weights.npz), a Hugging Face fp16/bf16 folder or repo to quantize, or an
mlx-lm folder all go through the same steps: fetch (verified, resumable download), convert, validate,
register. Each step reports progress; cancelling pauses a download (its bytes stay for a resume) or
ends a conversion with nothing kept. The terminal (`hearth import`, `hearth convert`) and every door
of the app (through that same command in a child process) call `acquire`.

Two processes asking for the same model never write the same files: the second waits for the
first (saying so), then finds the model there.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .. import paths
from ..errors import HearthError
from ..model_folder import REPO_ID_RE, validate_folder

# Files of an old-layout MLX upload (mlx-examples): what engine.convert.old_mlx reads.
OLD_MLX_FILES = ["weights.npz", "config.json", "tokenizer.model"]
SOURCE_RECORD = "hearth-source.json"  # in a converted folder: what it was made from


class AcquireError(HearthError):
    pass


@dataclass(frozen=True)
class Request:
    """What to get. `where` is a repo id ("org/name") or a local path (file or folder)."""

    where: str
    file: str | None = None  # with a repo: the one file to fetch (a GGUF quantization)
    name: str | None = None  # the converted model's name (default: from the source)
    quantize: bool = False  # fp16/bf16 weights -> `bits`-bit MLX (hearth convert)
    bits: int = 4
    group_size: int = 64
    keep_download: bool = False  # keep a converted source in the Hugging Face cache

    @property
    def is_repo(self) -> bool:
        return not Path(self.where).expanduser().exists() and bool(REPO_ID_RE.match(self.where))

    @property
    def label(self) -> str:
        """How lists and messages name this request."""
        base = self.where if self.is_repo else Path(self.where).name
        return f"{base} · {self.file}" if self.file else base

    @property
    def key(self) -> str:
        """Same request, same key: two processes getting it share one lock."""
        text = json.dumps([self.where if self.is_repo else str(Path(self.where).expanduser().resolve()),
                           self.file, self.quantize, self.bits, self.group_size], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def arguments(self) -> list[str]:
        """The `hearth` command line that runs this request (for a child process)."""
        if self.quantize:
            args = ["convert", self.where, "--bits", str(self.bits), "--group-size", str(self.group_size)]
        else:
            args = ["import", self.where] + (["--file", self.file] if self.file else [])
        if self.name:
            args += ["--name", self.name]
        return args + (["--keep-download"] if self.keep_download else [])


def request_for_catalog(entry) -> Request:
    """A catalog entry (engine.library.catalog.CatalogEntry) as a request."""
    if entry.source == "gguf":
        return Request(entry.repo_id, file=entry.file, name=_stem(entry.file) if entry.file else None)
    if entry.source == "hf":
        return Request(entry.repo_id, quantize=True)
    return Request(entry.repo_id)


@dataclass(frozen=True)
class Unquantized:
    """A local folder of 16- or 32-bit weights: it runs as it is, or can be quantized first."""

    path: Path
    weight_bytes: int
    parameters: int

    def quantized_bytes(self, bits: int = 4, group_size: int = 64) -> int:
        # bits per weight, plus a float16 scale and bias per group
        return int(self.parameters * (bits + 32 / group_size) / 8)


def unquantized_folder(path: Path) -> Unquantized | None:
    """The folder's size and parameter count when it is a valid model with unquantized weights
    (a Hugging Face fp16/bf16 download), else None. Reads headers only."""
    path = Path(path).expanduser()
    if not path.is_dir() or (path / "weights.npz").exists():
        return None
    try:
        info = validate_folder(path)
    except HearthError:
        return None  # the pipeline will say why, when it is run
    if info.quantization or info.config.get("quantization_config"):
        return None
    return Unquantized(path, info.weight_bytes, info.parameters)


@dataclass(frozen=True)
class Step:
    """Progress of one request: stage is waiting, fetching, converting, validating or registering."""

    stage: str
    done: int = 0
    total: int = 0
    message: str = ""

    def as_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class Acquired:
    ref: str  # what `hearth chat` takes
    path: Path


StepCallback = Callable[[Step], None]


def acquire(request: Request, on_step: StepCallback | None = None,
            cancel: threading.Event | None = None) -> Acquired:
    """Run a request to the end; raises HearthError (specific) or ConversionCancelled / AcquireError
    when cancelled."""
    report = on_step or (lambda step: None)
    cancel = cancel or threading.Event()
    with _exclusive(request, report, cancel):
        done = _already_done(request)
        if done is not None:
            report(Step("registering", 1, 1, f"{done.ref} is already here"))
            return done
        if request.is_repo:
            return _from_repo(request, report, cancel)
        return _from_local(Path(request.where).expanduser(), request, report, cancel)


# --- one process at a time per request ---


class _exclusive:
    """Hold the request's lock; while another process holds it, say so and wait (cancellable)."""

    def __init__(self, request: Request, report: StepCallback, cancel: threading.Event) -> None:
        folder = paths.data_dir() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(folder / f"acquire-{request.key}.lock"))
        self.request, self.report, self.cancel = request, report, cancel

    def __enter__(self) -> None:
        said = False
        while True:
            try:
                self.lock.acquire(timeout=0.25)
                return
            except Timeout:
                if self.cancel.is_set():
                    raise AcquireError(f"Stopped waiting for {self.request.label}.") from None
                if not said:
                    self.report(Step("waiting", 0, 0, f"Another Hearth window or process is getting "
                                                      f"{self.request.label}; waiting for it to finish"))
                    said = True

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def _already_done(request: Request) -> Acquired | None:
    """A model an earlier run of the same request produced (in this process or another)."""
    from ..convert.common import models_dir

    for folder in models_dir().iterdir():
        record = folder / SOURCE_RECORD
        if record.is_file():
            try:
                if json.loads(record.read_text(encoding="utf-8")).get("key") == request.key:
                    validate_folder(folder)
                    return Acquired(folder.name, folder)
            except (OSError, ValueError, HearthError):
                continue
    return None


def _record_source(folder: Path, request: Request) -> None:
    data = {"key": request.key, "where": request.where, "file": request.file, "made_at": time.time()}
    (folder / SOURCE_RECORD).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# --- fetch ---


def _from_repo(request: Request, report: StepCallback, cancel: threading.Event) -> Acquired:
    from . import library

    files = [request.file] if request.file else None if request.quantize else _repo_files(request.where)
    folder = _download(request.where, files, report, cancel)
    if files is None and not request.quantize:  # an mlx-lm model: it stays in the cache, under its id
        report(Step("validating", 0, 1, f"Checking {request.where}"))
        validate_folder(folder, repo_id=request.where)
        report(Step("registering", 1, 1, f"{request.where} is ready"))
        return Acquired(request.where, folder)
    local = folder / request.file if request.file else folder
    result = _from_local(local, request, report, cancel, default_name=_default_name(request))
    if not request.keep_download:
        library.remove(request.where)
    return result


def _repo_files(repo_id: str) -> list[str] | None:
    """Files to fetch: all of an old-layout upload's, or None (the model's own, chosen by the
    download); a repo of GGUF files needs one picked."""
    from . import hub

    info = hub.call(lambda api: api.model_info(repo_id, files_metadata=True), what=f"looking up {repo_id}",
                    repo_id=repo_id)
    names = {s.rfilename for s in info.siblings or []}
    if "weights.npz" in names:
        return [n for n in OLD_MLX_FILES if n in names]
    ggufs = sorted(n for n in names if n.endswith(".gguf"))
    if ggufs and not any(n.endswith(".safetensors") for n in names):
        suggestion = next((g for g in ggufs if "Q4_0" in g), ggufs[0])
        raise AcquireError(f"{repo_id} holds several GGUF files; pick one with --file (e.g. {suggestion}).")
    return None


def _download(repo_id: str, files: list[str] | None, report: StepCallback, cancel: threading.Event) -> Path:
    from .downloads import DownloadProgress, download_repo

    def on_event(event) -> None:
        if isinstance(event, DownloadProgress):
            report(Step("fetching", event.done_bytes, event.total_bytes, _download_message(event)))

    done = download_repo(repo_id, files=files, on_event=on_event, stop=cancel)  # stop pauses: bytes stay
    if done.status == "paused":
        raise AcquireError(f"The download of {repo_id} was paused; run the same request to resume it.")
    if done.status != "complete" or not done.path:
        raise AcquireError(done.error or f"The download of {repo_id} did not finish.")
    return Path(done.path)


def _download_message(event) -> str:
    size = f"{event.done_bytes / 1e6:,.1f} of {event.total_bytes / 1e6:,.1f} MB" if event.total_bytes else ""
    return " ".join(part for part in (event.state, event.file or "", size, event.message) if part)


# --- convert, validate, register ---


def _from_local(source: Path, request: Request, report: StepCallback, cancel: threading.Event,
                default_name: str | None = None) -> Acquired:
    from ..convert.common import ConversionProgress, safe_name
    from ..convert.discover import is_gguf

    def on_progress(progress: ConversionProgress) -> None:
        report(Step("converting", progress.done, progress.total, f"{progress.stage}: {progress.message}".strip(": ")))

    name = request.name or default_name
    if source.is_file():
        if not is_gguf(source):  # Ollama's blobs have no .gguf suffix: go by the file's magic
            raise AcquireError(f"{source.name} is not a GGUF file; give a GGUF file or a model folder.")
        from ..convert.gguf_import import import_gguf

        folder = import_gguf(source, safe_name(name or _stem(source.name)), on_progress=on_progress,
                             cancel=cancel)
    elif not source.is_dir():
        raise AcquireError(f"{source} is neither a file nor a folder.")
    elif (source / "weights.npz").exists():
        from ..convert.old_mlx import convert_old_mlx

        folder = convert_old_mlx(source, name, on_progress=on_progress, cancel=cancel)
    elif request.quantize:
        from ..convert.hf_quantize import quantize_hf

        folder = quantize_hf(source, name or f"{_stem(source.name)}-{request.bits}bit", bits=request.bits,
                             group_size=request.group_size, on_progress=on_progress, cancel=cancel)
    else:
        return _register_folder(source, report)
    report(Step("validating", 0, 1, f"Checking {folder.name}"))
    validate_folder(folder)
    _record_source(folder, request)
    report(Step("registering", 1, 1, f"{folder.name} is ready"))
    return Acquired(folder.name, folder)


def _register_folder(folder: Path, report: StepCallback) -> Acquired:
    """An mlx-lm folder (quantized or not) joins the library where it is; its files stay the user's."""
    from . import library

    report(Step("validating", 0, 1, f"Checking {folder.name}"))
    model = library.import_folder(folder)
    report(Step("registering", 1, 1, f"{model.name} is ready"))
    return Acquired(model.ref, folder.resolve())


def _default_name(request: Request) -> str:
    if request.file:
        return _stem(request.file)
    base = request.where.split("/")[-1]
    return f"{base}-{request.bits}bit" if request.quantize else base


def _stem(file_name: str) -> str:
    name = Path(file_name).name
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name
