"""Editing a chat's system prompt, starting from a saved preset if wanted."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
)

from engine.history import HistoryStore


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
