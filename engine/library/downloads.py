"""Verified, resumable downloads into the standard Hugging Face cache.

For each file the Hub lists (with its size and, for LFS files, SHA-256), the bytes go through
huggingface_hub's own HTTP download into `blobs/<etag>.incomplete`, hashed as they are written; only a
file whose size and hash match is renamed into place and linked from `snapshots/<commit>/`. The
branch ref is written last, so another tool never sees a half-downloaded snapshot as current, and
Hearth's own record keeps a partial download from being listed as usable. Pausing (or a quit, or a
kill) keeps the partial file, and the next run resumes it with an HTTP Range request. Dropped
connections and 5xx answers are retried with exponential backoff; a silent connection is reported
as stalled and then times out into a retry.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import io
import json
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HearthError
from ..model_folder import hub_cache_dir
from . import hub, hub_cache, state
from .hub import ChecksumMismatch, DiskFull, HubError

# What an mlx-lm model needs; never code, pickles or docs.
MODEL_FILES = (
    "config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "chat_template.jinja", "chat_template.json",
)
PROGRESS_INTERVAL_S = 0.25  # at most four progress events a second
STALL_AFTER_S = 10.0
SPEED_WINDOW_S = 3.0
DISK_MARGIN_BYTES = 200 * 1024**2
MAX_ATTEMPTS = 6
INDEX_FILE = "model.safetensors.index.json"
# huggingface_hub's http_get hands data over in DOWNLOAD_CHUNK_SIZE pieces (10 MiB): nothing is written,
# counted or checked for a pause in between, so at 1 MB/s the stall detector would see 10 s of silence
# and a pause would wait 10 s. Hearth's transfers use pieces of at most this size.
TRANSFER_CHUNK_BYTES = 256 * 1024
BACKGROUND_HASH_BYTES = 16 * 1024 * 1024  # files this large are hashed beside the transfer


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # LFS files
    blob_id: str | None  # git blob sha1 (the etag of non-LFS files)

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id or ""


@dataclass(frozen=True)
class DownloadProgress:
    repo_id: str
    state: str  # checking, downloading, verifying, stalled, retrying
    done_bytes: int
    total_bytes: int
    speed_bps: float = 0.0
    eta_s: float | None = None
    file: str | None = None
    files_done: int = 0
    files_total: int = 0
    message: str = ""


@dataclass(frozen=True)
class DownloadDone:
    repo_id: str
    status: str  # complete, paused, cancelled, failed
    path: str | None = None
    done_bytes: int = 0
    total_bytes: int = 0
    error: str | None = None
    error_kind: str | None = None


class _Stop(Exception):
    """Raised from the byte callback to end a transfer at once (pause or cancel)."""


class DownloadJob:
    """One repo's download. run() blocks (call it on a worker thread); pause() and cancel() work
    from any thread and take effect at the next chunk of data."""

    def __init__(self, repo_id: str, revision: str = "main", *, files: list[str] | None = None,
                 on_event: Callable[[Any], None] = lambda event: None, backoff_s: float = 1.0,
                 max_attempts: int = MAX_ATTEMPTS, stall_after_s: float = STALL_AFTER_S,
                 free_bytes: Callable[[Path], int] | None = None) -> None:
        self.repo_id, self.revision, self.wanted = repo_id, revision, files
        self.on_event = on_event
        self.backoff_s, self.max_attempts, self.stall_after_s = backoff_s, max_attempts, stall_after_s
        self._free_bytes = free_bytes or (lambda path: shutil.disk_usage(path).free)
        self._stop = threading.Event()
        self._stop_kind = ""
        self._lock = threading.Lock()
        self._emit_lock = threading.RLock()  # the worker and the stall watchdog both emit
        self.done_bytes = self.total_bytes = 0
        self.files: list[RemoteFile] = []
        self._current: str | None = None
        self._files_done = 0
        self._last_emit = 0.0
        self._last_bytes_at = time.monotonic()
        self._samples: deque[tuple[float, int]] = deque()
        self._state = "checking"

    # --- control (any thread) ---

    def pause(self) -> None:
        self._request_stop("paused")

    def cancel(self) -> None:
        self._request_stop("cancelled")

    def _request_stop(self, kind: str) -> None:
        with self._lock:
            if not self._stop.is_set():
                self._stop_kind = kind
                self._stop.set()

    # --- the download (worker thread) ---

    def run(self) -> DownloadDone:
        _quiet_hf_logging()
        repo = hub_cache.repo_folder(self.repo_id)
        had_snapshot = (repo / "refs" / "main").exists()
        watchdog = threading.Thread(target=self._watch_for_stalls, daemon=True)
        try:
            self._emit_progress(force=True)
            commit = self._plan(repo)
            watchdog.start()
            self._check_disk(repo)
            self._record("downloading", commit)
            for remote in self.files:
                self._fetch_with_retries(repo, commit, remote)
                self._files_done += 1
            self._finish(repo, commit)
            done = self._done("complete", path=str(repo / "snapshots" / commit))
        except _Stop:
            done = self._stopped(repo, had_snapshot)
        except HearthError as exc:
            done = self._failed(exc)
        except Exception as exc:  # noqa: BLE001 - reported as a clear failure, not a crash
            done = self._failed(hub.translate(exc, what=f"downloading {self.repo_id}", repo_id=self.repo_id))
        finally:
            self._stop.set()  # also ends the watchdog
        self.on_event(done)
        return done

    def _plan(self, repo: Path) -> str:
        info = hub.call(lambda api: api.model_info(self.repo_id, revision=self.revision, files_metadata=True),
                        what=f"looking up {self.repo_id}", repo_id=self.repo_id)
        commit = str(info.sha)
        siblings = [_remote(s) for s in (info.siblings or [])]
        self.files = choose_files(self.repo_id, siblings, self.wanted)
        index = next((f for f in self.files if f.name == INDEX_FILE), None)
        if index is not None and not self.wanted:
            # Read the index first and take only the shards it lists: some uploads hold stray files.
            # It is read into memory, so nothing is written before the free-disk check; the file
            # itself is fetched (and verified) with the others.
            text = _read_blob(repo, index)
            if text is None:
                text = self._retrying(lambda: self._read_small(commit, index))
            self.files = _indexed_shards(self.files, text)
        self.total_bytes = sum(f.size for f in self.files)
        self._check_stop()
        return commit

    def _check_disk(self, repo: Path) -> None:
        blobs = repo / "blobs"
        have = sum(_have_bytes(blobs, f) for f in self.files)
        self.done_bytes = have
        needed = self.total_bytes - have
        existing = next(p for p in (blobs, repo, hub_cache_dir(), Path(hub_cache_dir()).anchor) if Path(p).exists())
        free = self._free_bytes(Path(existing))
        if needed + DISK_MARGIN_BYTES > free:
            raise DiskFull(
                f"Not enough disk space for {self.repo_id}: it needs {_human(needed)} more (plus "
                f"{_human(DISK_MARGIN_BYTES)} to spare) and {_human(free)} are free on {existing}.")

    def _fetch_with_retries(self, repo: Path, commit: str, remote: RemoteFile) -> None:
        self._retrying(lambda: self._fetch(repo, commit, remote))

    def _retrying(self, fn: Callable[[], Any]) -> Any:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except (_Stop, HearthError):
                raise
            except Exception as exc:  # noqa: BLE001 - transient ones are retried below
                if not hub.is_transient(exc) or attempt == self.max_attempts:
                    raise
                delay = min(self.backoff_s * 2 ** (attempt - 1), 60.0)
                self._state = "retrying"
                shown = f"{delay:.0f}" if delay >= 10 else f"{delay:.2g}"
                self._emit_progress(force=True, message=f"{_retry_reason(exc)}; retrying in {shown} s "
                                                        f"(attempt {attempt + 1} of {self.max_attempts})")
                if self._stop.wait(delay):
                    raise _Stop() from exc
        raise AssertionError("unreachable")

    def _read_small(self, commit: str, remote: RemoteFile) -> str:
        """A small file's text, fetched into memory and verified (the shard index)."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers

        url = hf_hub_url(self.repo_id, remote.name, revision=commit, endpoint=hub.endpoint())
        sink = _HashingFile(io.BytesIO(), remote)
        http_get(url, sink, headers=build_hf_headers(token=hub.get_token() or False),
                 expected_size=remote.size, displayed_filename=remote.name, tqdm_class=_NoBar)
        data = sink.raw.getvalue()
        problem = _mismatch(len(data), sink.hexdigest(), remote)
        if problem:
            raise ChecksumMismatch(f"Download of {self.repo_id} failed verification: {problem}. Try again, "
                                   f"and if it repeats the mirror is faulty.")
        return data.decode("utf-8", errors="replace")

    def _fetch(self, repo: Path, commit: str, remote: RemoteFile) -> None:
        blob = repo / "blobs" / remote.etag
        if blob.exists() and blob.stat().st_size != remote.size:
            blob.unlink()  # not the file the Hub lists (a damaged copy): fetch it again
        if not blob.exists():
            self._transfer(repo, commit, remote, blob)
        _link(repo / "snapshots" / commit / remote.name, blob)

    def _transfer(self, repo: Path, commit: str, remote: RemoteFile, blob: Path) -> None:
        from huggingface_hub import hf_hub_url
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers

        blob.parent.mkdir(parents=True, exist_ok=True)
        partial = blob.with_name(blob.name + ".incomplete")
        self._current, self._state = remote.name, "checking"
        url = hf_hub_url(self.repo_id, remote.name, revision=commit, endpoint=hub.endpoint())
        with open(partial, "ab") as raw:
            sink = _HashingFile(raw, remote, background=remote.size >= BACKGROUND_HASH_BYTES)
            try:
                resume = sink.resume_from_disk(partial)
                self._check_stop()
                self._last_bytes_at = time.monotonic()  # re-hashing a partial file is not a stall
                self._state = "downloading"
                with _small_chunks():
                    http_get(url, sink, resume_size=resume,
                             headers=build_hf_headers(token=hub.get_token() or False),
                             expected_size=remote.size, displayed_filename=remote.name,
                             tqdm_class=functools.partial(_ByteCounter, self))
                raw.flush()
                self._state = "verifying"
                self._emit_progress(force=True)
                digest = sink.hexdigest()  # waits for the hashing still under way
                os.fsync(raw.fileno())
            finally:
                sink.close()
        _verify(partial, digest, remote, self.repo_id)
        os.replace(partial, blob)

    def _finish(self, repo: Path, commit: str) -> None:
        if self.revision != commit:
            refs = repo / "refs" / self.revision
            refs.parent.mkdir(parents=True, exist_ok=True)
            refs.write_text(commit)
        self._record("complete", commit)

    # --- bookkeeping ---

    def on_bytes(self, n: int) -> None:
        """Called by huggingface_hub's transfer loop for every chunk, just before it is written."""
        if n > 0:
            self._check_stop()  # before counting: a chunk that ends the transfer is never written
        self.done_bytes += n
        self._last_bytes_at = time.monotonic()
        if self._state == "stalled":
            self._state = "downloading"
        self._check_stop()
        self._emit_progress()

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stop()

    def _watch_for_stalls(self) -> None:
        while not self._stop.wait(min(1.0, self.stall_after_s / 2)):
            silent = time.monotonic() - self._last_bytes_at
            if self._state == "downloading" and silent > self.stall_after_s:
                self._state = "stalled"
                self._emit_progress(force=True, message=f"no data for {silent:.0f} s")

    def _emit_progress(self, force: bool = False, message: str = "") -> None:
        with self._emit_lock:
            now = time.monotonic()
            if not force and now - self._last_emit < PROGRESS_INTERVAL_S:
                return
            self._last_emit = now
            speed = self._speed(now)
            remaining = max(self.total_bytes - self.done_bytes, 0)
            eta = remaining / speed if speed > 0 else None
            self.on_event(DownloadProgress(self.repo_id, self._state, self.done_bytes, self.total_bytes,
                                           speed, eta, self._current, self._files_done, len(self.files),
                                           message))

    def _speed(self, now: float) -> float:
        self._samples.append((now, self.done_bytes))
        while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW_S:
            self._samples.popleft()
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def _record(self, status: str, commit: str | None = None, error: str | None = None) -> None:
        with state.editing() as data:
            entry = data["downloads"].setdefault(self.repo_id, {})
            entry.update(state=status, revision=self.revision, done_bytes=self.done_bytes,
                         total_bytes=self.total_bytes, files=[f.name for f in self.files],
                         blobs=[[f.etag, f.size] for f in self.files], updated_at=time.time(), error=error)
            if commit:
                entry["commit"] = commit

    def _done(self, status: str, **extra: Any) -> DownloadDone:
        return DownloadDone(self.repo_id, status, done_bytes=self.done_bytes, total_bytes=self.total_bytes,
                            **extra)

    def _stopped(self, repo: Path, had_snapshot: bool) -> DownloadDone:
        if self._stop_kind == "cancelled":
            _discard(repo, self.files, whole_repo=not had_snapshot)
            with state.editing() as data:
                data["downloads"].pop(self.repo_id, None)
            return self._done("cancelled")
        self._count_from_disk(repo)
        self._record("paused")
        return self._done("paused")

    def _failed(self, exc: HearthError) -> DownloadDone:
        repo = hub_cache.repo_folder(self.repo_id)
        if self.files and self._count_from_disk(repo):
            # Something of this download is on disk: keep its partial files for a resume, and keep
            # the model from being listed as usable meanwhile.
            self._record("failed", error=str(exc))
        return self._done("failed", error=str(exc), error_kind=type(exc).__name__)

    def _count_from_disk(self, repo: Path) -> bool:
        """Set done_bytes to what is really on disk; whether any file of this download is there."""
        blobs = repo / "blobs"
        try:
            have = [_have_bytes(blobs, f) for f in self.files]
            present = any((blobs / f.etag).exists() or (blobs / (f.etag + ".incomplete")).exists()
                          for f in self.files)
        except OSError:
            return False
        self.done_bytes = sum(have)
        return present


