"""The transcript's messages as a list model for the Qt Quick view (app/gui/qml/Transcript.qml).

One row per message. A finished assistant message is rendered to HTML once (Markdown, cached by
message and theme) when a delegate first asks for it, so opening a long conversation renders only
the messages on screen. The answer being streamed is the last row: its text grows in a buffer and
is rendered at most every RENDER_MS by markdown.StreamingRenderer. Blocks that can no longer change
become rows of `pieces` (one new delegate each, never laid out again); only the unfinished tail is
re-rendered, and `dataChanged` names the streaming row and its tail roles alone, so a token costs
the same in the first message as in the thousandth.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import PurePath

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QObject, Qt, QTimer

from . import markdown

CACHE_SIZE = 2000  # rendered messages kept
RENDER_MS = 66  # the growing answer is rendered again at most this often


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
    streaming: bool = False  # the answer being written: it has no id in the history yet


ROLE_NAMES = ("messageId", "who", "isUser", "body", "plain", "stats", "mark", "version", "versions",
              "canContinue", "canRetry", "streaming", "tail", "liveRate", "codeBlocks")
ROLES = {name: Qt.ItemDataRole.UserRole + 1 + i for i, name in enumerate(ROLE_NAMES)}


class StreamPieces(QAbstractListModel):
    """The finished HTML pieces of the answer being streamed. Rows are only appended (each one a
    new delegate), or all dropped when another answer begins."""

    HTML = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pieces: list[str] = []

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._pieces)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if index.isValid() and role in (self.HTML, Qt.ItemDataRole.DisplayRole):
            return self._pieces[index.row()]
        return None

    def roleNames(self) -> dict[int, QByteArray]:
        return {self.HTML: QByteArray(b"html")}

    def append(self, html: str) -> None:
        row = len(self._pieces)
        self.beginInsertRows(QModelIndex(), row, row)
        self._pieces.append(html)
        self.endInsertRows()

    def clear(self) -> None:
        if self._pieces:
            self.beginResetModel()
            self._pieces = []
            self.endResetModel()


class TranscriptModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._messages: list[MessageView] = []
        self._rendered: OrderedDict[tuple, tuple[str, int]] = OrderedDict()  # (HTML, code blocks)
        self.dark = False
        self.pieces = StreamPieces(self)
        self._stream_text = ""
        self._stream_tokens = 0
        self._stream_began = 0.0  # when the first text arrived
        self._renderer: markdown.StreamingRenderer | None = None
        self._tail = ""
        self._live_rate = ""
        self._render_timer = QTimer(self, singleShot=True, interval=RENDER_MS, timeout=self.render_stream)

    # --- Qt's model interface ---

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._messages)

    def roleNames(self) -> dict[int, QByteArray]:
        return {number: QByteArray(name.encode()) for name, number in ROLES.items()}

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        message = self._messages[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            role = ROLES["plain"]
        name = ROLE_NAMES[role - ROLES["messageId"]] if role in ROLES.values() else None
        return None if name is None else getattr(self, f"_role_{name}")(message)

    # --- whole conversations ---

    def set_messages(self, messages: list[MessageView]) -> None:
        """Show these messages. Another conversation (no message in common) resets the list; the
        same one grown or changed (a send, an answer ended, a branch switched, the shown window
        moved on) changes only the rows that differ, so the delegates of the others stay."""
        new = list(messages)
        shown = {m.id for m in self._messages if not m.streaming}
        if not any(m.id in shown for m in new):
            self.beginResetModel()
            self._messages = new
            self._stop_stream()
            self.endResetModel()
            return
        self._align_first_rows(new)
        head = _common_head(self._messages, new)
        tail = _common_head(self._messages[head:][::-1], new[head:][::-1])
        for row in range(head):
            self._change_row(row, new[row])
        old_middle = len(self._messages) - head - tail
        new_middle = new[head:len(new) - tail]
        if (old_middle and new_middle and self._messages[head + old_middle - 1].streaming
                and new_middle[-1].role == "assistant"):
            # The answer that was being written is now saved: the same row, now finished.
            self._change_row(head + old_middle - 1, new_middle[-1])
            old_middle, new_middle = old_middle - 1, new_middle[:-1]
        self._remove_rows(head, old_middle)
        self._insert_rows(head, new_middle)
        for row in range(len(new) - tail, len(new)):
            self._change_row(row, new[row])
        self._stop_stream()

    def _align_first_rows(self, new: list[MessageView]) -> None:
        """When the shown part of a long conversation moved (a send drops its first row from the
        last 100; "Show earlier" adds rows before it), drop or add rows at the top to match."""
        if not self._messages or not new or self._messages[0].id == new[0].id:
            return
        old_ids = [m.id for m in self._messages]
        if new[0].id in old_ids:
            self._remove_rows(0, old_ids.index(new[0].id))
            return
        first = next((row for row, m in enumerate(new) if m.id == old_ids[0]), None)
        if first is not None:
            self._insert_rows(0, new[:first])

    def _change_row(self, row: int, message: MessageView) -> None:
        if self._messages[row] != message:
            self._messages[row] = message
            self.dataChanged.emit(self.index(row), self.index(row))

    def _remove_rows(self, first: int, count: int) -> None:
        if count > 0:
            self.beginRemoveRows(QModelIndex(), first, first + count - 1)
            del self._messages[first:first + count]
            self.endRemoveRows()

    def _insert_rows(self, first: int, rows: list[MessageView]) -> None:
        if rows:
            self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
            self._messages[first:first] = rows
            self.endInsertRows()

    def messages(self) -> list[MessageView]:
        return [m for m in self._messages if not m.streaming]

    def row_of(self, message_id: str) -> int | None:
        return next((i for i, m in enumerate(self._messages) if m.id == message_id and not m.streaming), None)

    def set_dark(self, dark: bool) -> None:
        """Render with the dark or light code colours; every delegate reads its HTML again."""
        if dark == self.dark:
            return
        self.dark = dark
        if self._messages:
            self.dataChanged.emit(self.index(0), self.index(len(self._messages) - 1), [ROLES["body"]])
        if self._renderer is not None:
            self._restart_stream_render()

    # --- the answer being streamed ---

    def begin_stream(self) -> None:
        """A new last row for an answer; its text arrives through append_stream."""
        self._stop_stream()
        row = len(self._messages)
        self.beginInsertRows(QModelIndex(), row, row)
        self._messages.append(MessageView("", "assistant", "", status="streaming", streaming=True))
        self._renderer = markdown.StreamingRenderer(dark=self.dark)
        self.endInsertRows()

    @property
    def streaming(self) -> bool:
        return self._renderer is not None

    @property
    def stream_text(self) -> str:
        return self._stream_text

    def append_stream(self, text: str, tokens: int | None = None) -> None:
        """More of the answer; `tokens`: how many tokens it holds so far (for the live rate)."""
        if self._renderer is None or not text:
            return
        if not self._stream_text:
            self._stream_began = time.monotonic()
        self._stream_text += text
        self._stream_tokens = tokens if tokens is not None else self._stream_tokens
        if not self._render_timer.isActive():
            self._render_timer.start()

    def render_stream(self) -> None:
        """Render what streamed since the last time: new finished pieces, the tail, the rate."""
        if self._renderer is None:
            return
        update = self._renderer.update(self._stream_text)
        if update.finished_html:
            self.pieces.append(update.finished_html)
        self._tail = update.tail_html
        elapsed = time.monotonic() - self._stream_began
        if self._stream_tokens > 1 and elapsed > 0.2:
            self._live_rate = f"{(self._stream_tokens - 1) / elapsed:.1f} tok/s"
        index = self.index(len(self._messages) - 1)
        self.dataChanged.emit(index, index, [ROLES["tail"], ROLES["liveRate"]])

    def _restart_stream_render(self) -> None:
        self._renderer = markdown.StreamingRenderer(dark=self.dark)
        self.pieces.clear()
        self.render_stream()

    def _stop_stream(self) -> None:
        self._render_timer.stop()
        self._renderer = None
        self._stream_text, self._tail, self._live_rate, self._stream_tokens = "", "", "", 0
        self.pieces.clear()

    # --- what a delegate shows ---

    def _role_messageId(self, m: MessageView) -> str:  # noqa: N802 - named as the QML role
        return m.id

    def _role_who(self, m: MessageView) -> str:
        return "You" if m.role == "user" else "Assistant"

    def _role_isUser(self, m: MessageView) -> bool:  # noqa: N802
        return m.role == "user"

    def _role_body(self, m: MessageView) -> str:
        """User messages as plain text (shown as typed); answers as rendered Markdown."""
        if m.role == "user" or m.streaming:
            return m.content
        return self._render(m)[0]

    def _role_codeBlocks(self, m: MessageView) -> int:  # noqa: N802
        """How many code blocks an answer has: each gets a Copy button."""
        return 0 if m.role == "user" or m.streaming else self._render(m)[1]

    def _render(self, m: MessageView) -> tuple[str, int]:
        key = (m.id, hash(m), self.dark)
        cached = self._rendered.get(key)
        if cached is None:
            html = markdown.render(m.content, dark=self.dark) or "<p><i>(empty)</i></p>"
            cached = (html, len(markdown.code_blocks(m.content)))
            self._rendered[key] = cached
            if len(self._rendered) > CACHE_SIZE:
                self._rendered.popitem(last=False)
        return cached

    def _role_plain(self, m: MessageView) -> str:
        return self._stream_text if m.streaming else m.content

    def _role_stats(self, m: MessageView) -> str:
        """Model, speed and time to first token of an answer."""
        if m.role != "assistant" or m.streaming:
            return ""
        parts = [PurePath(m.model).name] if m.model else []
        if m.generation_tps:
            parts.append(f"{m.generation_tps:.1f} tok/s")
        if m.ttft_s:
            parts.append(f"{m.ttft_s * 1000:.0f} ms to first token")
        return " · ".join(parts)

    def _role_mark(self, m: MessageView) -> str:
        if m.streaming:
            return "writing…"
        if m.unanswered:
            return "not answered"
        if m.status == "interrupted":
            return "interrupted"
        if m.role != "assistant":
            return ""
        return {"length": "cut at max tokens", "cancelled": "stopped", "error": "failed"}.get(m.finish_reason or "", "")

    def _role_version(self, m: MessageView) -> int:
        return m.version

    def _role_versions(self, m: MessageView) -> int:
        return m.versions

    def _role_canContinue(self, m: MessageView) -> bool:  # noqa: N802
        return (m.role == "assistant" and not m.streaming
                and (m.finish_reason in ("length", "cancelled") or m.status == "interrupted"))

    def _role_canRetry(self, m: MessageView) -> bool:  # noqa: N802
        return m.unanswered

    def _role_streaming(self, m: MessageView) -> bool:
        return m.streaming

    def _role_tail(self, m: MessageView) -> str:
        return self._tail if m.streaming else ""

    def _role_liveRate(self, m: MessageView) -> str:  # noqa: N802
        return self._live_rate if m.streaming else ""

    # --- the transcript as text (Select All + Copy, and what a screen reader or a test reads) ---

    def header_text(self, row: int) -> str:
        m = self._messages[row]
        parts = [self._role_who(m)]
        if m.versions > 1:
            parts.append(f"‹ {m.version}/{m.versions} ›")
        parts += [p for p in (self._role_stats(m), self._role_mark(m), self._role_liveRate(m)) if p]
        return " · ".join(parts)

    def plain_text(self) -> str:
        return "\n\n".join(f"{self.header_text(row)}\n{self._role_plain(m)}" for row, m in enumerate(self._messages))


def _common_head(old: list[MessageView], new: list[MessageView]) -> int:
    """How many first rows show the same messages (by id; an answer being written matches none)."""
    count = 0
    for before, after in zip(old, new, strict=False):
        if before.streaming or before.id != after.id:
            break
        count += 1
    return count
