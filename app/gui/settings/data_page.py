"""The Data page: where Hearth keeps things, opening the data folder, exporting conversations."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QFormLayout, QLineEdit, QVBoxLayout, QWidget

from engine import paths
from engine.history import HistoryStore
from engine.history import export as history_export
from engine.model_folder import hub_cache_dir

from ...history_cli import write_atomically
from ..background import run_in_background
from .widgets import Section, hbox, named, push_button


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
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(hbox(self.open_button, self.export_button))
        layout.addWidget(self.banner)
        layout.addStretch(1)

    def reload(self) -> None:
        self.run(storage_places, self._show_places, "Could not find Hearth's folders")

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


def write_export(store: HistoryStore, path: Path) -> int:
    """Every conversation to path, JSON for a .json name and Markdown otherwise; the count."""
    if path.suffix.lower() == ".json":
        data = history_export.export_json(store)
        text, count = json.dumps(data, ensure_ascii=False, indent=1) + "\n", len(data["conversations"])
    else:
        text, count = history_export.export_markdown(store), store.count_conversations()
    write_atomically(path, text)
    return count