def _quiet_hf_logging() -> None:
    # huggingface_hub logs its own retries as warnings; Hearth reports progress, stalls and retries
    # as events instead, so a terminal progress bar is not broken by stray lines.
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


_chunk_lock = threading.Lock()
_chunk_users = 0
_chunk_saved: int | None = None


@contextlib.contextmanager
def _small_chunks():
    """Lower huggingface_hub's DOWNLOAD_CHUNK_SIZE to TRANSFER_CHUNK_BYTES while Hearth transfers run
    (a smaller value already set is kept); the previous value is restored when the last one ends."""
    global _chunk_users, _chunk_saved
    from huggingface_hub import constants

    with _chunk_lock:
        if _chunk_users == 0 and constants.DOWNLOAD_CHUNK_SIZE > TRANSFER_CHUNK_BYTES:
            _chunk_saved = constants.DOWNLOAD_CHUNK_SIZE
            constants.DOWNLOAD_CHUNK_SIZE = TRANSFER_CHUNK_BYTES
        _chunk_users += 1
    try:
        yield
    finally:
        with _chunk_lock:
            _chunk_users -= 1
            if _chunk_users == 0 and _chunk_saved is not None:
                if constants.DOWNLOAD_CHUNK_SIZE == TRANSFER_CHUNK_BYTES:
                    constants.DOWNLOAD_CHUNK_SIZE = _chunk_saved
                _chunk_saved = None


