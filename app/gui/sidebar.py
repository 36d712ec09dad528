"""The conversation list: pinned first, then the rest grouped by date (Today, Yesterday, Previous 7
days, ...); full-text search with highlighted snippets; a menu per conversation (rename, pin, export,
delete) from its ⋯ button, a right-click or the keyboard's menu key.

Deleting hides a conversation at once and offers Undo for a few seconds; the rows are only removed
from the database when that time has passed (or the app quits), so a slip costs nothing.
"""

from __future__ import annotations

import datetime as dt
import html
import time
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QContextMenuEvent, QFont, QKeyEvent, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.history import HistoryError, HistoryStore

from .plain_text import plain, plain_tooltip

ID_ROLE = Qt.ItemDataRole.UserRole + 1
PINNED_ROLE = Qt.ItemDataRole.UserRole + 2
SNIPPET_ROLE = Qt.ItemDataRole.UserRole + 3
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 4
GROUP_ROLE = Qt.ItemDataRole.UserRole + 5  # the date group a row starts ("Today"), else None
UNDO_SECONDS = 8
PAGE = 200
HEADER_HEIGHT = 26  # a date group's heading, drawn above its first row


def date_group(updated_at: float, pinned: bool, today: dt.date | None = None) -> str:
    """The heading a conversation is listed under: Pinned, Today, Yesterday, Previous 7 days,
    Previous 30 days, then the month ("March", or "March 2025" in another year)."""
    if pinned:
        return "Pinned"
    today = today or dt.date.today()
    day = dt.date.fromtimestamp(updated_at)
    age = (today - day).days
    if age <= 0:
        return "Today"
    if age == 1:
        return "Yesterday"
    if age <= 7:
        return "Previous 7 days"
    if age <= 30:
        return "Previous 30 days"
    return day.strftime("%B") if day.year == today.year else day.strftime("%B %Y")


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

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        return flags | Qt.ItemFlag.ItemIsEditable if index.isValid() else flags

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        answering = row["id"] == self.generating
        if role == Qt.ItemDataRole.DisplayRole:
            return ("✎ " if answering else "") + row["title"]
        if role == Qt.ItemDataRole.EditRole:
            return row["title"]
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return row["title"] + (", pinned" if row["pinned"] else "") + (", answering" if answering else "")
        if role == Qt.ItemDataRole.AccessibleDescriptionRole:
            return row.get("group") or ""
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(row["title"] + (" (answering…)" if answering else ""))
        return {ID_ROLE: row["id"], PINNED_ROLE: row["pinned"], SNIPPET_ROLE: row.get("snippet"),
                MESSAGE_ROLE: row.get("message_id"), GROUP_ROLE: row.get("starts_group")}.get(role)

    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any,
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Renaming in place (F2, or Rename in the row's menu)."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not str(value).strip():
            return False
        conversation_id = self._rows[index.row()]["id"]
        try:
            self.store.rename(conversation_id, str(value))
        except HistoryError:
            return False
        QTimer.singleShot(0, self.refresh)  # not while the view still closes its editor
        return True

    def refresh(self) -> None:
        self.beginResetModel()
        if self.query.strip():
            hits = self.store.search(self.query, limit=PAGE)
            self._rows = [{"id": h.conversation_id, "title": h.title, "pinned": False,
                           "snippet": h.snippet, "message_id": h.message_id}
                          for h in hits if h.conversation_id not in self._hidden]
        else:
            self._rows = [{"id": c.id, "title": c.title, "pinned": c.pinned,
                           "group": date_group(c.updated_at, c.pinned)}
                          for c in self.store.list_conversations(limit=PAGE) if c.id not in self._hidden]
            previous = None
            for row in self._rows:
                row["starts_group"] = row["group"] if row["group"] != previous else None
                previous = row["group"]
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


def item_rect(option_rect: QRect, index: QModelIndex) -> QRect:
    """The part of a row's rectangle that is the conversation, below its date heading, if any."""
    if index.data(GROUP_ROLE):
        return option_rect.adjusted(0, HEADER_HEIGHT, 0, 0)
    return QRect(option_rect)


class ConversationDelegate(QStyledItemDelegate):
    """Draws a row: its date heading when it starts a group, then the title; a search hit shows
    the snippet under the title with the matched words in bold."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.button_row = QPersistentModelIndex()  # the row showing the ⋯ button

    def paint(self, painter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        group = index.data(GROUP_ROLE)
        if group:
            self._paint_heading(painter, option, group)
        option = QStyleOptionViewItem(option)
        option.rect = item_rect(option.rect, index)
        self.initStyleOption(option, index)
        style = option.widget.style() if option.widget else None
        snippet = index.data(SNIPPET_ROLE)
        if not snippet:
            if index == self.button_row:  # the title stops short of the row's ⋯ button
                option.text = option.fontMetrics.elidedText(option.text, Qt.TextElideMode.ElideRight,
                                                            option.rect.width() - option.rect.height() - 10)
            if style:
                style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
            return
        option_text = option.text
        option.text = ""
        if style:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        doc = self._document(option_text, snippet, option.rect.width())
        painter.save()
        painter.translate(option.rect.topLeft())
        doc.drawContents(painter, QRectF(0, 0, option.rect.width(), option.rect.height()))
        painter.restore()

    @staticmethod
    def _paint_heading(painter, option: QStyleOptionViewItem, group: str) -> None:
        painter.save()
        font = QFont(option.font)  # a copy: the row's own title keeps its font
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 0.85)
        painter.setFont(font)
        painter.setPen(option.palette.color(QPalette.ColorRole.PlaceholderText))
        heading = QRect(option.rect.left() + 4, option.rect.top(), option.rect.width() - 8, HEADER_HEIGHT)
        painter.drawText(heading, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, group)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        snippet = index.data(SNIPPET_ROLE)
        if snippet:
            doc = self._document(index.data(), snippet, max(option.rect.width(), 200))
            size = QSize(1, int(doc.size().height()))
        else:
            size = QSize(1, super().sizeHint(option, index).height() + 8)  # room to aim at
        # Width 1: rows take the list's width, never more, so long titles are cut, not scrolled.
        if index.data(GROUP_ROLE):
            size.setHeight(size.height() + HEADER_HEIGHT)
        return size

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> QWidget:
        editor = super().createEditor(parent, option, index)
        editor.setAccessibleName("Conversation title")
        return editor

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        editor.setGeometry(item_rect(option.rect, index))

    @staticmethod
    def _document(title: str, snippet: str, width: int) -> QTextDocument:
        marked = html.escape(" ".join(snippet.split())).replace("\x02", "<b>").replace("\x03", "</b>")
        doc = QTextDocument()
        doc.setHtml(f"<div><b>{html.escape(title)}</b><br><span style='color:gray'>{marked}</span></div>")
        doc.setTextWidth(width)
        return doc


class ConversationList(QListView):
    """The list of conversations. The Delete key (or Backspace, the Mac's delete key) deletes the
    selected one; F2 renames it; the menu key (or Shift+F10) opens its menu.

    Signals:
        deletePressed(str): delete this conversation (id).
        menuRequested(QModelIndex, QPoint): open this row's menu at this point (global).
    """

    deletePressed = Signal(str)
    menuRequested = Signal(QModelIndex, QPoint)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        index = self.currentIndex()
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and index.isValid():
            self.deletePressed.emit(index.data(ID_ROLE))
            return
        menu_key = event.key() == Qt.Key.Key_Menu or (
            event.key() == Qt.Key.Key_F10 and event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if menu_key and index.isValid():
            self.menuRequested.emit(index, self.viewport().mapToGlobal(self.visualRect(index).center()))
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt override
        if event.reason() == QContextMenuEvent.Reason.Mouse:
            index = self.indexAt(event.pos())
            at = event.globalPos()
        else:  # from the keyboard: the selected row
            index = self.currentIndex()
            at = self.viewport().mapToGlobal(self.visualRect(index).center())
        if index.isValid():
            self.menuRequested.emit(index, at)
            event.accept()


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
        self.row_menu: QMenu | None = None  # the last menu opened for a row
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
        self.list = self._build_list()
        self.list.viewport().installEventFilter(self)  # the pointer leaving the list
        self.search.installEventFilter(self)  # Esc and Down in the search field
        self.empty_label = plain(QLabel())
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.empty_label.setContentsMargins(8, 24, 8, 8)
        self.model.modelReset.connect(self._show_empty_state)
        self.undo_bar = self._build_undo_bar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty_label, 1)
        layout.addWidget(self.undo_bar)
        self.setTabOrder(self.new_button, self.search)
        self.setTabOrder(self.search, self.list)

    def _build_list(self) -> ConversationList:
        view = ConversationList()
        view.setAccessibleName("Conversations")
        view.deletePressed.connect(self.delete)
        view.setModel(self.model)
        self.model.modelReset.connect(self._highlight_open)
        view.setItemDelegate(ConversationDelegate(view))
        view.setUniformItemSizes(False)
        view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        view.setTextElideMode(Qt.TextElideMode.ElideRight)
        view.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        view.setMouseTracking(True)
        view.clicked.connect(self._chosen)
        view.activated.connect(self._chosen)
        view.menuRequested.connect(self._open_menu)
        view.entered.connect(self._place_row_button)
        # The ⋯ button of the row under the pointer (or of the open chat): its menu.
        self.row_button = QToolButton(view.viewport())
        self.row_button.setText("⋯")
        self.row_button.setAutoRaise(True)
        self.row_button.setAccessibleName("Conversation actions")
        self.row_button.setToolTip("Rename, pin, export or delete")
        self.row_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keyboard has the menu key
        self.row_button.clicked.connect(self._row_button_clicked)
        self.row_button.hide()
        self._row_button_index = QPersistentModelIndex()
        return view

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
        self._place_row_button(self.model.index(row) if row >= 0 else QModelIndex())

    def _show_empty_state(self) -> None:
        """No conversations yet, or no search results: say so where the list would be."""
        empty = self.model.rowCount() == 0
        query = self.model.query.strip()
        if query:
            self.empty_label.setText(f"No conversations match “{query}”.")
        else:
            self.empty_label.setText("No conversations yet.\nWhat you send is saved here.")
        self.empty_label.setVisible(empty)
        self.list.setVisible(not empty)

    def title_of(self, conversation_id: str) -> str:
        try:
            return self.store.conversation(conversation_id).title
        except HistoryError:
            return "another chat"

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    # --- a row's menu: its ⋯ button, right-click, the menu key ---

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self.list.viewport() and event.type() == QEvent.Type.Leave:
            self._highlight_open()  # the ⋯ button goes back to the open chat's row
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            return self._search_key(event.key())
        return super().eventFilter(watched, event)

    def _search_key(self, key: int) -> bool:
        """In the search field, Esc clears it and Down goes on to the results, as in Mail."""
        if key == Qt.Key.Key_Escape and self.search.text():
            self.search.clear()
            return True
        if key == Qt.Key.Key_Down and self.model.rowCount():
            self.list.setFocus(Qt.FocusReason.TabFocusReason)
            if not self.list.currentIndex().isValid():
                self.list.setCurrentIndex(self.model.index(0))
            return True
        return False

    def _place_row_button(self, index: QModelIndex) -> None:
        if not index.isValid() or index.data(MESSAGE_ROLE):
            self.row_button.hide()
            self.list.itemDelegate().button_row = QPersistentModelIndex()
            return
        rect = item_rect(self.list.visualRect(index), index)
        size = rect.height() - 4
        self.row_button.setGeometry(rect.right() - size - 2, rect.top() + 2, size, size)
        self._row_button_index = QPersistentModelIndex(index)
        self.list.itemDelegate().button_row = self._row_button_index
        self.list.viewport().update()
        self.row_button.show()

    def _row_button_clicked(self) -> None:
        index = QModelIndex(self._row_button_index)
        if index.isValid():
            self._open_menu(index, self.row_button.mapToGlobal(QPoint(0, self.row_button.height())))

    def _open_menu(self, index: QModelIndex, at: QPoint) -> None:
        conversation_id, pinned = index.data(ID_ROLE), bool(index.data(PINNED_ROLE))
        menu = QMenu(self)
        menu.setAccessibleName("Conversation actions")
        rename = QAction("Rename…", menu)
        rename.triggered.connect(lambda _checked=False: self._rename(conversation_id))
        pin = QAction("Unpin" if pinned else "Pin", menu)
        pin.triggered.connect(lambda _checked=False: self._pin(conversation_id, not pinned))
        export = QAction("Export…", menu)
        export.triggered.connect(lambda _checked=False: self.exportRequested.emit(conversation_id))
        delete = QAction("Delete", menu)
        delete.triggered.connect(lambda _checked=False: self.delete(conversation_id))
        menu.addActions([rename, pin, export])
        menu.addSeparator()
        menu.addAction(delete)
        menu.aboutToHide.connect(menu.deleteLater)
        self.row_menu = menu
        menu.popup(at)

    def _rename(self, conversation_id: str) -> None:
        """Edit the title in place, in the list."""
        row = self.model.row_of(conversation_id)
        if row >= 0:
            index = self.model.index(row)
            self.list.setCurrentIndex(index)
            self.list.edit(index)

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

    @property
    def can_undo_delete(self) -> bool:
        return getattr(self, "_last_deleted", None) in self._pending_deletes

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
