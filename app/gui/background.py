"""Short background jobs with their results delivered on the GUI thread (like Anki's QueryOp).

For disk scans, Hub listings, file hashing and exports: work that must never make the GUI thread
wait. Not for MLX work, which needs the one thread that owns its streams (the engine's).

    run_in_background(library.installed_models, on_done=self._show_models,
                      on_error=self._show_error, parent=self)

`fn` runs on a plain daemon thread and must not touch any widget or Qt model (capture plain
values, not widgets); `on_done(result)` or `on_error(exception)` then runs on the GUI thread,
unless `parent` was deleted in the meantime (a closed dialog's callbacks are dropped, never called
on a dead widget).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

log = logging.getLogger(__name__)


class BackgroundOp(QObject):
    """One job's callbacks; only ever touched on the GUI thread (the worker never sees it).

    Signals:
        finished(): emitted on the GUI thread after the callback ran (or was dropped).
    """

    finished = Signal()

    def __init__(self, name: str, on_done: Callable[[Any], None] | None,
                 on_error: Callable[[Exception], None] | None, owner: QObject | None) -> None:
        super().__init__()  # no parent: the job outlives an owner deleted while it runs
        self.name, self._on_done, self._on_error, self._owner = name, on_done, on_error, owner

    def deliver(self, result: Any, error: Exception | None) -> None:
        try:
            if self._owner is None or shiboken6.isValid(self._owner):
                self._call(result, error)
        finally:
            self.finished.emit()

    def _call(self, result: Any, error: Exception | None) -> None:
        if error is None:
            if self._on_done is not None:
                self._on_done(result)
        elif self._on_error is not None:
            self._on_error(error)
        else:
            log.error("Background job %s failed: %s", self.name, error, exc_info=error)


class _Dispatcher(QObject):
    """Lives on the GUI thread for the whole session. Workers only emit its signal, so no worker
    ever holds (or drops the last reference to) a QObject that can be deleted.

    Signals:
        delivered(int, object, object): job id, result, exception; queued to the GUI thread.
    """

    delivered = Signal(int, object, object)

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[int, BackgroundOp] = {}
        self.delivered.connect(self._deliver)  # a bound slot runs on this object's (GUI) thread

    def _deliver(self, job_id: int, result: Any, error: Exception | None) -> None:
        op = self.jobs.pop(job_id, None)
        if op is not None:
            op.deliver(result, error)


_dispatcher: _Dispatcher | None = None
_ids = itertools.count(1)


def _get_dispatcher() -> _Dispatcher:
    global _dispatcher
    app = QCoreApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        raise RuntimeError("run_in_background must be called on the GUI thread")
    if _dispatcher is None:
        _dispatcher = _Dispatcher()
    return _dispatcher


def _work(dispatcher: _Dispatcher, job_id: int, fn: Callable[[], Any]) -> None:
    # Worker thread: the plain function, then one thread-safe signal emission.
    try:
        result, error = fn(), None
    except Exception as exc:  # noqa: BLE001 - handed to on_error on the GUI thread
        result, error = None, exc
    dispatcher.delivered.emit(job_id, result, error)


def run_in_background(fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
                      on_error: Callable[[Exception], None] | None = None,
                      parent: QObject | None = None) -> BackgroundOp:
    """Run fn() off the GUI thread; then on_done(result) or on_error(exc) on the GUI thread.

    Call from the GUI thread. Callbacks are dropped if `parent` has been deleted by then; without
    on_error a failure is logged."""
    dispatcher = _get_dispatcher()
    name = getattr(fn, "__name__", "job")
    op = BackgroundOp(name, on_done, on_error, parent)
    job_id = next(_ids)
    dispatcher.jobs[job_id] = op
    threading.Thread(target=_work, args=(dispatcher, job_id, fn), name=f"hearth-bg-{name}", daemon=True).start()
    return op


def active_jobs() -> int:
    """Jobs started whose callbacks have not run yet (tests wait for 0)."""
    return len(_dispatcher.jobs) if _dispatcher is not None else 0
