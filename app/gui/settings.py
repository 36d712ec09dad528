"""The Settings window: models (installed, catalog, Hub search, downloads, token), generation
defaults and presets, appearance, and where data lives.

Non-modal, so a download can be watched while chatting. Everything that reads the disk or the
network (library scans, catalog checks, the history store, exports) runs through
run_in_background and comes back on the GUI thread; failures are shown inline on the page, with
what to do next, never in a blocking dialog. Every control has an accessible name.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QProcess,
    QRect,
    QSize,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QAccessible, QAccessibleEvent, QDesktopServices, QGuiApplication, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine import paths
from engine.errors import HearthError
from engine.fit import FitReport
from engine.history import HistoryStore
from engine.history import export as history_export
from engine.library import catalog, hub, library
from engine.library.catalog import CatalogEntry, SearchResult
from engine.library.library import InstalledModel
from engine.model_folder import hub_cache_dir
from engine.sampling import SamplingSettings

from ..history_cli import write_atomically
from .background import run_in_background
from .downloads import DownloadListModel, DownloadManager, DownloadRow, format_bytes
from .prefs import Prefs

GiB = 1024**3
SAVE_DELAY_MS = 400  # generation settings are written once typing pauses, not on every keystroke
THEMES = {"system": "Follow the system", "light": "Light", "dark": "Dark"}
CONTEXT_POLICIES = {"drop_oldest": "Drop the oldest exchanges, keep the system prompt"}
# Files of an old-layout MLX upload (mlx-examples): what engine.convert.old_mlx reads.
OLD_MLX_FILES = ["config.json", "weights.npz", "tokenizer.model"]
TOKEN_USER_KEY = "hub/token_user"


# --- small helpers ---

def named(widget: QWidget, name: str, description: str = "") -> Any:
    """The widget, with the name (and description) screen readers announce."""
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
    return widget


def push_button(text: str, name: str, slot: Callable[[], None], description: str = "") -> QPushButton:
    button = named(QPushButton(text), name, description)
    button.clicked.connect(slot)
    return button


def hbox(*widgets: QWidget, stretch: bool = True) -> QHBoxLayout:
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    if stretch:
        layout.addStretch(1)
    return layout


def format_params(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def format_day(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(timestamp)) if timestamp else "never"


def fit_label(report: FitReport | None) -> str:
    """'fits: needs 4.3 of 12.0 GiB'; the full breakdown is report.describe()."""
    if report is None:
        return "unknown"
    verdict = {"fits": "fits", "tight": "tight", "too_large": "too large"}[report.verdict]
    return f"{verdict}: needs {report.needed_bytes / GiB:.1f} of {report.available_bytes / GiB:.1f} GiB"


def open_externally(command: list[str]) -> bool:
    """Start a command detached from Hearth (reveal in Finder, open a folder)."""
    result = QProcess.startDetached(command[0], command[1:])
    return bool(result[0] if isinstance(result, tuple) else result)


class Banner(QLabel):
    """An inline, non-modal message on a page: an error (with what to do) or a note."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setAccessibleName(name)
        self.is_error = False
        self.hide()

    def show_error(self, text: str) -> None:
        self._show(text, error=True)

    def show_info(self, text: str) -> None:
        self._show(text, error=False)

    def clear_message(self) -> None:
        self.is_error = False
        self.setText("")
        self.hide()

    def _show(self, text: str, error: bool) -> None:
        if not self.isHidden() and (text, error) == (self.text(), self.is_error):
            return  # unchanged: do not announce it again
        self.is_error = error
        self.setText(text)
        self.setStyleSheet("font-weight: bold;" if error else "")
        self.setAccessibleDescription("Error" if error else "")
        self.show()
        if error:  # screen readers announce it without moving the focus
            QAccessible.updateAccessibility(QAccessibleEvent(self, QAccessible.Event.Alert))


# --- table models ---

