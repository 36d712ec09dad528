"""The Appearance page: theme and font size, and applying them to the running application."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QApplication, QComboBox, QFormLayout, QWidget

from ..prefs import Prefs
from ..theme import apply_theme, request_color_scheme
from .widgets import int_spin, named

__all__ = ["THEMES", "AppearancePage", "apply_appearance", "request_color_scheme"]

THEMES = {"system": "System", "light": "Light", "dark": "Dark"}


def apply_appearance(prefs: Prefs) -> None:
    """Apply the saved theme and font size to the running application (also call at startup)."""
    apply_theme(prefs.get("appearance/theme"))
    app = QApplication.instance()
    if isinstance(app, QApplication):
        font = app.font()
        font.setPointSize(int(prefs.get("appearance/font_size")))
        app.setFont(font)


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
