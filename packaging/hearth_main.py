"""Entry point of the frozen Hearth (packaging/hearth.spec): the `hearth` command, plus three things
only a packaged build needs.

- `Hearth --selfcheck`: app.selfcheck (one small MLX operation on the default device), exit 0 or 1.
- Opening the window (no arguments on a Mac or with a display, or `Hearth app`): the same check runs
  first, in a child process (`Hearth --selfcheck`), so that MLX is not loaded into the GUI process
  before the engine thread loads it and a check that aborts the process cannot take the app with it.
  On failure a dialog says what failed and what to do, and the app quits: no window without MLX, no
  crash on the first model load, no fall-back to the CPU.
- HEARTH_SMOKE_GUI=1 (for packaging/smoke_test.py): the real window starts, loads the default model,
  answers one message through the real chat controller and engine thread, closes, and prints
  `HEARTH_SMOKE_REPORT {json}`; the exit status is 0 only when that report says ok.

Run unfrozen (`python packaging/hearth_main.py ...`) it behaves the same, for trying changes here.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback

SMOKE_ENV = "HEARTH_SMOKE_GUI"
REPORT_PREFIX = "HEARTH_SMOKE_REPORT "


def main() -> int:
    # macOS before 10.9 passed a -psn_ argument to apps started from the Finder; be safe.
    args = [a for a in sys.argv[1:] if not a.startswith("-psn_")]
    if args[:1] == ["--selfcheck"]:
        from app.selfcheck import main as selfcheck_main

        return selfcheck_main(args[1:])

    from app.cli import main as cli_main

    if not _opens_gui(args):
        return cli_main(args)
    smoke = os.environ.get(SMOKE_ENV) == "1"
    if not _startup_check(smoke):
        return 1
    driver = _SmokeDriver() if smoke else None
    status = cli_main(args)
    if driver is not None:
        return driver.finish(status)
    return status


def _opens_gui(args: list[str]) -> bool:
    if args[:1] == ["app"]:
        return True
    if args:
        return False
    from app.cli import _has_screen

    return _has_screen()


def _startup_check(smoke: bool) -> bool:
    """True when MLX works; otherwise say why (stderr and a dialog) and return False."""
    from app.selfcheck import check_mlx_isolated

    started = time.perf_counter()
    error = check_mlx_isolated()
    if smoke:
        print(f"hearth: start-up MLX check took {time.perf_counter() - started:.2f} s", file=sys.stderr)
    if error is None:
        return True
    print(f"hearth: {error}", file=sys.stderr)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("Hearth")
    box = QMessageBox(QMessageBox.Icon.Critical, "Hearth cannot start", error)
    box.setAccessibleName("Hearth cannot start")
    shown = {}
    if smoke:  # nobody is there to press OK: note that the dialog is up, then close it
        def close() -> None:
            shown.update(visible=box.isVisible(), text=box.text())
            box.accept()

        QTimer.singleShot(500, close)
    box.exec()
    if smoke:
        print(REPORT_PREFIX + json.dumps({"ok": False, "stage": "start-up check", "error": error,
                                          "dialog": bool(shown.get("visible")) and shown.get("text") == error}),
              flush=True)
    return False


class _SmokeDriver:
    """Drives the real window through one chat, for the packaged-build smoke test."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        self.prompt = os.environ.get("HEARTH_SMOKE_PROMPT", "Hello")
        self.max_tokens = int(os.environ.get("HEARTH_SMOKE_MAX_TOKENS", "5"))
        timeout_s = float(os.environ.get("HEARTH_SMOKE_TIMEOUT_S", "120"))
        self.started = time.perf_counter()
        self.stage = "waiting for the window"
        self.report: dict = {"ok": False, "window": False, "window_title": None, "window_icon": False,
                             "model": None, "finish_reason": None, "generation_tokens": None,
                             "text": None, "saved_answer": None, "notices": [], "exceptions": [],
                             "error": None, "seconds": {}}
        self.window = None
        self.done = False
        # HEARTH_SMOKE_ADD_MODEL=FILE: first add this model as File > Add Model… does (the
        # acquisition pipeline in a child process, which must start as the frozen Hearth itself),
        # then chat with it.
        self.adding = os.environ.get("HEARTH_SMOKE_ADD_MODEL")
        # HEARTH_SMOKE_CATALOG=ID: get this catalog entry as the welcome page's and Settings'
        # Download buttons do (download, convert, register in the child process), then chat with it.
        self.catalog_id = os.environ.get("HEARTH_SMOKE_CATALOG")
        self.added_ref = None
        # The window's QApplication: app.gui.app.main reuses an existing instance.
        self.app = QApplication.instance() or QApplication([sys.argv[0]])
        self._poll = QTimer(interval=50, timeout=self._find_window)
        self._poll.start()
        QTimer.singleShot(int(timeout_s * 1000), self._timeout)
        self._hook_exceptions()

    def _hook_exceptions(self) -> None:
        previous = sys.excepthook

        def record(kind, value, tb):
            self.report["exceptions"].append("".join(traceback.format_exception(kind, value, tb))[-2000:])
            previous(kind, value, tb)

        sys.excepthook = record
        threading.excepthook = lambda a: record(a.exc_type, a.exc_value, a.exc_traceback)

    def _mark(self, name: str) -> None:
        self.report["seconds"][name] = round(time.perf_counter() - self.started, 3)

    def _find_window(self) -> None:
        from PySide6.QtWidgets import QApplication

        for widget in QApplication.topLevelWidgets():
            if type(widget).__name__ == "MainWindow" and widget.isVisible():
                self._poll.stop()
                self._attach(widget)
                return

    def _attach(self, window) -> None:
        self.window = window
        self.report.update(window=True, window_title=window.windowTitle(),
                           window_icon=not self.app.windowIcon().isNull())
        self._mark("window_shown")
        self.stage = "waiting for the default model to load"
        try:
            original_notice = window.show_notice

            def notice(text: str, action: str = "") -> None:
                self.report["notices"].append(text)
                original_notice(text, action)

            window.show_notice = notice
            window.bridge.modelLoaded.connect(self._on_loaded)
            window.bridge.finished.connect(self._on_finished)
            if self.adding or self.catalog_id:
                self.stage = "waiting for the model added through the child process"
                window.downloads.finished.connect(self._on_added)
            if self.adding:
                from pathlib import Path

                window.add_model(Path(self.adding))
            elif self.catalog_id:
                from engine.library import catalog
                from engine.library.acquire import request_for_catalog

                entry = next(e for e in catalog.load() if e.id == self.catalog_id)
                window.downloads.acquire(request_for_catalog(entry))
        except AttributeError as exc:
            self._fail(f"the smoke driver no longer matches MainWindow ({exc}); update packaging/hearth_main.py")

    def _on_added(self, _key: str, done: dict) -> None:
        self.report["added"] = done
        self._mark("model_added")
        if done.get("status") != "complete":
            self._fail(f"adding {self.adding} failed: {done.get('error')}")
            return
        self.added_ref = done["ref"]
        self.stage = "waiting for the added model to load"
        if self.catalog_id:
            self.window._start_with_model(self.added_ref)  # what the welcome page's Ready does

    def _on_loaded(self, loaded: dict) -> None:
        from engine.sampling import SamplingSettings

        if (self.adding or self.catalog_id) and (self.added_ref is None or loaded.get("name") != self.added_ref):
            return  # the default model, loaded while the added one was still on its way

        self.report["model"] = loaded.get("name")
        self._mark("model_loaded")
        self.stage = "waiting for the answer"
        try:
            self.window.chat.sampling = SamplingSettings(temperature=0.0, max_tokens=self.max_tokens)
            self.window.chat.send(self.prompt)
        except Exception as exc:  # noqa: BLE001 - reported
            self._fail(f"sending the message failed: {type(exc).__name__}: {exc}")

    def _on_finished(self, _request_id: int, data: dict) -> None:
        reason = data.get("finish_reason")
        if reason == "done":  # a load or another non-generation request
            return
        if reason == "error":
            self._fail(f"the engine reported an error while {self.stage}: {data.get('error')}")
            return
        self.report.update(finish_reason=reason, generation_tokens=data.get("generation_tokens"),
                           text=data.get("text"))
        self._mark("answered")
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, self._check_saved)  # after the chat controller has saved the turn

    def _check_saved(self) -> None:
        try:
            chat = self.window.chat
            path = chat.store.active_path(chat.conversation_id)
            last = path[-1] if path else None
            self.report["saved_answer"] = (last.role, last.content) if last else None
            saved_ok = bool(last and last.role == "assistant" and last.content == self.report["text"])
        except Exception as exc:  # noqa: BLE001 - reported
            self._fail(f"reading the saved conversation failed: {type(exc).__name__}: {exc}")
            return
        ok = (saved_ok and self.report["finish_reason"] in ("length", "stop")
              and bool(self.report["generation_tokens"]) and not self.report["notices"]
              and not self.report["exceptions"])
        if not ok and self.report["error"] is None:
            self.report["error"] = "the answer was not as expected (see the report)"
        self._close(ok)

    def _timeout(self) -> None:
        if not self.done:
            self._fail(f"timed out while {self.stage}")

    def _fail(self, error: str) -> None:
        if self.report["error"] is None:
            self.report["error"] = error
        self._close(False)

    def _close(self, ok: bool) -> None:
        if self.done:
            return
        self.done = True
        self.report["ok"] = ok
        self._poll.stop()
        if self.window is not None:
            self.window.close()  # the app's own quit path: saves state, stops the engine thread
        self.app.quit()

    def finish(self, status: int) -> int:
        self._mark("exited")
        if not self.done:
            self.report["error"] = self.report["error"] or f"the app quit by itself (status {status})"
        self.report["exit_status"] = status
        print(REPORT_PREFIX + json.dumps(self.report), flush=True)
        return 0 if self.report["ok"] and status == 0 else 1


if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen child started by multiprocessing must not open the app
    sys.exit(main())
