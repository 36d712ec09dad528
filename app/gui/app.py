"""Starting the desktop app: a window on screen first, then the engine thread, then models."""

from __future__ import annotations

import sys

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication


def apply_theme(theme: str) -> None:
    from PySide6.QtCore import Qt

    hints = QGuiApplication.styleHints()
    if hasattr(hints, "setColorScheme"):
        scheme = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(theme, Qt.ColorScheme.Unknown)
        hints.setColorScheme(scheme)


def build_window(app: QApplication):
    from engine.history import HistoryStore

    from .bridge import EngineBridge
    from .main_window import MainWindow
    from .prefs import Prefs

    prefs = Prefs()
    apply_theme(prefs.get("appearance/theme"))
    font = app.font()
    font.setPointSize(int(prefs.get("appearance/font_size")))
    app.setFont(font)
    store = HistoryStore()
    downloads = _download_manager(app)
    window = MainWindow(store, prefs, EngineBridge(), downloads)
    if store.recovered_from:
        window.show_notice(f"The history database was damaged; it was kept at {store.recovered_from} and "
                           f"a new one was started.")
    return window


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
    window = build_window(app)
    window.show()
    return app.exec()