def _retry_reason(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status:
        return f"the Hub answered {status}"
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return "the file arrived short"
    return "connection lost"


def _human(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} bytes"


class _NoBar:
    """A silent stand-in for tqdm."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def update(self, n: int | float | None = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _ByteCounter:
    """Stands in for tqdm in huggingface_hub's transfer loop: counts bytes, can stop the transfer."""

    def __init__(self, job: DownloadJob, **_kwargs: Any) -> None:
        self.job = job

    def update(self, n: int | float | None = 1) -> None:
        self.job.on_bytes(int(n or 0))

    def close(self) -> None:
        pass

    def __enter__(self) -> _ByteCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _HashingFile:
    """A file wrapper that hashes what is written, so verifying costs no second read. With
    background=True the hashing runs on a helper thread, beside the transfer rather than between
    its reads (at local-network speeds SHA-256 would otherwise be a good part of the time)."""

    MAX_PENDING = 8  # chunks handed to the helper and not hashed yet

    def __init__(self, raw, remote: RemoteFile, background: bool = False) -> None:
        self.raw, self.remote = raw, remote
        self.hasher = self._new_hasher()
        self._pool = None
        if background:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="hearth-verify")
        self._pending: deque = deque()

    def _new_hasher(self):
        if self.remote.sha256:
            return hashlib.sha256()
        if self.remote.blob_id:
            hasher = hashlib.sha1(usedforsecurity=False)
            hasher.update(b"blob %d\0" % self.remote.size)  # git's blob id
            return hasher
        return None

    def resume_from_disk(self, partial: Path) -> int:
        """Hash the bytes already downloaded (from an earlier run); their count."""
        size = partial.stat().st_size
        if size > self.remote.size:
            self.raw.truncate(0)
            return 0
        if self.hasher is not None and size:
            with open(partial, "rb") as f:
                for chunk in iter(lambda: f.read(8 * 1024 * 1024), b""):
                    self.hasher.update(chunk)
        return size

    def write(self, data: bytes) -> int:
        written = self.raw.write(data)
        if self._pool is None:
            if self.hasher is not None:
                self.hasher.update(data)
            return written
        while len(self._pending) >= self.MAX_PENDING:
            self._pending.popleft().result()
        if self.hasher is not None:  # one helper thread: the chunks are hashed in write order
            self._pending.append(self._pool.submit(self.hasher.update, bytes(data)))
        return written

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def hexdigest(self) -> str | None:
        self._drain()
        return self.hasher.hexdigest() if self.hasher is not None else None

    def close(self) -> None:
        if self._pool is not None:
            for future in self._pending:
                future.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True)
            self._pool = None

    def tell(self) -> int:
        return self.raw.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        # huggingface_hub truncates when a server ignored the Range request: start the hash over.
        self._drain()
        result = self.raw.truncate(size)
        self.hasher = self._new_hasher()
        return result

    def flush(self) -> None:
        self.raw.flush()


