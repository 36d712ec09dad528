"""A chat's system prompt: one line above the chat, edited in place, and a dialog for the full text
or a saved preset."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.history import HistoryStore

from .plain_text import plain_tooltip


class SystemPromptDialog(QDialog):
    def __init__(self, store: HistoryStore, current: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("System prompt")
        self.presets = QComboBox()
        self.presets.setAccessibleName("Preset")
        self.presets.addItem("(keep current)", None)
        for preset in store.presets():
            self.presets.addItem(preset.name, preset.system_prompt)
        self.presets.activated.connect(self._apply_preset)
        self.editor = QPlainTextEdit(current)
        self.editor.setAccessibleName("System prompt text")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Start from a preset:"))
        layout.addWidget(self.presets)
        layout.addWidget(self.editor, 1)
        layout.addWidget(buttons)

    def _apply_preset(self, index: int) -> None:
        text = self.presets.itemData(index)
        if text is not None:
            self.editor.setPlainText(text)

    def text(self) -> str:
        return self.editor.toPlainText()


NEWLINE_MARK = "↵"  # a line break, as the one-line field shows it


def as_one_line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", NEWLINE_MARK)


def from_one_line(line: str) -> str:
    return line.replace(NEWLINE_MARK, "\n")


class SystemPromptLine(QWidget):
    """The chat's system prompt on one line, edited in place: Return or leaving the field saves it
    for this chat. Line breaks show as ↵ and are kept. Edit… opens the full editor with presets.

    Signals:
        edited(str): the user changed the system prompt to this text.
        fullEditorRequested(): Edit… was clicked.
    """

    edited = Signal(str)
    fullEditorRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._shown = ""
        self.edit = QLineEdit()
        self.edit.setAccessibleName("System prompt")
        self.edit.setPlaceholderText("No system prompt")
        self.edit.setToolTip("The instructions the model gets before this chat. Return saves them.")
        self.edit.editingFinished.connect(self._commit)
        label = QLabel("&System:")
        label.setBuddy(self.edit)
        self.full_button = QPushButton("Edit…")
        self.full_button.setAccessibleName("Edit the system prompt, or start from a preset")
        self.full_button.clicked.connect(self._request_full_editor)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(label)
        row.addWidget(self.edit, 1)
        row.addWidget(self.full_button)

    def text(self) -> str:
        return from_one_line(self.edit.text())

    def set_text(self, text: str) -> None:
        """Show this chat's system prompt (not an edit)."""
        self._shown = text
        self.edit.setText(as_one_line(text))
        self.edit.setCursorPosition(0)
        self.edit.setToolTip(plain_tooltip(text) if text else "No system prompt")

    def _commit(self) -> None:
        text = self.text()
        if text != self._shown:
            self._shown = text
            self.edit.setToolTip(plain_tooltip(text) if text else "No system prompt")
            self.edited.emit(text)

    def _request_full_editor(self) -> None:
        self.fullEditorRequested.emit()
