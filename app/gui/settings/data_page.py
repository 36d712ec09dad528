"""The Data page: where Hearth keeps things, opening the data folder, exporting conversations, and
the conversation caches saved on disk (their size, their budget, compression, a Clear button)."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from engine import disk_cache, paths
from engine.history import HistoryStore
from engine.history import export as history_export
from engine.model_folder import hub_cache_dir

from ...history_cli import write_atomically
from ..background import run_in_background
from .widgets import Section, double_spin, hbox, named, push_button

GB = 10**9


class DataPage(Section):
    """Where Hearth keeps things, opening the data folder, exporting every conversation."""

    PLACES = (("data", "Conversations and models"), ("config", "Settings"), ("cache", "Cache"),
              ("logs", "Logs"), ("hf", "Hugging Face models"))

    def __init__(self, store: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__("Data message", parent)
        self.store = store
        self.places: dict[str, QLineEdit] = {}
        form = QFormLayout()
        for key, label in self.PLACES:
            field = named(QLineEdit(), f"{label} folder")
            field.setReadOnly(True)
            self.places[key] = field
            form.addRow(f"{label}:", field)
        self.open_button = push_button("Open Data Folder", "Open data folder", self.open_data_folder)
        self.export_button = push_button("Export All Conversations…", "Export all conversations",
                                         self.choose_export_file, "As Markdown to read, or JSON to import again")
        self.kv_size = named(QLabel("…"), "Size of the saved conversation caches")
        self.kv_clear = push_button("Clear", "Clear saved conversation caches", self.clear_kv_caches,
                                    "Chats stay; they are read again from the start next time")
        self.kv_budget = double_spin("Disk budget for saved conversation caches, in GB", 0, 10_000, 1, 1)
        self.kv_budget.setSuffix(" GB")
        self.kv_budget.setSpecialValueText("off")
        self.kv_budget.editingFinished.connect(self._budget_edited)
        self.kv_compress = named(
            QCheckBox("Compress saved conversation caches (8-bit)"), "Compress saved conversation caches",
            "Saved caches take about a quarter of the space (half, for float16 models); an answer "
            "continuing from one may differ slightly from one computed afresh")
        self.kv_compress.toggled.connect(self._compress_toggled)
        form.addRow("Conversation caches:", hbox(self.kv_size, self.kv_clear))
        form.addRow("Cache budget:", self.kv_budget)
        form.addRow("", self.kv_compress)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(hbox(self.open_button, self.export_button))
        layout.addWidget(self.banner)
        layout.addStretch(1)

    def reload(self) -> None:
        self.run(storage_places, self._show_places, "Could not find Hearth's folders")
        self.run(kv_cache_summary, self._show_kv, "Could not read the saved conversation caches")

    def _show_kv(self, summary: tuple[int, int, bool]) -> None:
        used, budget, compressed = summary
        self.kv_size.setText(f"{used / GB:.2f} GB saved on disk, so long chats answer at once after a "
                             f"restart")
        for widget in (self.kv_budget, self.kv_compress):
            widget.blockSignals(True)
        self.kv_budget.setValue(budget / GB)
        self.kv_compress.setChecked(compressed)
        for widget in (self.kv_budget, self.kv_compress):
            widget.blockSignals(False)

    def _compress_toggled(self, on: bool) -> None:
        self.run(lambda: set_kv_compressed(on), self._show_kv, "Could not save the cache setting")

    def clear_kv_caches(self) -> None:
        self.kv_clear.setEnabled(False)
        run_in_background(disk_cache.clear, self._kv_cleared, self._kv_failed, parent=self)

    def _kv_cleared(self, freed: int) -> None:
        self.kv_clear.setEnabled(True)
        self.banner.show_info(f"Cleared {freed / GB:.2f} GB of saved conversation caches.")
        self.run(kv_cache_summary, self._show_kv, "Could not read the saved conversation caches")

    def _kv_failed(self, exc: Exception) -> None:
        self.kv_clear.setEnabled(True)
        self.banner.show_error(f"Could not clear the saved conversation caches: {exc}")

    def _budget_edited(self) -> None:
        budget = int(self.kv_budget.value() * GB)
        self.run(lambda: set_kv_budget(budget), self._show_kv, "Could not save the cache budget")

    def _show_places(self, places: dict[str, str]) -> None:
        for key, path in places.items():
            self.places[key].setText(path)

    def open_data_folder(self) -> None:
        path = self.places["data"].text()
        if not path or not QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
            self.banner.show_error(f"Could not open the data folder; it is {path or 'not known yet'}.")

    def choose_export_file(self) -> None:
        dialog = QFileDialog(self, "Export all conversations")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters(["Markdown (*.md)", "JSON, to import again (*.json)"])
        dialog.setDefaultSuffix("md")
        dialog.filterSelected.connect(lambda f: dialog.setDefaultSuffix("json" if "json" in f else "md"))
        dialog.selectFile("Hearth conversations.md")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self._export_chosen)
        dialog.open()

    def _export_chosen(self, path: str) -> None:
        self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        """Write every conversation to path (JSON for .json, else Markdown), atomically, in the background."""
        self.export_button.setEnabled(False)
        self.banner.show_info(f"Exporting to {path}…")
        store = self.store
        run_in_background(lambda: write_export(store, path), lambda n: self._exported(path, n),
                          self._export_failed, parent=self)

    def _exported(self, path: Path, count: int) -> None:
        self.export_button.setEnabled(True)
        self.banner.show_info(f"Exported {count} conversation{'s' * (count != 1)} to {path}.")

    def _export_failed(self, exc: Exception) -> None:
        self.export_button.setEnabled(True)
        self.banner.show_error(f"The export failed, nothing was written: {exc}. Choose another place and try again.")


# --- background work (plain functions: no widgets, no Qt models) ---

def storage_places() -> dict[str, str]:
    return {"data": str(paths.data_dir()), "config": str(paths.config_dir()), "cache": str(paths.cache_dir()),
            "logs": str(paths.logs_dir()), "hf": str(hub_cache_dir())}


def kv_cache_summary() -> tuple[int, int, bool]:
    """Bytes the saved conversation caches take, their budget, and whether they are saved at 8 bits."""
    return disk_cache.total_bytes(), disk_cache.read_budget(), disk_cache.read_kv_bits() == 8


def set_kv_compressed(on: bool) -> tuple[int, int, bool]:
    """Save whether caches are saved at 8 bits (the app and the terminal read it when they save one;
    files saved before keep their precision), and return the new summary."""
    disk_cache.write_kv_bits(8 if on else None)
    return kv_cache_summary()


def set_kv_budget(budget: int) -> tuple[int, int]:
    """Save the budget, trim the saved caches to it, and return the new summary."""
    disk_cache.write_budget(budget)
    disk_cache.evict(budget)
    return kv_cache_summary()


def write_export(store: HistoryStore, path: Path) -> int:
    """Every conversation to path, JSON for a .json name and Markdown otherwise; the count."""
    if path.suffix.lower() == ".json":
        data = history_export.export_json(store)
        text, count = json.dumps(data, ensure_ascii=False, indent=1) + "\n", len(data["conversations"])
    else:
        text, count = history_export.export_markdown(store), store.count_conversations()
    write_atomically(path, text)
    return count
