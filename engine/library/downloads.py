"""Verified, resumable downloads into the standard Hugging Face cache, safe with other processes.

For each file the Hub lists (with its size and SHA-256 or git blob id), the bytes come over plain
HTTP through huggingface_hub's public session (`get_session`, `hf_hub_url`, `hf_raise_for_status`)
into `blobs/<etag>.incomplete`, hashed as they are written; only a file whose size and hash match
is renamed into place and linked from `snapshots/<commit>/`. The branch ref is written last, so
another tool never sees a half-downloaded snapshot as current, and Hearth's own record keeps a
partial download from being listed as usable.

Each blob is written under the lock huggingface_hub itself takes for it
(`<cache>/.locks/<repo>/<etag>.lock`), so two Hearth processes, or Hearth and another Hugging Face
tool, never write one file at once: the second waits (reporting the first one's progress), then
uses the verified file, or takes over the partial file if the first one stopped. A blob already
in the cache is used only when its hash matches.

Pausing (or a quit, or a kill) keeps the partial file, and the next run resumes it with an HTTP
Range request. Dropped connections and 5xx answers are retried with exponential backoff; a silent
connection is reported as stalled and then times out into a retry. run() always ends with one
DownloadDone, whatever fails (the disk, Hearth's own record, a bug), so nobody waits forever.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import os
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HearthError
from ..model_folder import hub_cache_dir
from . import hub, hub_cache, state, verify
from .hub import ChecksumMismatch, DiskFull, HubError
from .verify import MODEL_FILES

PROGRESS_INTERVAL_S = 0.25  # at most four progress events a second
STALL_AFTER_S = 10.0
SPEED_WINDOW_S = 3.0
DISK_MARGIN_BYTES = 200 * 1024**2
MAX_ATTEMPTS = 6
INDEX_FILE = "model.safetensors.index.json"
BACKGROUND_HASH_BYTES = 16 * 1024 * 1024  # files this large are hashed beside the transfer
LOCK_POLL_S = 0.25  # how often a download waiting for another one's file looks again


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # LFS files
    blob_id: str | None  # git blob sha1 (the etag of non-LFS files)

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id or ""

    @property
    def expected(self) -> verify.Expected | None:
        if self.sha256:
            return verify.Expected(self.name, verify.SHA256, self.sha256, self.size)
        if self.blob_id:
            return verify.Expected(self.name, verify.GIT_SHA1, self.blob_id, self.size)
        return None


@dataclass(frozen=True)
class DownloadProgress:
    repo_id: str
    state: str  # checking, downloading, waiting (for another process), verifying, stalled, retrying
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
    """Raised from the transfer loop to end a transfer at once (pause or cancel)."""


class DownloadJob:
    """One repo's download. run() blocks (call it on a worker thread, e.g. with start_worker) and
    raises nothing of its own: every failure becomes a "failed" DownloadDone (only an on_event that
    raises gets through, which Worker catches). pause() and cancel() work from any thread and take
    effect at the next piece of data. on_event gets DownloadProgress events, then one DownloadDone."""

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
        self.total_bytes = 0
        self._have: dict[str, int] = {}  # file name -> bytes of it on disk
        self.files: list[RemoteFile] = []
        self._current: str | None = None
        self._files_done = 0
        self._last_emit = 0.0
        self._last_bytes_at = time.monotonic()
        self._samples: deque[tuple[float, int]] = deque()
        self._state = "checking"
        self._memo = verify.Memo({})
        self._created: list[Path] = []  # blobs this job put in place (a cancel takes them back)

    @property
    def done_bytes(self) -> int:
        return sum(self._have.values())

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
        try:
            done = self._run()
        except BaseException as exc:  # noqa: BLE001 - a bug or a fault nothing below caught
            done = self._done("failed", error=f"The download of {self.repo_id} stopped unexpectedly: {exc}",
                              error_kind=type(exc).__name__)
        finally:
            self._stop.set()  # also ends the watchdog
        self.on_event(done)
        return done

    def _run(self) -> DownloadDone:
        _quiet_hf_logging()
        repo = hub_cache.repo_folder(self.repo_id)
        had_snapshot = (repo / "refs" / "main").exists()
        watchdog = threading.Thread(target=self._watch_for_stalls, daemon=True, name="hearth-stall-watch")
        self._memo = verify.Memo.load()
        try:
            self._emit_progress(force=True)
            commit = self._plan(repo)
            watchdog.start()
            self._check_disk(repo)
            self._record("downloading", commit)
            for remote in self.files:
                self._retrying(lambda remote=remote: self._fetch(repo, commit, remote))
                self._files_done += 1
            self._finish(repo, commit)
            return self._done("complete", path=str(repo / "snapshots" / commit))
        except _Stop:
            return self._stopped(repo, had_snapshot)
        except HearthError as exc:
            return self._failed(exc)
        except Exception as exc:  # noqa: BLE001 - reported as a clear failure, not a crash
            return self._failed(hub.translate(exc, what=f"downloading {self.repo_id}", repo_id=self.repo_id))
        finally:
            self._memo.save()

    def _plan(self, repo: Path) -> str:
        info = hub.call(lambda api: api.model_info(self.repo_id, revision=self.revision, files_metadata=True),
                        what=f"looking up {self.repo_id}", repo_id=self.repo_id)
        commit = str(info.sha)
        siblings = [remote_file(s) for s in (info.siblings or [])]
        self.files = choose_files(self.repo_id, siblings, self.wanted)
        index = next((f for f in self.files if f.name == INDEX_FILE), None)
        if index is not None and not self.wanted:
            # Read the index first and take only the shards it lists: some uploads hold stray files.
            # It is read into memory, so nothing is written before the free-disk check; the file
            # itself is fetched (and verified) with the others.
            text = self._read_cached(repo, index)
            if text is None:
                text = self._retrying(lambda: self._read_small(commit, index))
            self.files = _indexed_shards(self.files, text)
        self.total_bytes = sum(f.size for f in self.files)
        self._check_stop()
        return commit

    def _check_disk(self, repo: Path) -> None:
        blobs = repo / "blobs"
        self._have = {f.name: _have_bytes(blobs, f) for f in self.files}
        needed = self.total_bytes - self.done_bytes
        existing = next(p for p in (blobs, repo, hub_cache_dir(), Path(hub_cache_dir()).anchor) if Path(p).exists())
        free = self._free_bytes(Path(existing))
        if needed + DISK_MARGIN_BYTES > free:
            raise DiskFull(
                f"Not enough disk space for {self.repo_id}: it needs {_human(needed)} more (plus "
                f"{_human(DISK_MARGIN_BYTES)} to spare) and {_human(free)} are free on {existing}.")

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

    def _read_cached(self, repo: Path, remote: RemoteFile) -> str | None:
        """A small file's text from a blob already in the cache that matches its hash, else None."""
        blob = repo / "blobs" / remote.etag
        try:
            if self._blob_ok(blob, remote):
                return blob.read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
        return None

    def _read_small(self, commit: str, remote: RemoteFile) -> str:
        """A small file's text, fetched into memory and verified (the shard index)."""
        sink = _HashingFile(io.BytesIO(), remote)
        self._get(self._url(remote, commit), sink, count=False)
        data = sink.raw.getvalue()
        problem = _mismatch(len(data), sink.hexdigest(), remote)
        if problem:
            raise ChecksumMismatch(f"Download of {self.repo_id} failed verification: {problem}. Try again, "
                                   f"and if it repeats the mirror is faulty.")
        return data.decode("utf-8", errors="replace")

    def _fetch(self, repo: Path, commit: str, remote: RemoteFile) -> None:
        blobs = repo / "blobs"
        blob = blobs / remote.etag
        if not self._blob_ok(blob, remote):
            with self._blob_lock(blobs, remote):
                # Another process may have finished this file while this one waited.
                if not self._blob_ok(blob, remote):
                    self._transfer(commit, remote, blob)
        self._have[remote.name] = remote.size
        _link(repo / "snapshots" / commit / remote.name, blob)

    def _blob_ok(self, blob: Path, remote: RemoteFile) -> bool:
        """Whether the blob is in the cache with the Hub's size and hash (hashed once, remembered)."""
        try:
            if blob.stat().st_size != remote.size:
                return False
            expected = remote.expected
            if expected is None:
                return True  # the Hub lists no hash: the size is all there is to compare
            self._current, self._state = remote.name, "verifying"
            if remote.size >= BACKGROUND_HASH_BYTES:  # hashing it (once) takes seconds: say why
                self._emit_progress(force=True, message=f"checking {remote.name}, already in the cache")
            return verify.mismatch(blob, expected, self._memo) is None
        except OSError:
            return False

    @contextlib.contextmanager
    def _blob_lock(self, blobs: Path, remote: RemoteFile) -> Iterator[None]:
        import filelock

        path = hub_cache.lock_path(self.repo_id, remote.etag)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(path, mode=0o664)  # group-writable, as huggingface_hub makes it
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            self._wait_for(lock, blobs, remote)
        try:
            yield
        finally:
            lock.release()

    def _wait_for(self, lock: Any, blobs: Path, remote: RemoteFile) -> None:
        """Another process holds this file's lock: report its progress until it lets go."""
        import filelock

        self._current, self._state = remote.name, "waiting"
        message = f"another download is fetching {remote.name}; waiting for it"
        self._emit_progress(force=True, message=message)
        while True:
            self._check_stop()
            # Theirs, never less than shown before: the file may just have been renamed into place.
            self._have[remote.name] = max(self._have.get(remote.name, 0), _partial_bytes(blobs, remote))
            self._emit_progress(message=message)
            try:
                lock.acquire(timeout=LOCK_POLL_S)
                return
            except filelock.Timeout:
                continue

    def _transfer(self, commit: str, remote: RemoteFile, blob: Path) -> None:
        blob.parent.mkdir(parents=True, exist_ok=True)
        partial = blob.with_name(blob.name + ".incomplete")
        self._current, self._state = remote.name, "checking"
        with open(partial, "ab") as raw:
            sink = _HashingFile(raw, remote, background=remote.size >= BACKGROUND_HASH_BYTES)
            try:
                self._have[remote.name] = sink.resume_from_disk(partial)
                self._check_stop()
                self._last_bytes_at = time.monotonic()  # re-hashing a partial file is not a stall
                self._state = "downloading"
                if sink.size < remote.size:
                    self._get(self._url(remote, commit), sink)
                raw.flush()
                self._state = "verifying"
                self._emit_progress(force=True)
                digest = sink.hexdigest()  # waits for the hashing still under way
                os.fsync(raw.fileno())
            finally:
                sink.close()
        _verify(partial, digest, remote, self.repo_id)
        os.replace(partial, blob)  # also over a damaged copy: readers see the old or the new file
        self._created.append(blob)
        if digest is not None and remote.expected is not None:
            self._memo.remember(blob, remote.expected.kind, digest)

    def _url(self, remote: RemoteFile, commit: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo_id, remote.name, revision=commit, endpoint=hub.endpoint())

    def _get(self, url: str, sink: _HashingFile, count: bool = True) -> None:
        """Stream url into sink from sink.size on (a Range request when resuming)."""
        from huggingface_hub import constants, get_session, hf_raise_for_status
        from huggingface_hub.utils import build_hf_headers

        start = sink.size
        headers = build_hf_headers(token=hub.get_token() or False)
        if start:
            headers["Range"] = f"bytes={start}-"
        with get_session().stream("GET", url, headers=headers,
                                  timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as response:
            hf_raise_for_status(response)
            if start and response.status_code == 200:  # the Range was ignored: the whole file comes
                sink.restart()
                if count:
                    self._have[sink.remote.name] = 0
            # Each piece is written as it arrives (at most one socket read, 64 KiB), so a broken
            # connection loses nothing already received, and progress, pauses and the stall
            # detector react at once.
            for piece in response.iter_bytes():
                self._check_stop()  # before writing: a piece that ends the transfer is never written
                sink.write(piece)
                if count:
                    self.on_bytes(len(piece))
        if sink.size < sink.remote.size:
            raise OSError(f"Consistency check failed: {sink.remote.name} ended after {sink.size:,} of "
                          f"{sink.remote.size:,} bytes")

    def _finish(self, repo: Path, commit: str) -> None:
        if self.revision != commit:
            _write_atomically(repo / "refs" / self.revision, commit)
        self._record("complete", commit)

    # --- bookkeeping ---

    def on_bytes(self, n: int) -> None:
        """Counts a piece of the current file just written."""
        if self._current is not None:
            self._have[self._current] = self._have.get(self._current, 0) + n
        self._last_bytes_at = time.monotonic()
        if self._state == "stalled":
            self._state = "downloading"
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
            done = self.done_bytes
            speed = self._speed(now, done)
            remaining = max(self.total_bytes - done, 0)
            eta = remaining / speed if speed > 0 else None
            self.on_event(DownloadProgress(self.repo_id, self._state, done, self.total_bytes,
                                           speed, eta, self._current, self._files_done, len(self.files),
                                           message))

    def _speed(self, now: float, done: int) -> float:
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW_S:
            self._samples.popleft()
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return max(b1 - b0, 0) / (t1 - t0) if t1 > t0 else 0.0

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
            self._discard(repo, remove_folder=not had_snapshot)
            with contextlib.suppress(HearthError):  # nothing to resume either way
                with state.editing() as data:
                    data["downloads"].pop(self.repo_id, None)
            return self._done("cancelled")
        self._count_from_disk(repo)
        with contextlib.suppress(HearthError):  # the partial files stay; the record is a note
            self._record("paused")
        return self._done("paused")

    def _failed(self, exc: HearthError) -> DownloadDone:
        repo = hub_cache.repo_folder(self.repo_id)
        if self.files and self._count_from_disk(repo):
            # Something of this download is on disk: keep its partial files for a resume, and keep
            # the model from being listed as usable meanwhile. The error at hand is the one to
            # report, even when this note cannot be written (the disk it is on being full).
            with contextlib.suppress(HearthError):
                self._record("failed", error=str(exc))
        return self._done("failed", error=str(exc), error_kind=type(exc).__name__)

    def _count_from_disk(self, repo: Path) -> bool:
        """Set the byte counts to what is really on disk; whether any file of this download is there."""
        blobs = repo / "blobs"
        try:
            self._have = {f.name: _have_bytes(blobs, f) for f in self.files}
            return any((blobs / f.etag).exists() or (blobs / (f.etag + ".incomplete")).exists()
                       for f in self.files)
        except OSError:
            return False

    def _discard(self, repo: Path, remove_folder: bool) -> None:
        """Take back what this download wrote: partial files no other download is writing, the blobs
        it put in place (on a first download), then folders left empty."""
        import filelock

        blobs = repo / "blobs"
        for remote in self.files:
            lock = filelock.FileLock(hub_cache.lock_path(self.repo_id, remote.etag), mode=0o664)
            try:
                lock.acquire(timeout=0)
            except (filelock.Timeout, OSError):
                continue  # another process is writing it: its file, not ours
            try:
                with contextlib.suppress(OSError):
                    (blobs / (remote.etag + ".incomplete")).unlink()
                if remove_folder and blobs / remote.etag in self._created:
                    with contextlib.suppress(OSError):
                        (blobs / remote.etag).unlink()
                        for snapshot in (repo / "snapshots").iterdir():
                            (snapshot / remote.name).unlink(missing_ok=True)
            finally:
                lock.release()
        if remove_folder:
            for folder in [*sorted((repo / "snapshots").glob("*")), repo / "snapshots", blobs, repo / "refs",
                           repo]:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty: another tool's files stay


class Worker:
    """A DownloadJob on its own daemon thread. Whatever happens on that thread, wait() returns a
    DownloadDone: an exception that escapes the job (from a failing on_event, say) becomes a
    "failed" result instead of a thread that dies while someone waits for it."""

    def __init__(self, job: DownloadJob) -> None:
        self.job = job
        self.result: DownloadDone | None = None
        self._thread = threading.Thread(target=self._main, name=f"hearth-download-{job.repo_id}",
                                         daemon=True)

    def start(self) -> Worker:
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            self.result = self.job.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting side below
            self.result = DownloadDone(self.job.repo_id, "failed",
                                       error=f"The download of {self.job.repo_id} stopped unexpectedly: {exc}",
                                       error_kind=type(exc).__name__)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> DownloadDone | None:
        """The job's result, or None if it is still running after timeout seconds."""
        self._thread.join(timeout)
        return None if self._thread.is_alive() else self.result


def start_worker(job: DownloadJob) -> Worker:
    return Worker(job).start()


def download_repo(repo_id: str, revision: str = "main", *, files: list[str] | None = None,
                  on_event: Callable[[Any], None] = lambda event: None,
                  stop: threading.Event | None = None, discard_on_stop: bool = False) -> DownloadDone:
    """Download (or resume, or repair) a repo's model files, or only `files`, blocking until done.
    Setting `stop` pauses it (the partial files stay for a resume: status "paused") or, with
    discard_on_stop, cancels it (they are deleted: "cancelled"). on_event gets the progress events
    (on the worker thread). The result's path is the snapshot folder; a failure has a one-line
    error and an error_kind (DiskFull, GatedRepo, Offline, ChecksumMismatch, StateWriteError, ...)."""
    job = DownloadJob(repo_id, revision, files=files, on_event=on_event)
    worker = start_worker(job)
    while True:
        done = worker.wait(0.1)
        if done is not None:
            return done
        if stop is not None and stop.is_set():
            job.cancel() if discard_on_stop else job.pause()


def download_file(repo_id: str, filename: str, revision: str = "main", *,
                  on_event: Callable[[Any], None] = lambda event: None,
                  stop: threading.Event | None = None) -> Path:
    """One file of a repo (a GGUF file, say), verified, in the Hugging Face cache; its path.
    Raises HubError with the one-line reason when it cannot be had (also when stopped)."""
    done = download_repo(repo_id, revision, files=[filename], on_event=on_event, stop=stop)
    if done.status != "complete" or done.path is None:
        raise HubError(done.error or f"The download of {filename} from {repo_id} was {done.status}; "
                                     f"the same request resumes it.")
    return Path(done.path) / filename


def discard_partial(repo_id: str) -> None:
    """Delete a stopped download's partial files, except those another process is writing now;
    with no finished snapshot and nobody at work in the repo, its whole folder goes."""
    import filelock

    folder = hub_cache.repo_folder(repo_id)
    held, in_use = [], set()
    try:
        for path in sorted(hub_cache.locks_folder(repo_id).glob("*.lock")):
            lock = filelock.FileLock(path, mode=0o664)
            try:
                lock.acquire(timeout=0)
                held.append(lock)
            except filelock.Timeout:
                in_use.add(path.stem)  # the etag of a blob being written
        if not in_use and not (folder / "refs").is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for partial in (folder / "blobs").glob("*.incomplete"):
                if partial.name.split(".")[0] not in in_use:
                    with contextlib.suppress(OSError):
                        partial.unlink()
    finally:
        for lock in held:
            lock.release()
    with state.editing() as data:
        data["downloads"].pop(repo_id, None)


def _quiet_hf_logging() -> None:
    # huggingface_hub logs its own retries as warnings; Hearth reports progress, stalls and retries
    # as events instead, so a terminal progress bar is not broken by stray lines.
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


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


class _HashingFile:
    """A file wrapper that hashes what is written, so verifying costs no second read. With
    background=True the hashing runs on a helper thread, beside the transfer rather than between
    its reads (at local-network speeds SHA-256 would otherwise be a good part of the time)."""

    MAX_PENDING = 8  # pieces handed to the helper and not hashed yet

    def __init__(self, raw, remote: RemoteFile, background: bool = False) -> None:
        self.raw, self.remote = raw, remote
        self.size = 0
        self.hasher = self._new_hasher()
        self._pool = None
        if background:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="hearth-verify")
        self._pending: deque = deque()

    def _new_hasher(self):
        expected = self.remote.expected
        return verify.new_hasher(expected.kind, self.remote.size) if expected is not None else None

    def resume_from_disk(self, partial: Path) -> int:
        """Hash the bytes already downloaded (by an earlier run or another process); their count."""
        size = partial.stat().st_size
        if size > self.remote.size:
            self.restart()
            return 0
        if self.hasher is not None and size:
            with open(partial, "rb") as f:
                for chunk in iter(lambda: f.read(verify.READ_BYTES), b""):
                    self.hasher.update(chunk)
        self.size = size
        return size

    def restart(self) -> None:
        """Empty the file and start the hash over (the server sent the whole file)."""
        self._drain()
        self.raw.seek(0)
        self.raw.truncate(0)
        self.size = 0
        self.hasher = self._new_hasher()

    def write(self, data: bytes) -> None:
        self.raw.write(data)
        self.size += len(data)
        if self.hasher is None:
            return
        if self._pool is None:
            self.hasher.update(data)
            return
        while len(self._pending) >= self.MAX_PENDING:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self.hasher.update, data))  # one thread: in order

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


