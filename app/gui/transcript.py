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

from PySide6.QtCore import Q_ARG, Q_RETURN_ARG, QEvent, QMetaObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtQuick import QQuickItem, QQuickWindow, QSGRendererInterface
from PySide6.QtQuickWidgets import QQuickWidget

from . import markdown
from .transcript_model import MessageView, TranscriptModel

QML = Path(__file__).resolve().parent / "qml" / "Transcript.qml"

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
        focused = self.quickWindow().activeFocusItem()
        return str(focused.property("selectedText") or "") if focused is not None else ""

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
        self._list.forceActiveFocus()
        self._root.setProperty("allSelected", True)

    def toPlainText(self) -> str:  # noqa: N802 - as QTextEdit names it
        """Every message as the list shows it: a header (who, version, figures, marks), then the text."""
        earlier = self._root.property("earlier")
        more = f"Show {earlier} earlier messages\n\n" if earlier else ""
        return more + self.model.plain_text()

    # --- events ---

    def mousePressEvent(self, event) -> None:
        self._root.setProperty("allSelected", False)  # a click ends Select All, as in a text view
        super().mousePressEvent(event)

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
