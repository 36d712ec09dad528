"""The Downloads tab: the download list, drawn with progress, and pause, resume and cancel."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QLabel,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from ..downloads import DownloadListModel, DownloadManager, DownloadRow
from .widgets import Section, hbox, named, push_button


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
