"""The Generation page: default system prompt, sampling, context policy and length, speculative
decoding, and presets."""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from engine.errors import HearthError
from engine.history import HistoryStore
from engine.library import library
from engine.sampling import SamplingSettings

from ..background import run_in_background
from ..prefs import Prefs
from .widgets import Banner, double_spin, hbox, int_spin, named, push_button

SAVE_DELAY_MS = 400  # generation settings are written once typing pauses, not on every keystroke
CONTEXT_POLICIES = {"drop_oldest": "Drop the oldest exchanges, keep the system prompt"}
# Prefs "generation/draft": one of these modes, or the ref of a draft model from the library.
DRAFT_MODES = {"auto": "Automatic (prompt lookup where it pays)", "lookup": "Prompt lookup", "off": "Off"}
DRAFT_DEFAULT = "auto"


class SamplingForm(QWidget):
    """Temperature, top-p, top-k, min-p, repetition penalty, max tokens and an optional seed.

    Signals:
        changed(): any value was edited.
    """

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.temperature = double_spin("Temperature", 0.0, 2.0, 0.05)
        self.top_p = double_spin("Top-p", 0.0, 1.0, 0.05)
        self.top_k = int_spin("Top-k", 0, 1000, "off")
        self.min_p = double_spin("Min-p", 0.0, 1.0, 0.01)
        self.repetition_penalty = double_spin("Repetition penalty", 0.5, 2.0, 0.05)
        self.max_tokens = int_spin("Maximum tokens per answer", 1, 131072)
        self.fixed_seed = named(QCheckBox("Fixed seed"), "Use a fixed seed",
                                "Makes answers repeatable with the same settings")
        self.seed = int_spin("Seed", 0, 2**31 - 1)
        form = QFormLayout(self)
        form.addRow("Temperature:", self.temperature)
        form.addRow("Top-p:", self.top_p)
        form.addRow("Top-k:", self.top_k)
        form.addRow("Min-p:", self.min_p)
        form.addRow("Repetition penalty:", self.repetition_penalty)
        form.addRow("Max tokens:", self.max_tokens)
        form.addRow(self.fixed_seed, self.seed)
        for spin in (self.temperature, self.top_p, self.min_p, self.repetition_penalty):
            spin.valueChanged.connect(self.changed)
        for spin in (self.top_k, self.max_tokens, self.seed):
            spin.valueChanged.connect(self.changed)
        self.fixed_seed.toggled.connect(self.seed.setEnabled)
        self.fixed_seed.toggled.connect(self.changed)

    def set_values(self, settings: SamplingSettings) -> None:
        self.blockSignals(True)
        self.temperature.setValue(settings.temperature)
        self.top_p.setValue(settings.top_p)
        self.top_k.setValue(settings.top_k)
        self.min_p.setValue(settings.min_p)
        self.repetition_penalty.setValue(settings.repetition_penalty)
        self.max_tokens.setValue(settings.max_tokens)
        self.fixed_seed.setChecked(settings.seed is not None)
        self.seed.setEnabled(settings.seed is not None)
        self.seed.setValue(settings.seed or 0)
        self.blockSignals(False)

    def values(self, base: SamplingSettings) -> SamplingSettings:
        """The form's values over `base` (which keeps the fields not shown); may raise HearthError."""
        return dataclasses.replace(
            base, temperature=round(self.temperature.value(), 4), top_p=round(self.top_p.value(), 4),
            top_k=self.top_k.value(), min_p=round(self.min_p.value(), 4),
            repetition_penalty=round(self.repetition_penalty.value(), 4), max_tokens=self.max_tokens.value(),
            seed=self.seed.value() if self.fixed_seed.isChecked() else None)