def _link(pointer: Path, blob: Path) -> None:
    """Point pointer at blob, atomically (another process may be linking the same file)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if pointer.is_symlink() and os.readlink(pointer) == os.path.relpath(blob, pointer.parent):
            return
    tmp = pointer.with_name(f".{pointer.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:  # a filesystem without symlinks: a copy, as huggingface_hub does there
        shutil.copy2(blob, tmp)
    os.replace(tmp, pointer)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _partial_bytes(blobs: Path, remote: RemoteFile) -> int:
    """The most bytes any download has of this file so far (Hearth's partial file, or
    huggingface_hub's `<etag>.<id>.incomplete` ones)."""
    sizes = [0]
    with contextlib.suppress(OSError):
        for entry in os.scandir(blobs):
            if entry.name.startswith(remote.etag + ".") and entry.name.endswith(".incomplete"):
                with contextlib.suppress(OSError):
                    sizes.append(entry.stat().st_size)
    return min(max(sizes), remote.size)


def _have_bytes(blobs: Path, remote: RemoteFile) -> int:
    if (blobs / remote.etag).exists():
        return remote.size
    partial = blobs / (remote.etag + ".incomplete")
    return min(partial.stat().st_size, remote.size) if partial.exists() else 0


def remote_file(sibling: Any) -> RemoteFile:
    """A file of huggingface_hub's model_info(files_metadata=True) listing, as Hearth needs it."""
    lfs = getattr(sibling, "lfs", None)
    sha256 = getattr(lfs, "sha256", None) if lfs is not None and not isinstance(lfs, dict) else (lfs or {}).get("sha256")
    size = getattr(sibling, "size", None)
    if size is None and lfs is not None:
        size = getattr(lfs, "size", None) if not isinstance(lfs, dict) else lfs.get("size")
    return RemoteFile(sibling.rfilename, int(size or 0), sha256, getattr(sibling, "blob_id", None))


_remote = remote_file  # the name catalog.py and app/import_cli.py use


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
