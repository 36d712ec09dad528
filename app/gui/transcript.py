"""The transcript: the conversation as a list of messages in a Qt Quick ListView.

The list (app/gui/qml/Transcript.qml) is virtualized: only the messages near the viewport have
delegates, so a 5,000-message chat opens as fast as a short one, and a streamed token re-lays out
only the growing message (transcript_model.py). Answers are Markdown rendered to safe HTML
(markdown.py: raw HTML off, links only http(s)/mailto, nothing ever fetched); the growing answer is
rendered live, at most every RENDER_MS. Actions (copy, edit in place, retry, regenerate, continue,
branch arrows, a code block's Copy) reach the app as `actionRequested` and `editSubmitted`; a link
from the model opens in the browser only when clicked.

Qt Quick draws with its software renderer here: no GPU context is needed, the same everywhere
(tests offscreen, X11, macOS, the frozen app), and a list of text is cheap to paint.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import (
    Q_ARG,
    Q_RETURN_ARG,
    QEvent,
    QMetaObject,
    QPointF,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QDesktopServices,
    QGuiApplication,
    QKeySequence,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtQml import QJSValue
from PySide6.QtQuick import QQuickItem, QQuickWindow, QSGRendererInterface
from PySide6.QtQuickWidgets import QQuickWidget

from . import markdown
from .transcript_model import ROLES, MessageView, TranscriptModel

QML = Path(__file__).resolve().parent / "qml" / "Transcript.qml"
DRAG_SCROLL_EDGE = 24  # px: a drag selecting this near the top or bottom scrolls the list
DRAG_SCROLL_MS = 30

__all__ = ["MessageView", "TranscriptView"]


def use_software_scene_graph() -> None:
    """Qt Quick's software renderer, chosen before the first Qt Quick window exists."""
    if QQuickWindow.sceneGraphBackend() != "software":  # set once: Qt warns at a second call
        QQuickWindow.setGraphicsApi(QSGRendererInterface.GraphicsApi.Software)


