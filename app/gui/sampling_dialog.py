"""This chat's sampling settings (temperature, top-p, ...), saved with the conversation."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QSpinBox,
)

from engine.errors import HearthError
from engine.sampling import SamplingSettings


def _spin(minimum: float, maximum: float, step: float, decimals: int, name: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox(minimum=minimum, maximum=maximum, singleStep=step, decimals=decimals)
    box.setAccessibleName(name)
    return box


class SamplingDialog(QDialog):
    def __init__(self, settings: SamplingSettings, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sampling for this chat")
        self.temperature = _spin(0, 5, 0.05, 2, "Temperature")
        self.top_p = _spin(0, 1, 0.01, 2, "Top-p")
        self.min_p = _spin(0, 1, 0.01, 2, "Min-p")
        self.repetition = _spin(0.5, 3, 0.05, 2, "Repetition penalty")
        self.top_k = QSpinBox(minimum=0, maximum=10000)
        self.top_k.setAccessibleName("Top-k")
        self.max_tokens = QSpinBox(minimum=1, maximum=131072)
        self.max_tokens.setAccessibleName("Maximum tokens")
        self.use_seed = QCheckBox("Fixed seed")
        self.use_seed.setAccessibleName("Use a fixed seed")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed.setAccessibleName("Seed")
        self.stop = QPlainTextEdit()
        self.stop.setAccessibleName("Stop strings, one per line")
        self.stop.setMaximumHeight(70)
        self.error = QLabel()
        self.error.setAccessibleName("Sampling error")
        self._fill(settings)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        for label, widget in (("Temperature (0 = greedy)", self.temperature), ("Top-p", self.top_p),
                              ("Top-k (0 = off)", self.top_k), ("Min-p", self.min_p),
                              ("Repetition penalty (1 = off)", self.repetition), ("Max tokens", self.max_tokens),
                              (self.use_seed, self.seed), ("Stop strings (one per line)", self.stop)):
            form.addRow(label, widget)
        form.addRow(self.error)
        form.addRow(buttons)
        self.result_settings = settings

    def _fill(self, s: SamplingSettings) -> None:
        self.temperature.setValue(s.temperature)
        self.top_p.setValue(s.top_p)
        self.top_k.setValue(s.top_k)
        self.min_p.setValue(s.min_p)
        self.repetition.setValue(s.repetition_penalty)
        self.max_tokens.setValue(s.max_tokens)
        self.use_seed.setChecked(s.seed is not None)
        self.seed.setValue(s.seed or 0)
        self.stop.setPlainText("\n".join(s.stop))

    def settings(self) -> SamplingSettings:
        return SamplingSettings(
            temperature=self.temperature.value(), top_p=self.top_p.value(), top_k=self.top_k.value(),
            min_p=self.min_p.value(), repetition_penalty=self.repetition.value(),
            max_tokens=self.max_tokens.value(),
            stop=tuple(line for line in self.stop.toPlainText().split("\n") if line),
            seed=self.seed.value() if self.use_seed.isChecked() else None)

    def _accept(self) -> None:
        try:
            self.result_settings = self.settings()
        except HearthError as exc:
            self.error.setText(str(exc))
            return
        self.accept()
