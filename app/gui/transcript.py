"""The transcript: one QTextBrowser document holding the conversation's messages.

Finished messages are rendered once (Markdown to safe HTML, cached by message id). A streaming
answer is appended as plain text at the end of the document, which costs the same for the first and
the ten-thousandth token; when it finishes, only that message is rendered and swapped in. Actions
(regenerate, edit, copy, branch arrows, copy code) are links handled by the app, and links from the
model open in the browser only when clicked. Nothing is ever loaded from the network.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from dataclasses import dataclass

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices, QTextCursor
from PySide6.QtWidgets import QTextBrowser

from . import markdown

CACHE_SIZE = 2000
STREAM_BLOCK_CHARS = 300


@dataclass(frozen=True)
class MessageView:
    id: str
    role: str
    content: str
    status: str = "complete"
    finish_reason: str | None = None
    generation_tps: float | None = None
    ttft_s: float | None = None
    generation_tokens: int | None = None
    version: int = 1
    versions: int = 1
    model: str | None = None
    unanswered: bool = False  # a user message whose answer never began (stopped, failed)


class TranscriptView(QTextBrowser):
    """Signals:
        actionRequested(str, str, int): action (regenerate, edit, retry, copy, prev, next, code,
            continue, more), message id, and a number (the code block for "code").
    """

    actionRequested = Signal(str, str, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Conversation transcript")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._on_anchor)
        self.dark = False
        self._html_cache: OrderedDict[str, str] = OrderedDict()
        self._messages: list[MessageView] = []
        self._stream_start: int | None = None
        self._block_chars = 0

    # --- whole conversations ---

    def show_messages(self, messages: list[MessageView], earlier: int = 0, scroll_to: str | None = None) -> None:
        """Show these messages; `earlier` more precede them, behind a "Show earlier" link. The view
        ends at the bottom, or at the top of message `scroll_to` when given."""
        self._messages = messages
        parts = []
        if earlier:
            parts.append(f"<p align='center'><a href='hearth://more/-'>Show {earlier} earlier "
                         f"messages</a></p>")
        parts += [self._message_html(m) for m in messages]
        self._stream_start = None
        self.setHtml("".join(parts))
        if scroll_to and self.message(scroll_to) is not None:
            self.scrollToAnchor(_anchor(scroll_to))
        else:
            self.scroll_to_end()

    def show_match(self, message_id: str, text: str) -> bool:
        """Scroll to message_id and select the first `text` in it (a search hit); False if absent."""
        start = self._anchor_position(_anchor(message_id))
        if start is None:
            return False
        self.scrollToAnchor(_anchor(message_id))
        found = self.document().find(text, start) if text else QTextCursor()
        if not found.isNull():
            self.setTextCursor(found)
            self.ensureCursorVisible()
        return True

    def _anchor_position(self, name: str) -> int | None:
        block = self.document().begin()
        while block.isValid():
            cursor = QTextCursor(block)
            cursor.movePosition(QTextCursor.MoveOperation.NextCharacter)
            if name in cursor.charFormat().anchorNames():
                return block.position()
            block = block.next()
        return None

    def clear_messages(self) -> None:
        self.show_messages([])

    def _message_html(self, message: MessageView) -> str:
        key = f"{message.id}:{hash(message)}:{self.dark}"
        cached = self._html_cache.get(key)
        if cached is None:
            cached = self._render(message)
            self._html_cache[key] = cached
            if len(self._html_cache) > CACHE_SIZE:
                self._html_cache.popitem(last=False)
        return cached

    def _render(self, message: MessageView) -> str:
        header = self._header(message)
        if message.role == "user":
            body = f"<p style='white-space: pre-wrap'>{html.escape(message.content)}</p>"
        else:
            body = markdown.render(message.content, dark=self.dark).replace(
                'href="copy:', f'href="hearth://code/{message.id}/') or "<p><i>(empty)</i></p>"
        return f"{header}{body}<hr>"

    def _header(self, message: MessageView) -> str:
        who = "You" if message.role == "user" else "Assistant"
        links = [f"<a href='hearth://copy/{message.id}'>Copy</a>"]
        if message.role == "user":
            links.append(f"<a href='hearth://edit/{message.id}'>Edit</a>")
            if message.unanswered:
                links.append(f"<a href='hearth://retry/{message.id}'>Retry</a> · <b>not answered</b>")
        else:
            links.append(f"<a href='hearth://regenerate/{message.id}'>Regenerate</a>")
        if message.versions > 1:
            links.append(f"<a href='hearth://prev/{message.id}'>&lt;</a> {message.version}/{message.versions} "
                         f"<a href='hearth://next/{message.id}'>&gt;</a>")
        stats = _stats(message)
        if message.role == "assistant" and message.finish_reason in ("length", "cancelled") or message.status == "interrupted":
            links.append(f"<a href='hearth://continue/{message.id}'>Continue</a>")
        return (f"<p style='color:#888'><a name='{_anchor(message.id)}'><b>{who}</b></a> · {' · '.join(links)}"
                f"{(' · ' + stats) if stats else ''}</p>")

    # --- streaming ---

    def begin_answer(self) -> None:
        """Start an answer at the end of the document; text arrives through append_text."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertHtml("<p style='color:#888'><b>Assistant</b> · <i>writing…</i></p>")
        cursor.insertBlock()
        self._stream_start = cursor.position()
        self._block_chars = 0

    def append_text(self, text: str) -> None:
        if self._stream_start is None or not text:
            return
        at_bottom = self._at_bottom()
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        for piece, new_block in self._split_long_block(text):
            cursor.insertText(piece)  # plain text: never interpreted as HTML
            if new_block:
                cursor.insertBlock()
        if at_bottom:
            self.scroll_to_end()

    def _split_long_block(self, text: str) -> list[tuple[str, bool]]:
        """Qt lays out a whole block again on every insert into it; a long paragraph would make
        each update slower than the last. While streaming, a paragraph that grows past
        STREAM_BLOCK_CHARS continues in a new block at the next space (shown as a line break);
        the finished answer is rendered properly anyway."""
        pieces: list[tuple[str, bool]] = []
        for i, line in enumerate(text.split("\n")):
            if i:
                pieces.append(("", True))
                self._block_chars = 0
            space = line.find(" ", max(0, STREAM_BLOCK_CHARS - self._block_chars))
            if self._block_chars + len(line) > STREAM_BLOCK_CHARS and space >= 0:
                pieces += [(line[:space], True), (line[space + 1:], False)]
                self._block_chars = len(line) - space - 1
            else:
                pieces.append((line, False))
                self._block_chars += len(line)
        return pieces

    def streamed_text(self) -> str:
        if self._stream_start is None:
            return ""
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._stream_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        return cursor.selectedText().replace("\u2029", "\n")

    @property
    def streaming(self) -> bool:
        return self._stream_start is not None

    # --- helpers ---

    def _at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)  # only on a click, in the user's browser
            return
        if url.scheme() != "hearth":
            return
        action = url.host()
        parts = [p for p in url.path().split("/") if p]
        message_id = parts[0] if parts else ""
        number = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        self.actionRequested.emit(action, message_id, number)

    def shown_messages(self) -> list[MessageView]:
        return list(self._messages)

    def message(self, message_id: str) -> MessageView | None:
        return next((m for m in self._messages if m.id == message_id), None)


def _anchor(message_id: str) -> str:
    """The name a message's header carries, to scroll to it."""
    return f"m-{message_id}"


def _stats(message: MessageView) -> str:
    if message.role != "assistant":
        return ""
    parts = []
    if message.generation_tps:
        parts.append(f"{message.generation_tps:.1f} tok/s")
    if message.ttft_s:
        parts.append(f"{message.ttft_s * 1000:.0f} ms to first token")
    mark = {"length": "cut at max tokens", "cancelled": "stopped", "error": "failed",
            "interrupted": "interrupted"}.get(message.finish_reason or "")
    if message.status == "interrupted":
        mark = "interrupted"
    if mark:
        parts.append(f"<b>{mark}</b>")
    return " · ".join(parts)