@dataclass(frozen=True)
class Column:
    title: str
    text: Callable[[Any], str]
    tooltip: Callable[[Any], str] | None = None


class RowTableModel(QAbstractTableModel):
    """A read-only table of plain row objects, one column per Column.

    Roles: Qt.DisplayRole (the column's text), Qt.ToolTipRole (its tooltip, else the text),
    RowRole (the row object, any column). Replaced whole with set_rows, on the GUI thread.
    """

    RowRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, columns: Sequence[Column], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns = tuple(columns)
        self._rows: list[Any] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row, column = self._rows[index.row()], self.columns[index.column()]
        if role == self.RowRole:
            return row
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return column.text(row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return (column.tooltip(row) if column.tooltip else "") or column.text(row)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
                and 0 <= section < len(self.columns)):
            return self.columns[section].title
        return None

    def set_rows(self, rows: Sequence[Any]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[Any]:
        return list(self._rows)

    def row_at(self, row: int) -> Any:
        return self._rows[row] if 0 <= row < len(self._rows) else None


@dataclass(frozen=True)
class ModelRow:
    model: InstalledModel
    fit: FitReport | None


@dataclass(frozen=True)
class CatalogRow:
    entry: CatalogEntry
    fit: FitReport


@dataclass(frozen=True)
class SearchRow:
    result: SearchResult
    fit: FitReport | None


def model_status(row: ModelRow) -> str:
    if not row.model.usable:
        return f"Unusable: {row.model.problem}"
    return "Default" if row.model.is_default else "Ready"


def catalog_via(entry: CatalogEntry) -> str:
    return {"mlx": "download (ready to run)", "old-mlx": "download, then convert from weights.npz",
            "gguf": f"download {entry.file}, then convert from GGUF",
            "hf": "download, then quantize to 4-bit"}.get(entry.source, entry.source)


def catalog_status(entry: CatalogEntry) -> str:
    if not entry.usable:
        return f"Unusable: {entry.problem}"
    if entry.gated:
        return "Gated: needs a Hugging Face token"
    return "Recommended" if entry.recommended else "Available"


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
CATALOG_COLUMNS = (
    Column("Name", lambda r: r.entry.name, lambda r: f"{r.entry.repo_id}\n{r.entry.notes}".strip()),
    Column("Download", lambda r: format_bytes(r.entry.download_bytes)),
    Column("Parameters", lambda r: format_params(r.entry.parameters)),
    Column("Fit", lambda r: fit_label(r.fit), lambda r: r.fit.describe()),
    Column("License", lambda r: r.entry.license),
    Column("Via", lambda r: catalog_via(r.entry)),
    Column("Status", lambda r: catalog_status(r.entry)),
)
SEARCH_COLUMNS = (
    Column("Repository", lambda r: r.result.repo_id),
    Column("Size", lambda r: format_bytes(r.result.weight_bytes)),
    Column("Downloads", lambda r: f"{r.result.downloads:,}"),
    Column("Fit", lambda r: fit_label(r.fit), lambda r: r.fit.describe() if r.fit else ""),
)


def table_view(model: QAbstractTableModel, name: str) -> QTableView:
    view = named(QTableView(), name)
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setWordWrap(False)
    view.verticalHeader().hide()
    view.horizontalHeader().setStretchLastSection(True)
    view.setTabKeyNavigation(False)  # Tab leaves the table for the buttons, as VoiceOver users expect
    return view


def selected_row(view: QAbstractItemView) -> Any:
    index = view.currentIndex()
    return index.data(RowTableModel.RowRole) if index.isValid() else None


class Section(QWidget):
    """A part of a page with its own inline message banner."""

    def __init__(self, banner_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.banner = Banner(banner_name)

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None], failure: str) -> None:
        """fn in the background; its error shown here as '<failure>: <the engine's message>'."""
        run_in_background(fn, on_done, lambda exc: self.banner.show_error(f"{failure}: {exc}"), parent=self)