class TranscriptView(QQuickWidget):
    """Signals:
        actionRequested(str, str, int): action (regenerate, retry, copy, prev, next, code, continue,
            more), message id, and a number (the code block for "code").
        editSubmitted(str, str): a user message edited in place: its id and the new text.
    """

    actionRequested = Signal(str, str, int)
    editSubmitted = Signal(str, str)

    def __init__(self, parent=None) -> None:
        use_software_scene_graph()
        super().__init__(parent)
        self.setAccessibleName("Conversation transcript")
        self.setResizeMode(QQuickWidget.ResizeMode.SizeRootObjectToView)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.model = TranscriptModel(self)
        self.rootContext().setContextProperty("transcriptModel", self.model)
        self.rootContext().setContextProperty("streamPieces", self.model.pieces)
        self.setSource(QUrl.fromLocalFile(str(QML)))
        root = self.rootObject()
        if root is None:
            raise RuntimeError("the transcript's QML did not load: "
                               + "; ".join(error.toString() for error in self.errors()))
        self._root: QQuickItem = root
        self._drag_start: tuple[int, int, bool] | None = None  # (row, position, on text) of a press
        self._drag_point = QPointF()
        self._drag_scroll = QTimer(self, interval=DRAG_SCROLL_MS, timeout=self._drag_scroll_step)
        self._list: QQuickItem = root.findChild(QQuickItem, "messages")
        root.action.connect(self._on_action)
        root.link.connect(self._on_link)
        root.editSubmitted.connect(self.editSubmitted)
        self._follow_palette()
        QTimer.singleShot(0, self._warm_up_markdown)  # once the window is up

    # --- whole conversations ---

    def show_messages(self, messages: list[MessageView], earlier: int = 0, scroll_to: str | None = None) -> None:
        """Show these messages; `earlier` more precede them, behind a "Show earlier" button. The view
        ends at the bottom, or at the top of message `scroll_to` when given."""
        self._root.setProperty("allSelected", False)
        self._clear_span()
        self._root.setProperty("earlier", earlier)
        self.model.set_messages(messages)
        row = self.model.row_of(scroll_to) if scroll_to else None
        if row is not None:
            self._call("scrollToRow", row)
        else:
            self.scroll_to_end()

    def clear_messages(self) -> None:
        self.show_messages([])

    def show_match(self, message_id: str, text: str) -> bool:
        """Scroll to message_id and select the first `text` in it (a search hit); False if absent."""
        row = self.model.row_of(message_id)
        if row is None:
            return False
        self._clear_span()
        self._call("scrollToRow", row)
        item = self.message_item(row)
        if item is not None and text:
            QMetaObject.invokeMethod(item, "selectText", Q_RETURN_ARG("QVariant"), Q_ARG("QVariant", text))
        return True

    def shown_messages(self) -> list[MessageView]:
        return self.model.messages()

    def message(self, message_id: str) -> MessageView | None:
        row = self.model.row_of(message_id)
        return None if row is None else self.model.messages()[row]

    def message_item(self, row: int) -> QQuickItem | None:
        """The delegate showing this row, created (scrolled into view) if need be."""
        return QMetaObject.invokeMethod(self._root, "delegateAt", Q_RETURN_ARG("QVariant"), Q_ARG("QVariant", row))

    # --- streaming ---

    def begin_answer(self) -> None:
        """Start an answer as the last message; text arrives through append_text."""
        self.model.begin_stream()

    def append_text(self, text: str, tokens: int | None = None) -> None:
        """More of the answer; `tokens`: how many it holds so far, for the live tokens/s."""
        self.model.append_stream(text, tokens)

    def streamed_text(self) -> str:
        return self.model.stream_text

    @property
    def streaming(self) -> bool:
        return self.model.streaming

    def scroll_to_end(self) -> None:
        self._call("scrollToEnd")

    # --- Edit menu: copy what is selected, select every message ---

    def selected_text(self) -> str:
        if self._root.property("allSelected"):
            return self.model.plain_text()
        if self._has_span():
            return self._span_text()
        focused = self.quickWindow().activeFocusItem()
        selected = str(focused.property("selectedText") or "") if focused is not None else ""
        return _plain(selected)

    def copy(self) -> None:
        text = self.selected_text()
        if text:
            QGuiApplication.clipboard().setText(text)

    def selectAll(self) -> None:  # noqa: N802 - the Edit menu calls the focused widget's selectAll
        """Every message selected (Copy then copies the conversation); in a message being edited,
        its text."""
        focused = self.quickWindow().activeFocusItem()
        if focused is not None and focused.property("readOnly") is False:
            QMetaObject.invokeMethod(focused, "selectAll")
            return
        if focused is not None and focused.property("selectedText"):
            QMetaObject.invokeMethod(focused, "deselect")
        self._clear_span()
        self._list.forceActiveFocus()
        self._root.setProperty("allSelected", True)

    def toPlainText(self) -> str:  # noqa: N802 - as QTextEdit names it
        """Every message as the list shows it: a header (who, version, figures, marks), then the text."""
        earlier = self._root.property("earlier")
        more = f"Show {earlier} earlier messages\n\n" if earlier else ""
        return more + self.model.plain_text()

    # --- a selection dragged across messages ---
    # Each message is a text of its own, which selects only within itself. A drag that begins on a
    # message's text and moves onto another message selects, in every message from the one to the
    # other, the text between the two points (Transcript.qml's span; each delegate shows its part).

    def _text_position_at(self, point) -> tuple[int, int, bool] | None:
        """(row, text position, on the text) under a point of the view; None between messages."""
        found = QMetaObject.invokeMethod(self._root, "textPositionAt", Q_RETURN_ARG("QVariant"),
                                         Q_ARG("QVariant", point.x()), Q_ARG("QVariant", point.y()))
        found = found.toVariant() if isinstance(found, QJSValue) else found
        return None if not found or found[1] < 0 else (int(found[0]), int(found[1]), bool(found[2]))

    def _has_span(self) -> bool:
        return self._root.property("spanFirstRow") >= 0

    def _clear_span(self) -> None:
        self._call("clearSpan")

    def _show_span(self, here: tuple[int, int, bool]) -> None:
        start, end = sorted([self._drag_start[:2], here[:2]])
        self._call("selectSpan", start[0], start[1], end[0], end[1])

    def _span_text(self) -> str:
        """The text of the selection across messages, as shown, messages apart by a blank line."""
        first, last = self._root.property("spanFirstRow"), self._root.property("spanLastRow")
        first_pos, last_pos = self._root.property("spanFirstPos"), self._root.property("spanLastPos")
        parts = [self._shown_text(row, first_pos if row == first else 0, last_pos if row == last else None)
                 for row in range(first, min(last, self.model.rowCount() - 1) + 1)]
        return "\n\n".join(part for part in parts if part.strip())

    def _shown_text(self, row: int, start: int, end: int | None) -> str:
        """Plain text of a message's body between two positions of the text its delegate shows
        (the same document, made again here: the delegate may be scrolled away)."""
        index = self.model.index(row)
        if index.data(ROLES["streaming"]):
            return self.model.stream_text[start:end]
        document = QTextDocument()
        body = index.data(ROLES["body"])
        if index.data(ROLES["isUser"]):
            document.setPlainText(body)
        else:
            document.setHtml(body)
        cursor = QTextCursor(document)
        last = document.characterCount() - 1
        cursor.setPosition(min(start, last))
        cursor.setPosition(last if end is None else min(end, last), QTextCursor.MoveMode.KeepAnchor)
        return cursor.selection().toPlainText()

    # --- events ---

    def mousePressEvent(self, event) -> None:
        self._root.setProperty("allSelected", False)  # a click ends Select All, as in a text view
        self._clear_span()
        self._drag_start = None
        if event.button() == Qt.MouseButton.LeftButton:
            at = self._text_position_at(event.position())
            self._drag_start = at if at is not None and at[2] else None
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._drag_start is None or not event.buttons() & Qt.MouseButton.LeftButton:
            super().mouseMoveEvent(event)
            return
        self._drag_point = event.position()
        if not self._drag_scroll.isActive() and self._drag_scroll_speed():
            self._drag_scroll.start()
        here = self._text_position_at(event.position())
        if here is not None and here[0] == self._drag_start[0] and self._has_span():
            # Back in the first message: its text selects from the press again, as it always does.
            self._clear_span()
            self._call("placeCursor", self._drag_start[0], self._drag_start[1])
        super().mouseMoveEvent(event)
        if here is not None and here[0] != self._drag_start[0]:
            self._show_span(here)  # after the first message's text moved its own selection

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        self._drag_scroll.stop()
        if self._drag_start is not None and self._has_span():
            self._root.spanChanged.emit()  # the first message's text, released, shows its part again
        self._drag_start = None

    def _drag_scroll_speed(self) -> float:
        """Pixels a step while a drag holds the pointer near or past the top or bottom edge."""
        y, bottom = self._drag_point.y(), self.height() - DRAG_SCROLL_EDGE
        return y - bottom if y > bottom else min(0.0, y - DRAG_SCROLL_EDGE)

    def _drag_scroll_step(self) -> None:
        speed = self._drag_scroll_speed()
        if self._drag_start is None or not speed:
            self._drag_scroll.stop()
            return
        self._call("scrollBy", speed)
        here = self._text_position_at(self._drag_point)
        if here is not None and here[0] != self._drag_start[0]:
            self._show_span(here)

    def event(self, event: QEvent) -> bool:
        # A message's text has the keyboard focus after a drag and would copy only its own part:
        # with a selection across messages, the Copy key is this view's (keyPressEvent).
        if (event.type() == QEvent.Type.ShortcutOverride and self._has_span()
                and event.matches(QKeySequence.StandardKey.Copy)):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        if self._has_span() and event.matches(QKeySequence.StandardKey.Copy):
            self.copy()
            return
        super().keyPressEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._follow_palette()

    def _follow_palette(self) -> None:
        """Dark code colours under a dark palette (the app's Appearance, or the system's)."""
        dark = self.palette().base().color().lightness() < 128
        self._root.setProperty("dark", dark)
        self.model.set_dark(dark)

    @staticmethod
    def _warm_up_markdown() -> None:
        threading.Thread(target=markdown.warm_up, name="hearth-markdown-warm-up", daemon=True).start()

    def _call(self, name: str, *args) -> None:
        QMetaObject.invokeMethod(self._root, name, *(Q_ARG("QVariant", a) for a in args))

    def _on_action(self, action: str, message_id: str, number: int) -> None:
        self.actionRequested.emit(action, message_id, number)

    def _on_link(self, message_id: str, url: str) -> None:
        link = QUrl(url)
        if link.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(link)  # only on a click, in the user's browser
        elif link.scheme() == "copy" and link.path().isdigit():
            number = int(link.path())
            if message_id:
                self.actionRequested.emit("code", message_id, number)
            else:  # a code block of the answer being written: not in the history yet
                blocks = markdown.code_blocks(self.model.stream_text)
                if number < len(blocks):
                    QGuiApplication.clipboard().setText(blocks[number])


def _plain(selected: str) -> str:
    """A Qt rich text's selection as plain text: its paragraph and line separators as line breaks."""
    return selected.replace("\u2029", "\n").replace("\u2028", "\n")
