"""Read-only table models for the Settings pages: Column, RowTableModel, the table view
setup and the cell formatting shared by the installed, catalog and search tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QTableView

from engine.fit import FitReport

from ..plain_text import plain_tooltip
from .widgets import named

GiB = 1024**3


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
            return plain_tooltip((column.tooltip(row) if column.tooltip else "") or column.text(row))
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