# --- Models page ---

class InstalledSection(Section):
    """Installed models: set default, delete, reveal, import a folder.

    Signals:
        modelsChanged(): a model was imported, deleted or made the default.
    """

    modelsChanged = Signal()

    def __init__(self, prefs: Prefs, parent: QWidget | None = None) -> None:
        super().__init__("Installed models message", parent)
        self.prefs = prefs
        self.model = RowTableModel(MODEL_COLUMNS, self)
        self.view = table_view(self.model, "Installed models")
        self.default_button = push_button("Set as Default", "Set as default model", self.set_default_selected)
        self.delete_button = push_button("Delete…", "Delete model", self.delete_selected,
                                         "Deletes a downloaded model's files; forgets an imported folder")
        self.reveal_button = push_button(_reveal_text(), "Show model folder", self.reveal_selected)
        self.import_button = push_button("Import Folder…", "Import a model folder", self.choose_folder)
        self.refresh_button = push_button("Refresh", "Refresh installed models", self.refresh)
        self.confirm_box: QMessageBox | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)
        layout.addLayout(hbox(self.default_button, self.delete_button, self.reveal_button,
                              self.import_button, self.refresh_button))
        layout.addWidget(self.banner)
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
        self.import_folder(Path(path))

    def import_folder(self, path: Path) -> None:
        """Validate and add a folder in the background; the engine's own error shows inline."""
        self.banner.show_info(f"Checking {path}…")
        run_in_background(lambda: library.import_folder(path),
                          lambda model: self._changed(f"Imported {model.name}."),
                          lambda exc: self._import_failed(path, exc), parent=self)

    def _import_failed(self, path: Path, exc: Exception) -> None:
        self.banner.show_error(
            f"Cannot import {path.name}: {exc}\nChoose a folder holding config.json, model*.safetensors "
            f"and tokenizer files (an mlx-lm model), or convert the model first.")

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
    box.setWindowModality(Qt.WindowModality.WindowModal)  # a sheet on macOS; the app keeps running
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    return named(box, "Confirm deleting a model")


class CatalogSection(Section):
    """The curated catalog, with fit, license and how each model gets here; checked online on request."""

    def __init__(self, downloads: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__("Catalog message", parent)
        self.downloads = downloads
        self.model = RowTableModel(CATALOG_COLUMNS, self)
        self.view = table_view(self.model, "Model catalog")
        self.check_button = push_button("Check Online", "Check catalog online", self.check_online,
                                        "Asks the Hugging Face Hub whether each model is still there")
        self.download_button = push_button("Download", "Download selected catalog model", self.download_selected)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)
        layout.addLayout(hbox(self.download_button, self.check_button))
        layout.addWidget(self.banner)
        self.view.selectionModel().currentRowChanged.connect(self._update_buttons)
        self.model.modelReset.connect(self._update_buttons)
        self._update_buttons()

    def load(self) -> None:
        self.run(lambda: catalog_rows(catalog.load()), self._show_rows, "Could not read the catalog")

    def check_online(self) -> None:
        entries = [row.entry for row in self.model.rows()]
        self.check_button.setEnabled(False)
        self.banner.show_info("Checking the catalog on the Hugging Face Hub…")
        run_in_background(lambda: catalog_rows(catalog.check_online(entries or catalog.load())),
                          self._checked, self._check_failed, parent=self)

    def _checked(self, rows: list[CatalogRow]) -> None:
        self.check_button.setEnabled(True)
        self._show_rows(rows)
        unusable = sum(not row.entry.usable for row in rows)
        self.banner.show_info(f"Checked online: {len(rows) - unusable} available, {unusable} unusable "
                              f"(see Status).")

    def _check_failed(self, exc: Exception) -> None:
        self.check_button.setEnabled(True)
        self.banner.show_error(f"Could not check the catalog: {exc}")

    def _show_rows(self, rows: list[CatalogRow]) -> None:
        self.model.set_rows(rows)
        self.view.resizeColumnsToContents()

    def _update_buttons(self) -> None:
        row = selected_row(self.view)
        self.download_button.setEnabled(row is not None and row.entry.usable)

    def download_selected(self) -> None:
        row = selected_row(self.view)
        if row is not None:
            entry = row.entry
            files = [entry.file] if entry.file else OLD_MLX_FILES if entry.source == "old-mlx" else None
            self.downloads.start(entry.repo_id, files=files)
            self.banner.show_info(f"Downloading {entry.name}: follow it under Downloads.")


