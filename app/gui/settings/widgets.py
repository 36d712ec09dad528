"""Small widget helpers shared by the Settings pages: accessible names, buttons, layouts,
spin boxes, the inline message Banner and the Section base class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible, QAccessibleEvent
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget

from ..background import run_in_background


def named(widget: QWidget, name: str, description: str = "") -> Any:
    """The widget, with the name (and description) screen readers announce."""
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
    return widget


def push_button(text: str, name: str, slot: Callable[[], None], description: str = "") -> QPushButton:
    button = named(QPushButton(text), name, description)
    button.clicked.connect(slot)
    return button


def hbox(*widgets: QWidget, stretch: bool = True) -> QHBoxLayout:
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    if stretch:
        layout.addStretch(1)
    return layout


def double_spin(name: str, low: float, high: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    spin = named(QDoubleSpinBox(), name)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    return spin


def int_spin(name: str, low: int, high: int, special: str = "") -> QSpinBox:
    spin = named(QSpinBox(), name)
    spin.setRange(low, high)
    if special:
        spin.setSpecialValueText(special)  # shown for the minimum, e.g. "off"
    return spin


class Banner(QLabel):
    """An inline, non-modal message on a page: an error (with what to do) or a note."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)  # errors can quote anything
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setAccessibleName(name)
        self.is_error = False
        self.hide()

    def show_error(self, text: str) -> None:
        self._show(text, error=True)

    def show_info(self, text: str) -> None:
        self._show(text, error=False)

    def clear_message(self) -> None:
        self.is_error = False
        self.setText("")
        self.hide()

    def _show(self, text: str, error: bool) -> None:
        if not self.isHidden() and (text, error) == (self.text(), self.is_error):
            return  # unchanged: do not announce it again
        self.is_error = error
        self.setText(text)
        self.setStyleSheet("font-weight: bold;" if error else "")
        self.setAccessibleDescription("Error" if error else "")
        self.show()
        if error:  # screen readers announce it without moving the focus
            QAccessible.updateAccessibility(QAccessibleEvent(self, QAccessible.Event.Alert))


class Section(QWidget):
    """A part of a page with its own inline message banner."""

    def __init__(self, banner_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.banner = Banner(banner_name)

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None], failure: str) -> None:
        """fn in the background; its error shown here as '<failure>: <the engine's message>'."""
        run_in_background(fn, on_done, lambda exc: self.banner.show_error(f"{failure}: {exc}"), parent=self)