def _mismatch(size: int, digest: str | None, remote: RemoteFile) -> str | None:
    if size != remote.size:
        return f"{remote.name} has {size:,} bytes, the Hub lists {remote.size:,}"
    if digest is not None and digest != (remote.sha256 or remote.blob_id):
        kind = "SHA-256" if remote.sha256 else "checksum"
        return f"{remote.name} does not match its {kind} on the Hub"
    return None


def _verify(partial: Path, digest: str | None, remote: RemoteFile, repo_id: str) -> None:
    problem = _mismatch(partial.stat().st_size, digest, remote)
    if problem:
        partial.unlink(missing_ok=True)  # useless bytes: the next attempt starts this file afresh
        raise ChecksumMismatch(f"Download of {repo_id} failed verification: {problem}. The file was "
                               f"discarded; try again, and if it repeats the mirror or disk is faulty.")


def _read_blob(repo: Path, remote: RemoteFile) -> str | None:
    """A small file's text from a blob already in the cache (of the right size), else None."""
    blob = repo / "blobs" / remote.etag
    try:
        if blob.stat().st_size == remote.size:
            return blob.read_text(encoding="utf-8", errors="replace")
    except OSError:
        pass
    return None


def _link(pointer: Path, blob: Path) -> None:
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.is_symlink() or pointer.exists():
        if pointer.resolve() == blob.resolve():
            return
        pointer.unlink()
    try:
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:  # a filesystem without symlinks: a copy, as huggingface_hub does there
        shutil.copy2(blob, pointer)