class SearchSection(Section):
    """Search the Hub for mlx-format models, with size and fit."""

    def __init__(self, downloads: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__("Hub search message", parent)
        self.downloads = downloads
        self.query = named(QLineEdit(), "Search the Hugging Face Hub")
        self.query.setPlaceholderText("e.g. llama 3.2 instruct")
        self.query.returnPressed.connect(self.search)
        self.search_button = push_button("Search", "Search", self.search)
        self.model = RowTableModel(SEARCH_COLUMNS, self)
        self.view = table_view(self.model, "Hub search results")
        self.download_button = push_button("Download", "Download selected search result", self.download_selected)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.query, 1)
        row.addWidget(self.search_button)
        layout.addLayout(row)
        layout.addWidget(self.view)
        layout.addLayout(hbox(self.download_button))
        layout.addWidget(self.banner)
        self.view.selectionModel().currentRowChanged.connect(self._update_buttons)
        self.model.modelReset.connect(self._update_buttons)
        self._update_buttons()

    def search(self) -> None:
        text = self.query.text()
        self.search_button.setEnabled(False)
        self.banner.show_info(f"Searching for {text!r}…")
        run_in_background(lambda: search_rows(text), self._found, self._failed, parent=self)

    def _found(self, rows: list[SearchRow]) -> None:
        self.search_button.setEnabled(True)
        self.model.set_rows(rows)
        self.view.resizeColumnsToContents()
        if rows:
            self.banner.show_info(f"{len(rows)} mlx-format models found.")
        else:
            self.banner.show_info("No mlx-format models match; try other words.")

    def _failed(self, exc: Exception) -> None:
        self.search_button.setEnabled(True)
        self.banner.show_error(f"Search failed: {exc}")

    def _update_buttons(self) -> None:
        self.download_button.setEnabled(selected_row(self.view) is not None)

    def select(self, repo_id: str) -> bool:
        for i, row in enumerate(self.model.rows()):
            if row.result.repo_id == repo_id:
                self.view.setCurrentIndex(self.model.index(i, 0))
                return True
        return False

    def download_selected(self) -> None:
        row = selected_row(self.view)
        if row is not None:
            self.downloads.start(row.result.repo_id)
            self.banner.show_info(f"Downloading {row.result.repo_id}: follow it under Downloads.")


