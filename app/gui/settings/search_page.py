"""The Search the Hub tab: mlx-format models on the Hugging Face Hub, with size and fit."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QVBoxLayout, QWidget

from engine.fit import FitReport
from engine.library import catalog
from engine.library.acquire import Request
from engine.library.catalog import SearchResult

from ..background import run_in_background
from ..downloads import DownloadManager, format_bytes
from .tables import Column, RowTableModel, fit_label, selected_row, table_view
from .widgets import Section, hbox, named, push_button


@dataclass(frozen=True)
class SearchRow:
    result: SearchResult
    fit: FitReport | None


SEARCH_COLUMNS = (
    Column("Repository", lambda r: r.result.repo_id),
    Column("Size", lambda r: format_bytes(r.result.weight_bytes)),
    Column("Downloads", lambda r: f"{r.result.downloads:,}"),
    Column("Fit", lambda r: fit_label(r.fit), lambda r: r.fit.describe() if r.fit else ""),
)


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
            self.downloads.acquire(Request(row.result.repo_id))
            self.banner.show_info(f"Downloading {row.result.repo_id}: follow it under Downloads.")


# --- background work (plain functions: no widgets, no Qt models) ---

def search_rows(text: str) -> list[SearchRow]:
    return [SearchRow(result, result.fit()) for result in catalog.search_hub(text)]