def _have_bytes(blobs: Path, remote: RemoteFile) -> int:
    if (blobs / remote.etag).exists():
        return remote.size
    partial = blobs / (remote.etag + ".incomplete")
    return min(partial.stat().st_size, remote.size) if partial.exists() else 0


def _discard(repo: Path, files: list[RemoteFile], whole_repo: bool) -> None:
    if whole_repo:
        shutil.rmtree(repo, ignore_errors=True)
        return
    for remote in files:
        with contextlib.suppress(OSError):
            (repo / "blobs" / (remote.etag + ".incomplete")).unlink()


def _remote(sibling: Any) -> RemoteFile:
    lfs = getattr(sibling, "lfs", None)
    sha256 = getattr(lfs, "sha256", None) if lfs is not None and not isinstance(lfs, dict) else (lfs or {}).get("sha256")
    size = getattr(sibling, "size", None)
    if size is None and lfs is not None:
        size = getattr(lfs, "size", None) if not isinstance(lfs, dict) else lfs.get("size")
    return RemoteFile(sibling.rfilename, int(size or 0), sha256, getattr(sibling, "blob_id", None))


def choose_files(repo_id: str, siblings: list[RemoteFile], wanted: list[str] | None = None) -> list[RemoteFile]:
    """The files to fetch: the ones asked for, or what an mlx-lm model needs, with clear refusals."""
    names = {f.name for f in siblings}
    if wanted:
        missing = [w for w in wanted if w not in names]
        if missing:
            raise HubError(f"{repo_id} has no file {missing[0]}.")
        return [f for f in siblings if f.name in wanted]
    chosen = [f for f in siblings if any(fnmatch.fnmatch(f.name, p) for p in MODEL_FILES)]
    if any(fnmatch.fnmatch(f.name, "model*.safetensors") for f in chosen):
        return chosen
    raise HubError(unusable_reason(repo_id, names))