class DownloadDelegate(QStyledItemDelegate):
    """Draws a download as its summary line over a progress bar, or over its error."""

    MARGIN = 6

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        row: DownloadRow | None = index.data(DownloadListModel.RowRole)
        widget = option.widget
        style = widget.style() if widget else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)
        if row is None:
            return
        rect = option.rect.adjusted(self.MARGIN, self.MARGIN // 2, -self.MARGIN, -self.MARGIN // 2)
        line = option.fontMetrics.height()
        top = QRect(rect.left(), rect.top(), rect.width(), line)
        bottom = QRect(rect.left(), top.bottom() + 4, rect.width(), line)
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.setPen(option.palette.highlightedText().color())
        elide = Qt.TextElideMode.ElideRight
        painter.drawText(top, Qt.AlignmentFlag.AlignVCenter, option.fontMetrics.elidedText(row.summary(), elide, rect.width()))
        if row.error:
            painter.drawText(bottom, Qt.AlignmentFlag.AlignVCenter, option.fontMetrics.elidedText(row.error, elide, rect.width()))
        else:
            style.drawControl(QStyle.ControlElement.CE_ProgressBar, _progress_option(row, bottom), painter, widget)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(320, 2 * option.fontMetrics.height() + self.MARGIN + 4)


def _progress_option(row: DownloadRow, rect: QRect) -> QStyleOptionProgressBar:
    bar = QStyleOptionProgressBar()
    bar.rect = rect
    bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
    bar.minimum, bar.maximum = 0, 100 if row.percent >= 0 else 0  # 0..0: busy, size unknown
    bar.progress = max(row.percent, 0)
    bar.textVisible = False
    return bar


class DownloadsSection(Section):
    """The downloads list with pause, resume and cancel for the selected download."""

    def __init__(self, downloads: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__("Download message", parent)
        self.downloads = downloads
        self.view = named(QListView(), "Downloads")
        self.view.setModel(downloads.model)
        self.view.setItemDelegate(DownloadDelegate(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.pause_button = push_button("Pause", "Pause download", self._pause)
        self.resume_button = push_button("Resume", "Resume download", self._resume)
        self.cancel_button = push_button("Cancel", "Cancel download", self._cancel,
                                         "Stops the download and deletes its partial files")
        empty = QLabel("Downloads started from the catalog or a search show here. Closing Hearth pauses "
                       "them; they resume from where they stopped.")
        empty.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)
        layout.addLayout(hbox(self.pause_button, self.resume_button, self.cancel_button))
        layout.addWidget(self.banner)
        layout.addWidget(empty)
        model = downloads.model
        self.view.selectionModel().currentRowChanged.connect(self._update)
        model.dataChanged.connect(self._update)
        model.rowsRemoved.connect(self._update)
        model.rowsInserted.connect(self._select_new)
        self._update()

    def current(self) -> DownloadRow | None:
        index = self.view.currentIndex()
        return index.data(DownloadListModel.RowRole) if index.isValid() else None

    def select(self, repo_id: str) -> bool:
        i = self.downloads.model.row_index(repo_id)
        if i >= 0:
            self.view.setCurrentIndex(self.downloads.model.index(i))
        return i >= 0

    def _select_new(self, _parent: QModelIndex, first: int, _last: int) -> None:
        self.view.setCurrentIndex(self.downloads.model.index(first))

    def _pause(self) -> None:
        if (row := self.current()) is not None:
            self.downloads.pause(row.repo_id)

    def _resume(self) -> None:
        if (row := self.current()) is not None:
            self.downloads.resume(row.repo_id)

    def _cancel(self) -> None:
        if (row := self.current()) is not None:
            self.downloads.cancel(row.repo_id)

    def _update(self, *_args: Any) -> None:
        row = self.current()
        state = row.state if row else ""
        self.pause_button.setEnabled(bool(row) and row.running and state not in ("pausing", "cancelling"))
        self.resume_button.setEnabled(state in ("paused", "failed"))
        self.cancel_button.setEnabled(bool(row) and state != "cancelling")
        clear = state == "complete"
        self.cancel_button.setText("Clear" if clear else "Cancel")
        self.cancel_button.setAccessibleName("Clear finished download" if clear else "Cancel download")
        self._show_error(row)

    def _show_error(self, row: DownloadRow | None) -> None:
        if row is None or not row.error:
            self.banner.clear_message()
            return
        hint = " Press Resume to try again."
        if "token" in row.error.lower():
            hint = " Save a token in the Hugging Face Token tab, then press Resume."
        error = row.error if row.repo_id in row.error else f"{row.repo_id}: {row.error}"
        self.banner.show_error(error + hint)


class TokenSection(Section):
    """The Hugging Face token: masked entry, checked with the Hub before it is stored."""

    def __init__(self, prefs: Prefs, parent: QWidget | None = None) -> None:
        super().__init__("Token message", parent)
        self.prefs = prefs
        self.status = named(QLabel(), "Stored token")
        self.status.setWordWrap(True)
        self.entry = named(QLineEdit(), "Hugging Face token", "Hidden while typed; checked with the Hub on Save")
        self.entry.setEchoMode(QLineEdit.EchoMode.Password)
        self.entry.setPlaceholderText("hf_…")
        self.entry.returnPressed.connect(self.save)
        self.save_button = push_button("Save Token", "Save Hugging Face token", self.save)
        help_text = QLabel("Gated models (such as Meta's Llama) need a read token from "
                           "huggingface.co/settings/tokens, after accepting the model's license there.")
        help_text.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        row.addWidget(self.entry, 1)
        row.addWidget(self.save_button)
        layout.addLayout(row)
        layout.addWidget(self.banner)
        layout.addWidget(help_text)
        layout.addStretch(1)

    def refresh(self) -> None:
        self.run(hub.get_token, self._show_stored, "Could not read the stored token")

    def _show_stored(self, token: str | None) -> None:
        user = self.prefs.get(TOKEN_USER_KEY) or ""
        if token is None:
            self.status.setText("No token stored.")
        elif user:
            self.status.setText(f"A token is stored for {user}.")
        else:
            self.status.setText("A token is stored (its user is shown once it has been saved here).")

    def save(self) -> None:
        token = self.entry.text()  # stays in this closure; never logged or shown
        self.save_button.setEnabled(False)
        self.banner.show_info("Checking the token with the Hugging Face Hub…")
        run_in_background(lambda: hub.save_token(token), self._saved, self._failed, parent=self)

    def _saved(self, user: str) -> None:
        self.save_button.setEnabled(True)
        self.entry.clear()
        self.prefs.set(TOKEN_USER_KEY, user)
        self.status.setText(f"A token is stored for {user}.")
        self.banner.show_info(f"Token saved for {user}.")

    def _failed(self, exc: Exception) -> None:
        self.save_button.setEnabled(True)
        self.banner.show_error(f"The token was not saved: {exc}")


class ModelsPage(QTabWidget):
    """Installed models, catalog, Hub search, downloads and the token, one tab each.

    Signals:
        modelsChanged(): the installed models changed (import, delete, default, finished download).
    """

    modelsChanged = Signal()

    def __init__(self, prefs: Prefs, downloads: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        named(self, "Model sections")
        self.installed = InstalledSection(prefs)
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


# --- Generation page ---

def double_spin(name: str, low: float, high: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    spin = named(QDoubleSpinBox(), name)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    return spin


def int_spin(name: str, low: int, high: int, special: str = "") -> QSpinBox:
    spin = named(QSpinBox(), name)
    spin.setRange(low, high)
    if special:
        spin.setSpecialValueText(special)  # shown for the minimum, e.g. "off"
    return spin


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
        self.presets = PresetsBox(store, self.sampling, self.banner)
        self._save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_now)
        self._build()
        self.load()
        self.system_prompt.textChanged.connect(self._schedule_save)
        self.sampling.changed.connect(self._schedule_save)
        self.context_policy.currentIndexChanged.connect(self._schedule_save)
        self.context_length.valueChanged.connect(self._schedule_save)
        QApplication.instance().aboutToQuit.connect(self.save_now)  # an edit just before quitting

    def _build(self) -> None:
        defaults = QGroupBox("Defaults for new conversations")
        form = QFormLayout(defaults)
        form.addRow("System prompt:", self.system_prompt)
        form.addRow(self.sampling)
        form.addRow("Context:", self.context_policy)
        form.addRow("Context length:", self.context_length)
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
        if sampling is not None:
            self.prefs.set_sampling(sampling)


# --- Appearance page ---

def apply_appearance(prefs: Prefs) -> None:
    """Apply the saved theme and font size to the running application (also call at startup)."""
    scheme = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(prefs.get("appearance/theme"))
    request_color_scheme(scheme)
    app = QApplication.instance()
    if isinstance(app, QApplication):
        font = app.font()
        font.setPointSize(int(prefs.get("appearance/font_size")))
        app.setFont(font)


def request_color_scheme(scheme: Qt.ColorScheme | None) -> None:
    """Force light or dark, or follow the system (None). Platforms without the feature (Qt < 6.8,
    some Linux themes, offscreen) ignore the request."""
    hints = QGuiApplication.styleHints()
    if not hasattr(hints, "setColorScheme"):
        return
    if scheme is not None:
        hints.setColorScheme(scheme)
    elif hasattr(hints, "unsetColorScheme"):
        hints.unsetColorScheme()
    else:
        hints.setColorScheme(Qt.ColorScheme.Unknown)


class AppearancePage(QWidget):
    """Theme and font size, applied as soon as they change.

    Signals:
        changed(): the appearance was changed, applied and saved.
    """

    changed = Signal()

    def __init__(self, prefs: Prefs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prefs = prefs
        self.theme = named(QComboBox(), "Theme")
        for key, label in THEMES.items():
            self.theme.addItem(label, key)
        self.theme.setCurrentIndex(max(self.theme.findData(prefs.get("appearance/theme")), 0))
        self.font_size = int_spin("Font size in points", 9, 32)
        self.font_size.setValue(prefs.get("appearance/font_size"))
        form = QFormLayout(self)
        form.addRow("Theme:", self.theme)
        form.addRow("Font size:", self.font_size)
        self.theme.currentIndexChanged.connect(self._apply)
        self.font_size.valueChanged.connect(self._apply)

    def _apply(self) -> None:
        self.prefs.set("appearance/theme", self.theme.currentData())
        self.prefs.set("appearance/font_size", self.font_size.value())
        apply_appearance(self.prefs)
        self.changed.emit()


# --- Data page ---

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


# --- the dialog ---

class SettingsDialog(QDialog):
    """Hearth's settings, non-modal. The main window opens it with QKeySequence.StandardKey.Preferences.

    Signals:
        modelsChanged(): a model was imported, deleted, downloaded or made the default.
        appearanceChanged(): the theme or font size changed (already applied to the application).
    """

    modelsChanged = Signal()
    appearanceChanged = Signal()

    def __init__(self, prefs: Prefs, store: HistoryStore, downloads: DownloadManager,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setModal(False)
        named(self, "Settings")
        self.models_page = ModelsPage(prefs, downloads)
        self.generation_page = GenerationPage(prefs, store)
        self.appearance_page = AppearancePage(prefs)
        self.data_page = DataPage(store)
        self.tabs = named(QTabWidget(), "Settings pages")
        for page, title in ((self.models_page, "Models"), (self.generation_page, "Generation"),
                            (self.appearance_page, "Appearance"), (self.data_page, "Data")):
            self.tabs.addTab(page, title)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        named(buttons.button(QDialogButtonBox.StandardButton.Close), "Close settings")
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)
        self.models_page.modelsChanged.connect(self.modelsChanged)
        self.appearance_page.changed.connect(self.appearanceChanged)
        self.resize(880, 620)

    def reload(self) -> None:
        """Re-read what may have changed elsewhere (the CLI, another window), in the background."""
        self.models_page.reload()
        self.generation_page.presets.reload()
        self.data_page.reload()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.reload()

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.generation_page.save_now()
        super().hideEvent(event)


# --- background work (plain functions: no widgets, no Qt models) ---

def scan_models(context_length: int | None) -> list[ModelRow]:
    return [ModelRow(m, m.fit(context_length) if m.usable else None) for m in library.installed_models()]


def catalog_rows(entries: list[CatalogEntry]) -> list[CatalogRow]:
    return [CatalogRow(entry, entry.fit()) for entry in entries]


def search_rows(text: str) -> list[SearchRow]:
    return [SearchRow(result, result.fit()) for result in catalog.search_hub(text)]


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
