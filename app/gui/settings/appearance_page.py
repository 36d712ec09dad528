"""The Appearance page: theme and font size, and applying them to the running application."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QComboBox, QFormLayout, QWidget

from ..prefs import Prefs
from .widgets import int_spin, named

THEMES = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


def apply_appearance(prefs: Prefs) -> None:
    """Apply the saved theme and font size to the running application (also call at startup)."""
    scheme = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(prefs.get("appearance/theme"))
    request_color_scheme(scheme)
    app = QApplication.instance()
    if isinstance(app, QApplication):
        font = app.font()
        font.setPointSize(int(prefs.get("appearance/font_size")))
        app.setFont(font)


def request_color_scheme(scheme: Qt.ColorScheme | None) -> None:
    """Force light or dark, or follow the system (None). Platforms without the feature (Qt < 6.8,
    some Linux themes, offscreen) ignore the request."""
    hints = QGuiApplication.styleHints()
    if not hasattr(hints, "setColorScheme"):
        return
    if scheme is not None:
        hints.setColorScheme(scheme)
    elif hasattr(hints, "unsetColorScheme"):
        hints.unsetColorScheme()
    else:
        hints.setColorScheme(Qt.ColorScheme.Unknown)


class AppearancePage(QWidget):
    """Theme and font size, applied as soon as they change.

    Signals:
        changed(): the appearance was changed, applied and saved.
    """

    changed = Signal()

    def __init__(self, prefs: Prefs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prefs = prefs
        self.theme = named(QComboBox(), "Theme")
        for key, label in THEMES.items():
            self.theme.addItem(label, key)
        self.theme.setCurrentIndex(max(self.theme.findData(prefs.get("appearance/theme")), 0))
        self.font_size = int_spin("Font size in points", 9, 32)
        self.font_size.setValue(prefs.get("appearance/font_size"))
        form = QFormLayout(self)
        form.addRow("Theme:", self.theme)
        form.addRow("Font size:", self.font_size)
        self.theme.currentIndexChanged.connect(self._apply)
        self.font_size.valueChanged.connect(self._apply)

    def _apply(self) -> None:
        self.prefs.set("appearance/theme", self.theme.currentData())
        self.prefs.set("appearance/font_size", self.font_size.value())
        apply_appearance(self.prefs)
        self.changed.emit()
