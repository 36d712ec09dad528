"""The conversation list: pinned first, then most recent; full-text search with highlighted snippets.

Deleting hides a conversation at once and offers Undo for a few seconds; the rows are only removed
from the database when that time has passed (or the app quits), so a slip costs nothing.
"""

from __future__ import annotations

import html
import time
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeyEvent, QTextDocument
from PySide6.QtWidgets import (
    QAbstractButton,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from engine.history import HistoryStore

from .plain_text import plain, plain_tooltip

ID_ROLE = Qt.ItemDataRole.UserRole + 1
PINNED_ROLE = Qt.ItemDataRole.UserRole + 2
SNIPPET_ROLE = Qt.ItemDataRole.UserRole + 3
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 4
UNDO_SECONDS = 8
PAGE = 200


class ConversationListModel(QAbstractListModel):
    """Conversations, or search hits when a query is set. Changed only on the GUI thread."""

    def __init__(self, store: HistoryStore, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self._rows: list[dict[str, Any]] = []
        self._hidden: set[str] = set()  # deleted, waiting for the undo time to pass
        self.query = ""
        self.generating: str | None = None  # the conversation an answer is being written in

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        answering = row["id"] == self.generating
        if role == Qt.ItemDataRole.DisplayRole:
            return ("✎ " if answering else "") + ("📌 " if row["pinned"] else "") + row["title"]
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return row["title"] + (", pinned" if row["pinned"] else "") + (", answering" if answering else "")
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(row["title"] + (" (answering…)" if answering else ""))
        return {ID_ROLE: row["id"], PINNED_ROLE: row["pinned"], SNIPPET_ROLE: row.get("snippet"),
                MESSAGE_ROLE: row.get("message_id")}.get(role)

    def refresh(self) -> None:
        self.beginResetModel()
        if self.query.strip():
            hits = self.store.search(self.query, limit=PAGE)
            self._rows = [{"id": h.conversation_id, "title": h.title, "pinned": False,
                           "snippet": h.snippet, "message_id": h.message_id}
                          for h in hits if h.conversation_id not in self._hidden]
        else:
            self._rows = [{"id": c.id, "title": c.title, "pinned": c.pinned}
                          for c in self.store.list_conversations(limit=PAGE) if c.id not in self._hidden]
        self.endResetModel()

    def set_query(self, text: str) -> None:
        self.query = text
        self.refresh()

    def row_of(self, conversation_id: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r["id"] == conversation_id), -1)

    def set_generating(self, conversation_id: str | None) -> None:
        """Mark the conversation being answered (None: no answer is being written)."""
        changed = {self.generating, conversation_id} - {None}
        self.generating = conversation_id
        for row in filter(lambda r: r >= 0, map(self.row_of, changed)):
            self.dataChanged.emit(self.index(row), self.index(row))

    def hide(self, conversation_id: str) -> None:
        self._hidden.add(conversation_id)
        self.refresh()

    def unhide(self, conversation_id: str) -> None:
        self._hidden.discard(conversation_id)
        self.refresh()


class SnippetDelegate(QStyledItemDelegate):
    """Draws a search hit: the title, then the snippet with the matched words in bold."""

    def paint(self, painter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        snippet = index.data(SNIPPET_ROLE)
        if not snippet:
            super().paint(painter, option, index)
            return
        self.initStyleOption(option, index)
        style = option.widget.style() if option.widget else None
        option_text = option.text
        option.text = ""
        if style:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        doc = self._document(option_text, snippet, option.rect.width())
        painter.save()
        painter.translate(option.rect.topLeft())
        doc.drawContents(painter, QRectF(0, 0, option.rect.width(), option.rect.height()))
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        snippet = index.data(SNIPPET_ROLE)
        if not snippet:
            return super().sizeHint(option, index)
        doc = self._document(index.data(), snippet, max(option.rect.width(), 200))
        return QSize(int(doc.idealWidth()), int(doc.size().height()))

    @staticmethod
    def _document(title: str, snippet: str, width: int) -> QTextDocument:
        marked = html.escape(" ".join(snippet.split())).replace("\x02", "<b>").replace("\x03", "</b>")
        doc = QTextDocument()
        doc.setHtml(f"<div><b>{html.escape(title)}</b><br><span style='color:gray'>{marked}</span></div>")
        doc.setTextWidth(width)
        return doc


class ConversationList(QListView):
    """The list of conversations; the Delete key (or Backspace, the Mac's delete key) deletes the
    selected one.

    Signals:
        deletePressed(str): delete this conversation (id).
    """

    deletePressed = Signal(str)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        index = self.currentIndex()
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and index.isValid():
            self.deletePressed.emit(index.data(ID_ROLE))
            return
        super().keyPressEvent(event)


class Sidebar(QWidget):
    """Signals:
        conversationChosen(str): a conversation was picked (id).
        searchHitChosen(str, str, str): a search hit in a message was picked: conversation id,
            message id, the matched text.
        newChatRequested(): the New chat button.
        deleteRequested(str): a conversation was deleted (hidden, with undo): leave it, free its cache.
        deleteCommitted(str): a deleted conversation's undo time passed; it is gone.
        exportRequested(str): export this conversation.
    """

    conversationChosen = Signal(str)
    searchHitChosen = Signal(str, str, str)
    newChatRequested = Signal()
    deleteCommitted = Signal(str)
    exportRequested = Signal(str)
    deleteRequested = Signal(str)

    def __init__(self, store: HistoryStore, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self.model = ConversationListModel(store, self)
        self._open_id: str | None = None
        self._pending_deletes: dict[str, float] = {}
        self._build()
        self._undo_timer = QTimer(self, interval=500, timeout=self._commit_due_deletes)
        self._undo_timer.start()
        self.model.refresh()

    def _build(self) -> None:
        self.new_button = QPushButton("New chat")
        self.new_button.clicked.connect(self._new_chat)  # not emit: clicked's `checked` would break it
        self.new_button.setAccessibleName("New chat")
        self.search = QLineEdit(placeholderText="Search conversations", clearButtonEnabled=True)
        self.search.setAccessibleName("Search conversations")
        for button in self.search.findChildren(QAbstractButton):  # the line edit's own clear button
            button.setAccessibleName("Clear search")
        self.search.textChanged.connect(self.model.set_query)
        self.list = ConversationList()
        self.list.setAccessibleName("Conversations")
        self.list.deletePressed.connect(self.delete)
        self.list.setModel(self.model)
        self.model.modelReset.connect(self._highlight_open)
        self.list.setItemDelegate(SnippetDelegate(self.list))
        self.list.setUniformItemSizes(False)
        self.list.clicked.connect(self._chosen)
        self.list.activated.connect(self._chosen)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.undo_bar = self._build_undo_bar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.undo_bar)

    def _build_undo_bar(self) -> QWidget:
        bar = QWidget()
        self.undo_label = plain(QLabel())
        self.undo_button = QPushButton("Undo", clicked=self.undo_delete)
        self.undo_button.setAccessibleName("Undo delete")
        row = QHBoxLayout(bar)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.undo_label, 1)
        row.addWidget(self.undo_button)
        bar.hide()
        return bar

    def _new_chat(self) -> None:
        self.newChatRequested.emit()

    def _chosen(self, index: QModelIndex) -> None:
        conversation_id, message_id = index.data(ID_ROLE), index.data(MESSAGE_ROLE)
        if message_id:
            snippet = index.data(SNIPPET_ROLE) or ""
            matched = snippet.partition("\x02")[2].partition("\x03")[0]  # FTS marks the matched words
            self.searchHitChosen.emit(conversation_id, message_id, matched)
        else:
            self.conversationChosen.emit(conversation_id)

    def refresh(self) -> None:
        self.model.refresh()

    def set_generating(self, conversation_id: str) -> None:
        self.model.set_generating(conversation_id or None)

    def select(self, conversation_id: str | None) -> None:
        """Highlight the open conversation (None: none is open); kept when the list is reset."""
        self._open_id = conversation_id
        self._highlight_open()

    def _highlight_open(self) -> None:
        conversation_id = self._open_id
        row = self.model.row_of(conversation_id) if conversation_id else -1
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row))
        else:
            self.list.clearSelection()

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _menu(self, pos) -> None:
        index = self.list.indexAt(pos)
        if not index.isValid():
            return
        conversation_id = index.data(ID_ROLE)
        conv = self.store.conversation(conversation_id)
        menu = QMenu(self)
        menu.addAction(QAction("Rename…", menu, triggered=lambda: self._rename(conversation_id)))
        menu.addAction(QAction("Unpin" if conv.pinned else "Pin", menu,
                               triggered=lambda: self._pin(conversation_id, not conv.pinned)))
        menu.addAction(QAction("Export…", menu, triggered=lambda: self.exportRequested.emit(conversation_id)))
        menu.addSeparator()
        menu.addAction(QAction("Delete", menu, triggered=lambda: self.delete(conversation_id)))
        menu.popup(self.list.viewport().mapToGlobal(pos))

    def _rename(self, conversation_id: str) -> None:
        from PySide6.QtWidgets import QInputDialog

        title, ok = QInputDialog.getText(self, "Rename conversation", "Title:",
                                         text=self.store.conversation(conversation_id).title)
        if ok and title.strip():
            self.store.rename(conversation_id, title)
            self.refresh()

    def _pin(self, conversation_id: str, pinned: bool) -> None:
        self.store.set_pinned(conversation_id, pinned)
        self.refresh()

    # --- delete with undo ---

    def delete(self, conversation_id: str) -> None:
        title = self.store.conversation(conversation_id).title
        self.deleteRequested.emit(conversation_id)
        self._pending_deletes[conversation_id] = time.monotonic() + UNDO_SECONDS
        self.model.hide(conversation_id)
        self._last_deleted = conversation_id
        self.undo_label.setText(f"Deleted “{title[:40]}”")
        self.undo_bar.show()

    def undo_delete(self) -> None:
        conversation_id = getattr(self, "_last_deleted", None)
        if conversation_id and self._pending_deletes.pop(conversation_id, None) is not None:
            self.model.unhide(conversation_id)
        self.undo_bar.hide()

    def _commit_due_deletes(self, everything: bool = False) -> None:
        now = time.monotonic()
        for conversation_id, due in list(self._pending_deletes.items()):
            if everything or now >= due:
                del self._pending_deletes[conversation_id]
                self.store.delete_conversation(conversation_id)
                self.deleteCommitted.emit(conversation_id)
        if not self._pending_deletes:
            self.undo_bar.hide()

    def commit_deletes(self) -> None:
        """At quit: carry out deletes whose undo time has not passed yet."""
        self._commit_due_deletes(everything=True)
