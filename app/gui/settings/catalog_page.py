"""The Catalog tab: the curated catalog with fit, license and how each model gets here."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QVBoxLayout, QWidget

from engine.fit import FitReport
from engine.library import catalog
from engine.library.acquire import request_for_catalog
from engine.library.catalog import CatalogEntry

from ..background import run_in_background
from ..downloads import DownloadManager, format_bytes
from .tables import Column, RowTableModel, fit_label, format_params, selected_row, table_view
from .widgets import Section, hbox, push_button


@dataclass(frozen=True)
class CatalogRow:
    entry: CatalogEntry
    fit: FitReport


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


CATALOG_COLUMNS = (
    Column("Name", lambda r: r.entry.name, lambda r: f"{r.entry.repo_id}\n{r.entry.notes}".strip()),
    Column("Download", lambda r: format_bytes(r.entry.download_bytes)),
    Column("Parameters", lambda r: format_params(r.entry.parameters)),
    Column("Fit", lambda r: fit_label(r.fit), lambda r: r.fit.describe()),
    Column("License", lambda r: r.entry.license),
    Column("Via", lambda r: catalog_via(r.entry)),
    Column("Status", lambda r: catalog_status(r.entry)),
)


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
            self.downloads.acquire(request_for_catalog(entry))
            then = "" if entry.source == "mlx" else ", then converting it"
            self.banner.show_info(f"Downloading {entry.name}{then}: follow it under Downloads.")


# --- background work (plain functions: no widgets, no Qt models) ---

def catalog_rows(entries: list[CatalogEntry]) -> list[CatalogRow]:
    return [CatalogRow(entry, entry.fit()) for entry in entries]
