"""The bar above the chat: the sidebar button, the model picker (size, fit, which one is loaded),
the model's state with a load indicator, Unload, Sampling and Settings; under it, the chat's
system prompt on one line.

It stays usable from a 640-pixel window: the picker and the state give up width first, and long
texts are cut with an ellipsis (the whole text in the tool tip), never overlapping the buttons.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .plain_text import plain_tooltip
from .system_prompt import SystemPromptLine

FIT_WORDS = {"fits": "fits", "tight": "tight fit", "too_large": "too large"}


def size_text(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"


def model_item_text(name: str, size: int, fit: str, state: str = "") -> str:
    """A model as the picker lists it: name, size, whether it fits, and loaded or loading."""
    return " · ".join(filter(None, [name, size_text(size), FIT_WORDS.get(fit, fit), state]))


class ElidedLabel(QLabel):
    """A one-line plain-text label that shrinks to any width, cutting its text with an ellipsis;
    text() is always the whole text (screen readers read it whole)."""

    def __init__(self, text: str = "", minimum_width: int = 60, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setMinimumWidth(minimum_width)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def minimumSizeHint(self) -> QSize:
        return QSize(self.minimumWidth(), super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        return QSize(min(super().sizeHint().width(), 400), super().sizeHint().height())

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        rect = self.contentsRect()
        shown = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect, int(self.alignment() | Qt.AlignmentFlag.AlignVCenter), shown)


class ModelPicker(QComboBox):
    """A combo box whose shown text is cut with an ellipsis when narrow, not clipped mid-letter."""

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        field = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                            QStyle.SubControl.SC_ComboBoxEditField, self)
        option.currentText = self.fontMetrics().elidedText(option.currentText, Qt.TextElideMode.ElideRight,
                                                           field.width() - 4)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


def sidebar_icon(color) -> QIcon:
    """The usual sidebar symbol (a window with a left pane), drawn, so no font or file is needed."""
    pixmap = QPixmap(36, 36)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = painter.pen()
    pen.setColor(color)
    pen.setWidthF(2.6)
    painter.setPen(pen)
    painter.drawRoundedRect(QRect(4, 7, 28, 22), 4, 4)
    painter.drawLine(14, 8, 14, 28)
    painter.end()
    return QIcon(pixmap)


class ChatHeader(QWidget):
    """The controls above the chat (see the module). The main window wires them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sidebar_toggle = QToolButton()
        self.sidebar_toggle.setCheckable(True)
        self.sidebar_toggle.setChecked(True)
        self.sidebar_toggle.setAccessibleName("Sidebar")
        self.sidebar_toggle.setToolTip("Show or hide the conversations")
        self.sidebar_toggle.setAutoRaise(True)
        self.model_picker = ModelPicker()
        self.model_picker.setAccessibleName("Model")
        self.model_picker.setToolTip("The model that answers")
        self.model_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_picker.setMinimumContentsLength(10)
        self.model_picker.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.model_picker.setMaximumWidth(360)
        self.model_picker.view().setAccessibleName("Installed models")
        self.model_picker.view().setTextElideMode(Qt.TextElideMode.ElideMiddle)
        # On Linux a combo box is announced by its current item unless a label names it.
        self.model_label = QLabel("&Model")
        self.model_label.setBuddy(self.model_picker)
        self.model_label.hide()  # the picker speaks for itself on screen
        self.model_state = ElidedLabel("No model loaded", minimum_width=90)
        self.loading_bar = QProgressBar()
        self.loading_bar.setAccessibleName("Model loading")
        self.loading_bar.setRange(0, 0)  # busy: loading reports no steps
        self.loading_bar.setFixedWidth(56)
        self.loading_bar.setTextVisible(False)
        self.loading_bar.hide()
        self.unload_button = QPushButton("Unload")
        self.unload_button.setAccessibleName("Unload model")
        self.unload_button.setToolTip("Free the memory the model holds")
        self.unload_button.setEnabled(False)
        self.sampling_button = QPushButton("Sampling…")
        self.sampling_button.setAccessibleName("Sampling settings for this chat")
        self.settings_button = QPushButton("Settings")
        self.settings_button.setAccessibleName("Settings")
        self.system_line = SystemPromptLine()
        self.system_button = self.system_line.full_button
        self._layout()
        self.update_icons()

    def _layout(self) -> None:
        top = QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(self.sidebar_toggle)
        top.addWidget(self.model_label)
        top.addWidget(self.model_picker, 2)
        top.addWidget(self.loading_bar)
        top.addWidget(self.model_state, 2)
        top.addWidget(self.unload_button)
        top.addWidget(self.sampling_button)
        top.addWidget(self.settings_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(6, 6, 6, 2)
        column.setSpacing(4)
        column.addLayout(top)
        column.addWidget(self.system_line)

    def update_icons(self) -> None:
        """Redraw the drawn icons in the palette's text colour (after a light/dark switch)."""
        self.sidebar_toggle.setIcon(sidebar_icon(self.palette().color(QPalette.ColorRole.ButtonText)))
        self.sidebar_toggle.setIconSize(QSize(18, 18))

    def show_state(self, text: str, loading: bool = False) -> None:
        self.model_state.setText(text)
        self.model_state.setToolTip(plain_tooltip(text))
        self.loading_bar.setVisible(loading)

    def set_models(self, models: list, loaded_ref: str | None, loading_ref: str | None) -> None:
        """List the installed models, marking the loaded (or loading) one. Keeps the selection."""
        current = self.model_picker.currentData()
        self.model_picker.clear()
        for m in models:
            report = m.fit()
            state = "loaded" if m.ref == loaded_ref else "loading…" if m.ref == loading_ref else ""
            text = model_item_text(m.name, m.size_bytes, report.verdict if report else "", state)
            self.model_picker.addItem(text, m.ref)
            index = self.model_picker.count() - 1
            self.model_picker.setItemData(index, plain_tooltip(text), Qt.ItemDataRole.ToolTipRole)
        if current is not None:
            self.model_picker.setCurrentIndex(max(0, self.model_picker.findData(current)))