class PresetsBox(QGroupBox):
    """Presets from the history store: a name, a system prompt and the sampling form's values."""

    def __init__(self, store: HistoryStore, sampling: SamplingForm, banner: Banner,
                 parent: QWidget | None = None) -> None:
        super().__init__("Presets", parent)
        self.store, self.sampling, self.banner = store, sampling, banner
        self.list = named(QListWidget(), "Presets")
        self.name = named(QLineEdit(), "Preset name")
        self.prompt = named(QPlainTextEdit(), "Preset system prompt")
        self.prompt.setTabChangesFocus(True)
        self.prompt.setMaximumHeight(90)
        self.make_default = named(QCheckBox("Default for new conversations"), "Make this preset the default")
        self.new_button = push_button("New", "New preset", self.new_preset)
        self.save_button = push_button("Save Preset", "Save preset",
                                       self.save_preset, "Saves the name, prompt and the sampling values above")
        self.delete_button = push_button("Delete Preset", "Delete preset", self.delete_preset)
        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("System prompt:", self.prompt)
        form.addRow("", self.make_default)
        layout = QHBoxLayout(self)
        layout.addWidget(self.list, 1)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addLayout(hbox(self.new_button, self.save_button, self.delete_button))
        layout.addLayout(right, 2)
        self.list.currentItemChanged.connect(self._show_preset)

    def reload(self, select: str | None = None) -> None:
        run_in_background(self.store.presets, lambda presets: self._show_list(presets, select),
                          lambda exc: self.banner.show_error(f"Could not read the presets: {exc}"), parent=self)

    def _show_list(self, presets: list, select: str | None) -> None:
        self.list.clear()
        for preset in presets:
            item = QListWidgetItem(f"{preset.name} (default)" if preset.is_default else preset.name)
            item.setData(Qt.ItemDataRole.UserRole, preset)
            self.list.addItem(item)
            if preset.name == select:
                self.list.setCurrentItem(item)

    def _show_preset(self, item: QListWidgetItem | None) -> None:
        preset = item.data(Qt.ItemDataRole.UserRole) if item else None
        if preset is not None:
            self.name.setText(preset.name)
            self.prompt.setPlainText(preset.system_prompt)
            self.make_default.setChecked(preset.is_default)

    def new_preset(self) -> None:
        self.list.setCurrentItem(None)
        self.name.clear()
        self.prompt.clear()
        self.make_default.setChecked(False)
        self.name.setFocus()

    def save_preset(self) -> None:
        name, prompt, default = self.name.text().strip(), self.prompt.toPlainText(), self.make_default.isChecked()
        try:
            settings = self.sampling.values(SamplingSettings()).to_dict()
        except HearthError as exc:
            self.banner.show_error(f"The preset was not saved: {exc}")
            return
        store = self.store  # the worker gets plain values, never a widget
        run_in_background(lambda: store.save_preset(name, prompt, settings, make_default=default),
                          lambda preset: self._saved(preset.name),
                          lambda exc: self.banner.show_error(f"The preset was not saved: {exc}"), parent=self)

    def _saved(self, name: str) -> None:
        self.banner.show_info(f"Preset {name!r} saved.")
        self.reload(select=name)

    def delete_preset(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole).name
        store = self.store
        run_in_background(lambda: store.delete_preset(name), lambda _: self._deleted(name),
                          lambda exc: self.banner.show_error(f"Could not delete the preset: {exc}"), parent=self)

    def _deleted(self, name: str) -> None:
        self.banner.show_info(f"Preset {name!r} deleted.")
        self.new_preset()
        self.reload()


