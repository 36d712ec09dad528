"""This chat's sampling settings (temperature, top-p, ...), saved with the conversation.

The same form as the Generation settings page, plus stop strings."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
)

from engine.errors import HearthError
from engine.sampling import SamplingSettings

from .plain_text import plain
from .settings.generation_page import SamplingForm


class SamplingDialog(QDialog):
    def __init__(self, settings: SamplingSettings, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sampling for this chat")
        self.form = SamplingForm(self)
        self.form.set_values(settings)
        # The form's fields, under the names callers use.
        self.temperature, self.top_p, self.seed = self.form.temperature, self.form.top_p, self.form.seed
        self.use_seed = self.form.fixed_seed
        self.stop = QPlainTextEdit("\n".join(settings.stop))
        self.stop.setAccessibleName("Stop strings, one per line")
        self.stop.setMaximumHeight(70)
        self.error = plain(QLabel())
        self.error.setAccessibleName("Sampling error")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        extra = QFormLayout()
        extra.addRow("Stop strings (one per line):", self.stop)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        layout.addLayout(extra)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._base = settings
        self.result_settings = settings

    def settings(self) -> SamplingSettings:
        stop = tuple(line for line in self.stop.toPlainText().split("\n") if line)
        return dataclasses.replace(self.form.values(self._base), stop=stop)

    def _accept(self) -> None:
        try:
            self.result_settings = self.settings()
        except HearthError as exc:
            self.error.setText(str(exc))
            return
        self.accept()
