"""Starting the desktop app: a window on screen first, then the engine thread, then models."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication


def build_window(app: QApplication, store=None):
    """The main window; `store` is the opened history (opened here, on this thread, when None)."""
    from engine.history import HistoryStore

    from .bridge import EngineBridge
    from .main_window import MainWindow
    from .prefs import Prefs
    from .theme import ThemeFollower

    prefs = Prefs()
    theme = ThemeFollower(prefs)  # before the window, so it opens in its colours
    font = app.font()
    font.setPointSize(int(prefs.get("appearance/font_size")))
    app.setFont(font)
    store = store or HistoryStore()
    downloads = _download_manager(app)
    window = MainWindow(store, prefs, EngineBridge(), downloads)
    theme.setParent(window)
    window.set_theme(theme)
    if store.recovery:
        window.show_notice(str(store.recovery))
    return window


class _HistoryOpener(QObject):
    """Opens the history on a worker thread while the event loop runs, so that a history another
    Hearth process holds locked shows a waiting note instead of a frozen, blank app.

    Signals:
        waiting(str): another process holds the history; the text says so.
        done(): the store is open, or opening failed (see .store / .error).
    """

    waiting = Signal(str)
    done = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.store = None
        self.error: Exception | None = None

    def run(self) -> None:  # worker thread
        from engine.history import HistoryStore

        try:
            self.store = HistoryStore(on_wait=self.waiting.emit)
        except Exception as exc:  # noqa: BLE001 - shown to the user by open_history
            self.error = exc
        self.done.emit()


def open_history(app: QApplication):
    """The history store, opened without blocking the GUI thread; None (after telling the user why,
    in one dialog) when it cannot be opened: locked too long, unreadable, read-only, full disk, too new."""
    import threading

    from PySide6.QtCore import QEventLoop

    opener = _HistoryOpener()
    loop = QEventLoop()
    note = _waiting_note()
    opener.waiting.connect(note.setText)  # bound slots: queued to this thread, unlike a lambda
    opener.waiting.connect(note.show)
    opener.done.connect(loop.quit)
    worker = threading.Thread(target=opener.run, name="hearth-open-history", daemon=True)
    worker.start()
    if worker.is_alive():
        loop.exec()
    worker.join()
    note.close()
    if opener.error is not None:
        _cannot_open(opener.error)
        return None
    return opener.store


def _waiting_note():
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    note = QLabel()
    note.setWindowTitle("Hearth")
    note.setTextFormat(Qt.TextFormat.PlainText)
    note.setWordWrap(True)
    note.setMargin(24)
    note.setAccessibleName("Waiting for the history")
    note.resize(460, 120)
    return note


def _cannot_open(error: Exception) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Critical, "Hearth cannot open its history", str(error))
    box.setTextFormat(Qt.TextFormat.PlainText)  # paths and SQLite's words, never markup
    box.setAccessibleName("Hearth cannot open its history")
    box.exec()


def _download_manager(app):
    try:
        from .downloads import DownloadManager
    except ImportError:  # the downloads page is optional at start-up
        return None
    return DownloadManager(app)


def set_window_icon(app: QApplication) -> None:
    from pathlib import Path

    from PySide6.QtGui import QIcon

    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[2]))  # the bundle when frozen
    icon = base / "resources" / "icon.png"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))


def main(argv: list[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("Hearth")
    app.setOrganizationName("Hearth")
    set_window_icon(app)
    store = open_history(app)
    if store is None:
        return 1
    window = build_window(app, store)
    window.show()
    return app.exec()
