"""The Models page: the Installed tab (its rows, table model and actions) and the tab widget
holding it with the Catalog, Search, Downloads and Token tabs.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QProcess, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QTabWidget, QVBoxLayout, QWidget

from engine.convert.discover import find_models
from engine.fit import FitReport
from engine.library import library
from engine.library.library import InstalledModel

from ..add_model import acquire_local
from ..downloads import DownloadManager, format_bytes
from ..prefs import Prefs
from .catalog_page import CatalogSection
from .downloads_page import DownloadsSection
from .search_page import SearchSection
from .tables import (
    Column,
    RowTableModel,
    fit_label,
    format_day,
    format_params,
    selected_row,
    table_view,
)
from .token_page import TokenSection
from .widgets import Section, hbox, named, push_button


def open_externally(command: list[str]) -> bool:
    """Start a command detached from Hearth (reveal in Finder, open a folder)."""
    result = QProcess.startDetached(command[0], command[1:])
    return bool(result[0] if isinstance(result, tuple) else result)


@dataclass(frozen=True)
class ModelRow:
    model: InstalledModel
    fit: FitReport | None


def model_status(row: ModelRow) -> str:
    if not row.model.usable:
        return f"Unusable: {row.model.problem}"
    return "Default" if row.model.is_default else "Ready"


MODEL_COLUMNS = (
    Column("Name", lambda r: r.model.name, lambda r: str(r.model.path or "")),
    Column("Size on disk", lambda r: format_bytes(r.model.size_bytes)),
    Column("Parameters", lambda r: format_params(r.model.parameters)),
    Column("Quantization", lambda r: r.model.quantization),
    Column("Context", lambda r: f"{r.model.context:,}" if r.model.context else "?"),
    Column("Fit", lambda r: fit_label(r.fit), lambda r: r.fit.describe() if r.fit else ""),
    Column("Last used", lambda r: format_day(r.model.last_used)),
    Column("Status", model_status),
)


class InstalledSection(Section):
    """Installed models: set default, delete, reveal, import a folder.

    Signals:
        modelsChanged(): a model was imported, deleted or made the default.
    """

    modelsChanged = Signal()

    def __init__(self, prefs: Prefs, downloads: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__("Installed models message", parent)
        self.prefs, self.downloads = prefs, downloads
        self._importing: dict[str, str] = {}  # acquisition key -> the name shown while it runs
        self.model = RowTableModel(MODEL_COLUMNS, self)
        self.view = table_view(self.model, "Installed models")
        self.default_button = push_button("Set as Default", "Set as default model", self.set_default_selected)
        self.delete_button = push_button("Delete…", "Delete model", self.delete_selected,
                                         "Deletes a downloaded model's files; forgets an imported folder")
        self.reveal_button = push_button(_reveal_text(), "Show model folder", self.reveal_selected)
        self.import_button = push_button("Import Folder…", "Import a model folder", self.choose_folder,
                                         "An mlx-lm folder, an old MLX folder (weights.npz) or fp16 weights")
        self.import_file_button = push_button("Import GGUF…", "Import a GGUF file", self.choose_gguf,
                                              "A .gguf file as llama.cpp, Ollama or LM Studio keep them")
        self.found_button = push_button("From Ollama / LM Studio", "Import a model Ollama or LM Studio downloaded",
                                        self.show_found)
        self.found_menu = QMenu(self)
        self.found_menu.setAccessibleName("Models found on this Mac")
        self.refresh_button = push_button("Refresh", "Refresh installed models", self.refresh)
        self.confirm_box: QMessageBox | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)
        layout.addLayout(hbox(self.default_button, self.delete_button, self.reveal_button,
                              self.refresh_button))
        layout.addLayout(hbox(self.import_button, self.import_file_button, self.found_button))
        layout.addWidget(self.banner)
        downloads.finished.connect(self._acquired)
        self.view.selectionModel().currentRowChanged.connect(self._update_buttons)
        self.model.modelReset.connect(self._update_buttons)
        self._update_buttons()

    def refresh(self) -> None:
        context = self.prefs.get("generation/context_length") or None
        self.run(lambda: scan_models(context), self._show_rows, "Could not list the installed models")

    def _show_rows(self, rows: list[ModelRow]) -> None:
        self.model.set_rows(rows)
        self.view.resizeColumnsToContents()

    def _update_buttons(self) -> None:
        row = selected_row(self.view)
        self.default_button.setEnabled(row is not None and row.model.usable and not row.model.is_default)
        self.delete_button.setEnabled(row is not None)
        self.reveal_button.setEnabled(row is not None and row.model.path is not None)

    def select(self, ref: str) -> bool:
        """Make the model with this ref the current row (for keyboard users and tests)."""
        for i, row in enumerate(self.model.rows()):
            if ref in (row.model.ref, row.model.name):
                self.view.setCurrentIndex(self.model.index(i, 0))
                return True
        return False

    def set_default_selected(self) -> None:
        row = selected_row(self.view)
        if row is not None:
            ref, name = row.model.ref, row.model.name
            self.run(lambda: library.set_default(ref), lambda _: self._changed(f"{name} is now the default model."),
                     f"Could not make {name} the default")

    def delete_selected(self) -> None:
        """Ask first (a sheet on macOS, never blocking the app), then delete in the background."""
        row = selected_row(self.view)
        if row is None:
            return
        self.confirm_box = _delete_confirmation(self, row.model)
        delete = self.confirm_box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        named(delete, f"Delete {row.model.name}")
        named(self.confirm_box.addButton(QMessageBox.StandardButton.Cancel), "Keep the model")
        delete.clicked.connect(lambda: self.delete(row.model.ref))
        self.confirm_box.open()

    def delete(self, ref: str) -> None:
        self.banner.show_info(f"Deleting {ref}…")
        self.run(lambda: library.remove(ref), self._deleted, f"Could not delete {ref}")

    def _deleted(self, result: tuple[InstalledModel, int]) -> None:
        model, freed = result
        if model.kind == "folder":
            self._changed(f"Removed {model.name} from the library; its folder {model.path} was left as it is.")
        else:
            self._changed(f"Deleted {model.name}: {format_bytes(freed)} freed.")

    def reveal_selected(self) -> None:
        row = selected_row(self.view)
        if row is not None and row.model.path is not None:
            path = row.model.path
            self.run(lambda: library.reveal_command(path), self._reveal, "Could not show the folder")

    def _reveal(self, command: list[str]) -> None:
        if not open_externally(command):
            self.banner.show_error(f"Could not start {command[0]} to show the folder; it is {command[-1]}.")

    def choose_folder(self) -> None:
        dialog = QFileDialog(self, "Import a model folder")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self._folder_chosen)
        dialog.open()

    def _folder_chosen(self, path: str) -> None:
        self.import_path(Path(path))

    def choose_gguf(self) -> None:
        dialog = QFileDialog(self, "Import a GGUF file")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(["GGUF models (*.gguf)", "All files (*)"])
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda path: self.import_path(Path(path)))
        dialog.open()

    def show_found(self) -> None:
        """List what Ollama and LM Studio downloaded (found in the background), one action each."""
        self.found_button.setEnabled(False)
        self.run(find_models, self._show_found, "Could not look for Ollama and LM Studio models")

    def _show_found(self, found: list) -> None:
        self.found_button.setEnabled(True)
        self.found_menu.clear()
        if not found:
            self.banner.show_info("No models from Ollama or LM Studio were found on this Mac.")
            return
        for model in found:
            action = self.found_menu.addAction(f"{model.name} ({model.app}, {format_bytes(model.size_bytes)})")
            action.triggered.connect(functools.partial(self._import_found, model))
        self.found_menu.popup(self.found_button.mapToGlobal(self.found_button.rect().bottomLeft()))

    def _import_found(self, model, _checked: bool = False) -> None:
        self.import_path(model.path, model.name)

    def import_path(self, path: Path, name: str | None = None) -> None:
        """Any local model (mlx-lm or old MLX folder, GGUF file) through the acquisition pipeline;
        its progress is under Downloads, its error inline here."""
        def started(key: str) -> None:
            self.banner.show_info(f"Importing {name or path.name}… (progress under Downloads)")
            self._importing[key] = name or path.name

        acquire_local(self, self.downloads, path, started, name)

    def _acquired(self, key: str, done: dict) -> None:
        shown = self._importing.pop(key, None)
        if shown is None:
            return
        if done.get("status") == "complete":
            self._changed(f"Imported {shown} as {done['ref']}.")
        elif done.get("status") == "failed":
            self.banner.show_error(f"Cannot import {shown}: {done.get('error')}")
        else:
            self.banner.show_info(f"Importing {shown} was stopped.")

    def _changed(self, message: str) -> None:
        self.banner.show_info(message)
        self.refresh()
        self.modelsChanged.emit()


def _reveal_text() -> str:
    return "Show in Finder" if sys.platform == "darwin" else "Show in File Manager"


def _delete_confirmation(parent: QWidget, model: InstalledModel) -> QMessageBox:
    if model.kind == "folder":
        text = f"Remove {model.name} from the library? Its folder {model.path} stays where it is."
    else:
        text = f"Delete {model.name}? This deletes its files and frees about {format_bytes(model.size_bytes)}."
    box = QMessageBox(QMessageBox.Icon.Question, "Delete model", text, QMessageBox.StandardButton.NoButton, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)  # the model's name and path
    box.setWindowModality(Qt.WindowModality.WindowModal)  # a sheet on macOS; the app keeps running
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    return named(box, "Confirm deleting a model")


class ModelsPage(QTabWidget):
    """Installed models, catalog, Hub search, downloads and the token, one tab each.

    Signals:
        modelsChanged(): the installed models changed (import, delete, default, finished download).
    """

    modelsChanged = Signal()

    def __init__(self, prefs: Prefs, downloads: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        named(self, "Model sections")
        self.installed = InstalledSection(prefs, downloads)
        self.catalog = CatalogSection(downloads)
        self.search = SearchSection(downloads)
        self.downloads = DownloadsSection(downloads)
        self.token = TokenSection(prefs)
        for widget, title in ((self.installed, "Installed"), (self.catalog, "Catalog"),
                              (self.search, "Search the Hub"), (self.downloads, "Downloads"),
                              (self.token, "Hugging Face Token")):
            self.addTab(widget, title)
        self.installed.modelsChanged.connect(self.modelsChanged)
        downloads.finished.connect(self._download_finished)
        self._catalog_loaded = False

    def reload(self) -> None:
        self.installed.refresh()
        self.token.refresh()
        if not self._catalog_loaded:  # the shipped file does not change; a check online replaces it
            self._catalog_loaded = True
            self.catalog.load()

    def _download_finished(self, _repo_id: str, done: dict) -> None:
        # A paused or failed download is listed too (as unusable until resumed).
        self.installed.refresh()
        if done.get("status") == "complete":
            self.modelsChanged.emit()


# --- background work (plain functions: no widgets, no Qt models) ---

def scan_models(context_length: int | None) -> list[ModelRow]:
    return [ModelRow(m, m.fit(context_length) if m.usable else None) for m in library.installed_models()]
