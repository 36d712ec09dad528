"""Model downloads in the app: each DownloadJob on its own worker thread, its plain events turned
into Qt signals on the GUI thread, and a list model of every download for the views.

The jobs (engine/library/downloads.py) verify, resume and retry by themselves; this module only
starts and stops them and shows where they are. Progress reaches the model at most every
REFRESH_MS, however fast the jobs report. Quitting pauses every job: the partial files stay, the
library records the download as paused, and the next start lists it here to be resumed.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QThread,
    QTimer,
    Signal,
)

from engine.library import state
from engine.library.acquire import Request, Step
from engine.library.downloads import DownloadDone, DownloadJob, DownloadProgress, discard_partial

from .background import run_in_background
from .importer import AcquireProcess
from .plain_text import plain_tooltip

REFRESH_MS = 300  # the list is redrawn at most about three times a second
# States of a row while a worker thread runs its job.
RUNNING_STATES = frozenset({"queued", "checking", "downloading", "verifying", "stalled", "retrying",
                            "pausing", "cancelling", "waiting", "converting"})
# How an acquisition's Step.stage shows as a row state.
STAGE_STATES = {"waiting": "waiting", "fetching": "downloading", "converting": "converting",
                "validating": "verifying", "registering": "verifying"}
# Saved states that can be resumed after a restart; "downloading" means Hearth was killed mid-way.
RESUMABLE_SAVED_STATES = frozenset({"paused", "failed", "downloading"})


@dataclass
class DownloadRow:
    """What the list shows of one download (plain data, owned by the GUI thread)."""

    repo_id: str
    state: str  # RUNNING_STATES, or paused, failed, complete
    done_bytes: int = 0
    total_bytes: int = 0
    speed_bps: float = 0.0
    eta_s: float | None = None
    error: str | None = None
    message: str = ""
    revision: str = "main"
    files: list[str] | None = field(default=None, repr=False)
    request: Request | None = field(default=None, repr=False)  # set for a whole acquisition

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def percent(self) -> int:
        """0-100, or -1 while the size is not known yet."""
        return min(100, 100 * self.done_bytes // self.total_bytes) if self.total_bytes else -1

    def summary(self) -> str:
        """One line for the list and for screen readers."""
        parts = [self.state if self.percent < 0 else f"{self.state} {self.percent}%"]
        if self.total_bytes and self.state != "converting":
            parts.append(f"{format_bytes(self.done_bytes)} of {format_bytes(self.total_bytes)}")
        if self.state == "downloading" and self.speed_bps > 0:
            parts.append(f"{format_bytes(self.speed_bps)}/s")
        if self.state == "downloading" and self.eta_s is not None:
            parts.append(f"{format_eta(self.eta_s)} left")
        if self.message:
            parts.append(self.message)
        return f"{self.repo_id}: " + ", ".join(parts)


def format_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def format_eta(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class DownloadListModel(QAbstractListModel):
    """Every download of this session plus the resumable ones from earlier sessions.

    Changed only on the GUI thread (DownloadManager does it). Roles:
        Qt.DisplayRole: DownloadRow.summary(), e.g.
            "org/model: downloading 45%, 1.2 GB of 2.7 GB, 8.1 MB/s, 3:05 left"
        Qt.AccessibleTextRole: the summary, then the error if there is one
        Qt.ToolTipRole: the error, else the job's last message, else the summary
        RepoRole (str), StateRole (str), DoneBytesRole (int), TotalBytesRole (int),
        SpeedRole (float, bytes/s), EtaRole (float seconds or None), ErrorRole (str or None),
        ProgressRole (int 0-100, -1 while the size is unknown), MessageRole (str), RowRole (DownloadRow)
    """

    RepoRole = Qt.ItemDataRole.UserRole + 1
    StateRole = RepoRole + 1
    DoneBytesRole = RepoRole + 2
    TotalBytesRole = RepoRole + 3
    SpeedRole = RepoRole + 4
    EtaRole = RepoRole + 5
    ErrorRole = RepoRole + 6
    ProgressRole = RepoRole + 7
    MessageRole = RepoRole + 8
    RowRole = RepoRole + 9

    _FIELDS: dict[int, Callable[[DownloadRow], Any]] = {
        RepoRole: lambda r: r.repo_id, StateRole: lambda r: r.state, DoneBytesRole: lambda r: r.done_bytes,
        TotalBytesRole: lambda r: r.total_bytes, SpeedRole: lambda r: r.speed_bps, EtaRole: lambda r: r.eta_s,
        ErrorRole: lambda r: r.error, ProgressRole: lambda r: r.percent, MessageRole: lambda r: r.message,
        RowRole: lambda r: r,
        Qt.ItemDataRole.DisplayRole: DownloadRow.summary,
        Qt.ItemDataRole.AccessibleTextRole: lambda r: r.summary() + (f". {r.error}" if r.error else ""),
        Qt.ItemDataRole.ToolTipRole: lambda r: plain_tooltip(r.error or r.message or r.summary()),
    }

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[DownloadRow] = []

    # --- Qt overrides ---

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows) or index.column() != 0:
            return None
        getter = self._FIELDS.get(role)
        return getter(self._rows[index.row()]) if getter else None

    def roleNames(self) -> dict[int, QByteArray]:
        names = super().roleNames()
        for role, name in ((self.RepoRole, "repo"), (self.StateRole, "state"), (self.DoneBytesRole, "doneBytes"),
                           (self.TotalBytesRole, "totalBytes"), (self.SpeedRole, "speed"), (self.EtaRole, "eta"),
                           (self.ErrorRole, "error"), (self.ProgressRole, "progress"),
                           (self.MessageRole, "message")):
            names[role] = QByteArray(name.encode())
        return names

    # --- for the manager and the views ---

    def rows(self) -> list[DownloadRow]:
        return list(self._rows)

    def row_index(self, repo_id: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r.repo_id == repo_id), -1)

    def row(self, repo_id: str) -> DownloadRow | None:
        i = self.row_index(repo_id)
        return self._rows[i] if i >= 0 else None

    def upsert(self, row: DownloadRow) -> None:
        """Add the row, or replace the one with the same repo."""
        self._check_thread()
        i = self.row_index(row.repo_id)
        if i < 0:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
            self._rows.append(row)
            self.endInsertRows()
        else:
            self._rows[i] = row
            self.dataChanged.emit(self.index(i), self.index(i))

    def remove(self, repo_id: str) -> None:
        self._check_thread()
        i = self.row_index(repo_id)
        if i >= 0:
            self.beginRemoveRows(QModelIndex(), i, i)
            del self._rows[i]
            self.endRemoveRows()

    def _check_thread(self) -> None:
        # A Qt model changed off its thread corrupts views at random (gpt4all #2626): fail loudly.
        if QThread.currentThread() is not self.thread():
            raise RuntimeError("DownloadListModel changed off the GUI thread")


class DownloadManager(QObject):
    """Runs DownloadJobs, one worker thread each, and keeps `model` up to date on the GUI thread.

    Workers hold a reference to the manager: keep it alive (app.py parents it to the application)
    until shutdown() has returned.

    Signals:
        progress(str, dict): a download's latest DownloadProgress fields (repo_id, state,
            done_bytes, total_bytes, speed_bps, eta_s, file, files_done, files_total, message),
            at most every REFRESH_MS per download.
        finished(str, dict): a job ended; the DownloadDone fields (status: complete, paused,
            cancelled or failed; path, done_bytes, total_bytes, error, error_kind).
        _event(int, object): worker -> GUI thread hand-over of a job's events; internal.
    """

    progress = Signal(str, dict)
    finished = Signal(str, dict)
    _event = Signal(int, object)

    def __init__(self, parent: QObject | None = None, *, job_factory: Callable[..., DownloadJob] = DownloadJob,
                 load_saved: bool = True) -> None:
        super().__init__(parent)
        self.model = DownloadListModel(self)
        self._job_factory = job_factory
        self._jobs: dict[str, tuple[int, DownloadJob, threading.Thread]] = {}
        self._generation = 0
        self._pending: dict[str, DownloadProgress] = {}
        self._resume_after_stop: set[str] = set()
        self._acquisitions: dict[str, AcquireProcess] = {}
        self._flush_timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._flush_timer.timeout.connect(self._flush)
        self._event.connect(self._on_event)  # bound slot on the GUI thread: queued from workers
        if load_saved:
            self.load_saved()

    # --- control (GUI thread) ---

    def start(self, repo_id: str, revision: str = "main", files: list[str] | None = None) -> None:
        """Download (or resume) a repo; nothing happens if it is already running or being cancelled."""
        old = self.model.row(repo_id)
        if repo_id in self._jobs or (old is not None and old.state == "cancelling"):
            return
        self._generation += 1
        job = self._job_factory(repo_id, revision, files=files,
                                on_event=functools.partial(self._from_worker, self._generation))
        thread = threading.Thread(target=_run_job, args=(job,), name=f"hearth-download-{repo_id}", daemon=True)
        self._jobs[repo_id] = (self._generation, job, thread)
        self.model.upsert(DownloadRow(repo_id, "queued", old.done_bytes if old else 0,
                                      old.total_bytes if old else 0, revision=revision, files=files))
        thread.start()

    def acquire(self, request: Request) -> str:
        """Get a model through the acquisition pipeline (download, convert, validate, register) in
        a child process; returns the key of its row (request.label). `finished` carries its ref."""
        key = request.label
        if key in self._acquisitions:
            return key
        job = AcquireProcess(request, self)
        self._acquisitions[key] = job
        job.step.connect(functools.partial(self._on_step, key))
        job.finished.connect(functools.partial(self._on_acquired, key))
        old = self.model.row(key)
        self.model.upsert(DownloadRow(key, "queued", old.done_bytes if old else 0, old.total_bytes if old else 0,
                                      request=request))
        job.start()
        return key

    def pause(self, repo_id: str) -> None:
        self._resume_after_stop.discard(repo_id)
        if repo_id in self._acquisitions:
            self._acquisitions[repo_id].stop()
            self._set_state(repo_id, "pausing")
        elif repo_id in self._jobs:
            self._jobs[repo_id][1].pause()
            self._set_state(repo_id, "pausing")

    def resume(self, repo_id: str) -> None:
        row = self.model.row(repo_id)
        if row is None:
            return
        if repo_id in self._jobs or repo_id in self._acquisitions:
            if row.state == "pausing":  # the old job is still stopping: start again once it has
                self._resume_after_stop.add(repo_id)
            return
        if row.request is not None:
            self.acquire(row.request)
        else:
            self.start(repo_id, row.revision, row.files)

    def cancel(self, repo_id: str) -> None:
        """Stop and delete the partial files; a finished row is only cleared from the list."""
        self._resume_after_stop.discard(repo_id)
        row = self.model.row(repo_id)
        if repo_id in self._acquisitions:
            self._acquisitions[repo_id].stop()
            self._set_state(repo_id, "cancelling")
        elif row is not None and row.request is not None and row.state != "complete":
            self._set_state(repo_id, "cancelling")
            self._discard_acquisition(row)
        elif repo_id in self._jobs:
            self._jobs[repo_id][1].cancel()
            self._set_state(repo_id, "cancelling")
        elif row is not None and row.state == "complete":
            self.model.remove(repo_id)
        elif row is not None:
            self._set_state(repo_id, "cancelling")
            run_in_background(functools.partial(discard_partial, repo_id),
                              on_done=lambda _: self._cancelled_offline(repo_id),
                              on_error=lambda exc: self._failed_offline(repo_id, exc), parent=self)

    def is_running(self, repo_id: str) -> bool:
        return repo_id in self._jobs or repo_id in self._acquisitions

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Pause every job and wait up to `timeout` seconds for them to stop (at quit); partial
        files stay for a resume after a restart. True when every worker thread has ended."""
        for _gen, job, _thread in self._jobs.values():
            job.pause()
        for process in self._acquisitions.values():
            process.stop()
        deadline = time.monotonic() + timeout
        for _gen, _job, thread in list(self._jobs.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        for process in list(self._acquisitions.values()):
            process.process.waitForFinished(max(0, int(1000 * (deadline - time.monotonic()))))
        return not any(thread.is_alive() for _gen, _job, thread in self._jobs.values()) and not any(
            process.running() for process in self._acquisitions.values())

    def load_saved(self) -> None:
        """List the paused and failed downloads the library recorded (read in the background)."""
        run_in_background(_saved_rows, on_done=self._add_saved, parent=self)

    # --- worker side ---

    def _from_worker(self, generation: int, event: Any) -> None:
        self._event.emit(generation, event)  # emitting is thread-safe; nothing else happens here

    # --- GUI thread ---

    def _on_event(self, generation: int, event: Any) -> None:
        current = self._jobs.get(event.repo_id)
        if current is None or current[0] != generation:
            return  # a late event of a job that was replaced
        if isinstance(event, DownloadProgress):
            self._pending[event.repo_id] = event
            if not self._flush_timer.isActive():
                self._flush_timer.start()
        elif isinstance(event, DownloadDone):
            self._on_done(event)

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for repo_id, event in pending.items():
            self._apply_progress(event)
            self.progress.emit(repo_id, dataclasses.asdict(event))

    def _apply_progress(self, event: DownloadProgress) -> None:
        row = self.model.row(event.repo_id)
        if row is None:
            return
        # A pause or cancel asked for stays visible until the job has actually stopped.
        state = row.state if row.state in ("pausing", "cancelling") else event.state
        self.model.upsert(dataclasses.replace(row, state=state, done_bytes=event.done_bytes,
                                              total_bytes=event.total_bytes, speed_bps=event.speed_bps,
                                              eta_s=event.eta_s, message=event.message, error=None))

    def _on_done(self, done: DownloadDone) -> None:
        repo_id = done.repo_id
        if repo_id in self._pending:
            self._apply_progress(self._pending.pop(repo_id))
        del self._jobs[repo_id]
        row = self.model.row(repo_id)
        if done.status == "cancelled":
            self.model.remove(repo_id)
        elif row is not None:
            self.model.upsert(dataclasses.replace(
                row, state=done.status, done_bytes=done.done_bytes or row.done_bytes,
                total_bytes=done.total_bytes or row.total_bytes, speed_bps=0.0, eta_s=None,
                error=done.error, message=""))
        self.finished.emit(repo_id, dataclasses.asdict(done))
        if repo_id in self._resume_after_stop and done.status == "paused":
            self._resume_after_stop.discard(repo_id)
            self.resume(repo_id)

    def _on_step(self, key: str, step: Step) -> None:
        row = self.model.row(key)
        if row is None:
            return
        state = row.state if row.state in ("pausing", "cancelling") else STAGE_STATES.get(step.stage, step.stage)
        # A download counts bytes, a conversion its own steps: either way done/total is the share.
        done, total = (step.done, step.total) if step.total else (row.done_bytes, row.total_bytes)
        self.model.upsert(dataclasses.replace(row, state=state, done_bytes=done, total_bytes=total,
                                              message=step.message, error=None))
        self.progress.emit(key, {"repo_id": key, "state": state, "done_bytes": done, "total_bytes": total,
                                 "message": step.message})

    def _on_acquired(self, key: str, ok: bool, text: str) -> None:
        job = self._acquisitions.pop(key)
        job.deleteLater()
        row = self.model.row(key)
        if row is None:
            return
        if ok:
            self.model.upsert(dataclasses.replace(row, state="complete", message=f"Ready as {text}", error=None))
            done = {"repo_id": key, "status": "complete", "ref": text, "error": None}
        elif row.state == "cancelling":
            self._discard_acquisition(row)
            return
        elif text == "stopped" or row.state == "pausing":
            self.model.upsert(dataclasses.replace(row, state="paused", message="", error=None))
            done = {"repo_id": key, "status": "paused", "ref": None, "error": None}
        else:
            self.model.upsert(dataclasses.replace(row, state="failed", message="", error=text))
            done = {"repo_id": key, "status": "failed", "ref": None, "error": text}
        self.finished.emit(key, done)
        if key in self._resume_after_stop and done["status"] == "paused":
            self._resume_after_stop.discard(key)
            self.resume(key)

    def _discard_acquisition(self, row: DownloadRow) -> None:
        """A cancelled acquisition: a conversion kept nothing; a download's partial bytes go."""
        request = row.request
        if request is not None and request.is_repo:
            run_in_background(functools.partial(discard_partial, request.where),
                              on_done=lambda _: self._cancelled_offline(row.repo_id),
                              on_error=lambda exc: self._failed_offline(row.repo_id, exc), parent=self)
        else:
            self._cancelled_offline(row.repo_id)

    def _set_state(self, repo_id: str, new_state: str) -> None:
        row = self.model.row(repo_id)
        if row is not None:
            self.model.upsert(dataclasses.replace(row, state=new_state))

    def _add_saved(self, rows: list[DownloadRow]) -> None:
        for row in rows:
            if self.model.row(row.repo_id) is None:
                self.model.upsert(row)

    def _cancelled_offline(self, repo_id: str) -> None:
        self.model.remove(repo_id)
        self.finished.emit(repo_id, dataclasses.asdict(DownloadDone(repo_id, "cancelled")))

    def _failed_offline(self, repo_id: str, exc: Exception) -> None:
        row = self.model.row(repo_id)
        if row is not None:
            self.model.upsert(dataclasses.replace(
                row, state="failed", error=f"Could not delete the partial download: {exc}"))


# --- worker and background helpers (no Qt) ---

def _run_job(job: DownloadJob) -> None:
    # Worker thread. run() reports its own failures as a DownloadDone; this guards the rest so a
    # row never stays "downloading" forever.
    try:
        job.run()
    except BaseException as exc:  # noqa: BLE001
        job.on_event(DownloadDone(job.repo_id, "failed", error=f"The download stopped unexpectedly: {exc}",
                                  error_kind=type(exc).__name__))


def _saved_rows() -> list[DownloadRow]:
    rows = []
    for repo_id, entry in sorted(state.load()["downloads"].items()):
        if entry.get("state") not in RESUMABLE_SAVED_STATES:
            continue
        saved_state = "failed" if entry.get("state") == "failed" else "paused"
        rows.append(DownloadRow(repo_id, saved_state, int(entry.get("done_bytes") or 0),
                                int(entry.get("total_bytes") or 0), error=entry.get("error"),
                                revision=entry.get("revision") or "main", files=entry.get("files") or None))
    return rows