class GenerationPage(QWidget):
    """Default system prompt, sampling, context policy and length (Prefs), and presets (store).

    Edits are saved SAVE_DELAY_MS after the last change, and at once when the window closes.
    """

    def __init__(self, prefs: Prefs, store: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prefs = prefs
        self.banner = Banner("Generation settings message")
        self.system_prompt = named(QPlainTextEdit(), "Default system prompt")
        self.system_prompt.setTabChangesFocus(True)
        self.system_prompt.setMaximumHeight(100)
        self.sampling = SamplingForm()
        self.context_policy = named(QComboBox(), "When a conversation is longer than the context")
        for key, label in CONTEXT_POLICIES.items():
            self.context_policy.addItem(label, key)
        self.context_length = int_spin("Context length in tokens", 0, 131072, "the model's own (at most 8,192)")
        self.context_length.setSingleStep(1024)
        self.draft = named(QComboBox(), "Speculative decoding",
                           "Prompt lookup drafts from the conversation; a draft model must share the "
                           "default model's tokenizer")
        for key, label in DRAFT_MODES.items():
            self.draft.addItem(label, key)
        self.presets = PresetsBox(store, self.sampling, self.banner)
        self._save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_now)
        self._build()
        self.load()
        self.system_prompt.textChanged.connect(self._schedule_save)
        self.sampling.changed.connect(self._schedule_save)
        self.context_policy.currentIndexChanged.connect(self._schedule_save)
        self.context_length.valueChanged.connect(self._schedule_save)
        self.draft.currentIndexChanged.connect(self._schedule_save)
        QApplication.instance().aboutToQuit.connect(self.save_now)  # an edit just before quitting

    def _build(self) -> None:
        defaults = QGroupBox("Defaults for new conversations")
        form = QFormLayout(defaults)
        form.addRow("System prompt:", self.system_prompt)
        form.addRow(self.sampling)
        form.addRow("Context:", self.context_policy)
        form.addRow("Context length:", self.context_length)
        form.addRow("Speculative decoding:", self.draft)
        layout = QVBoxLayout(self)
        layout.addWidget(defaults)
        layout.addWidget(self.presets)
        layout.addWidget(self.banner)

    def load(self) -> None:
        """Fill the form from Prefs (QSettings keeps them in memory; no disk wait)."""
        self.system_prompt.setPlainText(self.prefs.get("generation/system_prompt"))
        self.sampling.set_values(self.prefs.sampling())
        policy = self.context_policy.findData(self.prefs.get("generation/context_policy"))
        self.context_policy.setCurrentIndex(max(policy, 0))
        self.context_length.setValue(self.prefs.get("generation/context_length"))
        self._show_draft(self.prefs.get("generation/draft", DRAFT_DEFAULT))

    def reload_drafts(self) -> None:
        """List the library's models that can draft for the default model (in the background: it
        reads their tokenizers)."""
        run_in_background(draft_candidates, self._show_draft_models,
                          lambda exc: self.banner.show_error(f"Could not list draft models: {exc}"),
                          parent=self)

    def _show_draft_models(self, models: list[tuple[str, str]]) -> None:
        chosen = self.draft.currentData()
        self.draft.blockSignals(True)
        while self.draft.count() > len(DRAFT_MODES):
            self.draft.removeItem(self.draft.count() - 1)
        for ref, name in models:
            self.draft.addItem(f"Draft model: {name}", ref)
        self.draft.blockSignals(False)
        self._show_draft(chosen)

    def _show_draft(self, value: str) -> None:
        """Select `value`; a model no longer listed (deleted, or the default model changed) stays
        chosen and says so, rather than silently becoming another choice."""
        index = self.draft.findData(value)
        self.draft.blockSignals(True)
        if index < 0:
            self.draft.addItem(f"Draft model: {value} (not checked against the default model)", value)
            index = self.draft.count() - 1
        self.draft.setCurrentIndex(index)
        self.draft.blockSignals(False)

    def _schedule_save(self, *_args: Any) -> None:
        self._save_timer.start()  # not connected directly: start(int) would take a value as the delay

    def save_now(self) -> None:
        self._save_timer.stop()
        try:
            sampling = self.sampling.values(self.prefs.sampling())
        except HearthError as exc:
            self.banner.show_error(f"{exc} The other settings were saved.")
            sampling = None
        self.prefs.set("generation/system_prompt", self.system_prompt.toPlainText())
        self.prefs.set("generation/context_policy", self.context_policy.currentData())
        self.prefs.set("generation/context_length", self.context_length.value())
        self.prefs.set("generation/draft", self.draft.currentData())
        if sampling is not None:
            self.prefs.set_sampling(sampling)


def draft_candidates() -> list[tuple[str, str]]:
    """(ref, name) of the installed models that can draft for the default model: smaller, and with
    the same tokenizer (what Engine.load_draft checks). Background work: it loads tokenizers."""
    from engine.speculative import can_draft_for
    from engine.tokenizer import load_tokenizer

    default = library.default_model()
    models = [m for m in library.installed_models() if m.usable and m.info is not None]
    target = next((m for m in models if m.ref == default), None)
    if target is None:
        return []
    target_tokenizer = load_tokenizer(target.info)
    found = []
    for model in models:
        if model.ref == target.ref or model.info.weight_bytes >= target.info.weight_bytes:
            continue
        try:
            if can_draft_for(load_tokenizer(model.info), target_tokenizer):
                found.append((model.ref, model.name))
        except Exception:  # noqa: BLE001 - a tokenizer that does not load cannot draft
            continue
    return found
