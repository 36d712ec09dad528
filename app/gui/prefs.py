"""The app's preferences: window state, appearance, generation defaults.

Stored with QSettings in an INI file in Hearth's config folder (so HEARTH_HOME moves it too), never
pickled. Conversations and models have their own stores; this is only how the app looks and behaves.
Every change is announced through `changed`, so what depends on a setting takes effect at once.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from engine import paths
from engine.errors import HearthError
from engine.sampling import SamplingSettings

DEFAULTS: dict[str, Any] = {
    "appearance/theme": "system",  # system, light, dark
    "appearance/font_size": 13,
    "generation/system_prompt": "You are a helpful, respectful and honest assistant.",
    "generation/context_policy": "drop_oldest",  # drop_oldest: leave out whole early exchanges
    "generation/context_length": 0,  # 0: the model's own (at most 8192)
}


class Prefs(QObject):
    """Signals:
        changed(str): the key whose value changed (only when the value differs).
    """

    changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        path = paths.config_dir() / "hearth.ini"
        self._settings = QSettings(str(path), QSettings.Format.IniFormat)

    def get(self, key: str, default: Any = None) -> Any:
        fallback = DEFAULTS.get(key, default)
        value = self._settings.value(key, fallback)
        if isinstance(fallback, bool):
            return value in (True, "true", "1", 1)
        if isinstance(fallback, int) and not isinstance(value, int):
            try:
                return int(value)
            except (TypeError, ValueError):
                return fallback
        return value

    def set(self, key: str, value: Any) -> None:
        # QSettings writes the file on its own shortly after, and at exit; no disk wait here.
        if self._settings.value(key, DEFAULTS.get(key)) == value:
            return  # writing what is already there (Settings saves every field) is no change
        self._settings.setValue(key, value)
        self.changed.emit(key)

    def sync(self) -> None:
        self._settings.sync()

    def sampling(self) -> SamplingSettings:
        stored = self._settings.value("generation/sampling")
        if isinstance(stored, str) and stored:
            try:
                return SamplingSettings.from_dict(json.loads(stored))
            except (ValueError, TypeError, HearthError):
                pass
        return SamplingSettings()

    def set_sampling(self, settings: SamplingSettings) -> None:
        if settings == self.sampling() and self._settings.contains("generation/sampling"):
            return
        self.set("generation/sampling", json.dumps(settings.to_dict()))

    def raw(self) -> QSettings:
        return self._settings