def only_indexed_shards(files: list[RemoteFile], index_path: Path) -> list[RemoteFile]:
    try:
        text = index_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HubError(f"The repo's {INDEX_FILE} cannot be read: {exc}") from exc
    return _indexed_shards(files, text)


def _indexed_shards(files: list[RemoteFile], text: str) -> list[RemoteFile]:
    try:
        shards = set(json.loads(text)["weight_map"].values())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HubError(f"The repo's {INDEX_FILE} cannot be read: {exc}") from exc
    return [f for f in files if not fnmatch.fnmatch(f.name, "model*.safetensors") or f.name in shards]


def unusable_reason(repo_id: str, names: set[str]) -> str:
    if "weights.npz" in names:
        return (f"{repo_id} is in the old MLX layout (weights.npz), which mlx-lm no longer loads; it "
                f"has to be converted after download.")
    ggufs = sorted(n for n in names if n.endswith(".gguf"))
    if ggufs:
        return f"{repo_id} holds GGUF files ({ggufs[0]}, ...), not an mlx-lm model."
    if any(n.endswith((".bin", ".pt", ".pth", ".ckpt")) for n in names):
        return f"{repo_id} only has pickle-format weights, which Hearth never loads."
    return f"{repo_id} has no model*.safetensors weights, so it is not an mlx-lm model."
