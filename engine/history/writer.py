"""Saving a streamed answer: the text is checkpointed at most once per interval, not per token."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .store import AnswerChanged, HistoryStore

CHECKPOINT_INTERVAL_S = 1.0


class AnswerWriter:
    """Accumulates streamed text for one assistant message and saves it as it grows.

    A process killed mid-answer loses at most the text of the last interval; on the next start the
    message shows as interrupted, with the text saved so far.

    Each save checks that the stored text is still what this writer last saved. If another writer
    changed it meanwhile (a /continue in another window), this writer's text goes to a new version
    beside it (`forked_from` says which), so neither text overwrites the other.
    """

    def __init__(self, store: HistoryStore, message_id: str, initial_text: str = "",
                 interval_s: float = CHECKPOINT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, stored_text: str | None = None) -> None:
        """stored_text: the message's text in the history now (default initial_text)."""
        self.store = store
        self.message_id = message_id
        self.forked_from: str | None = None
        self._stored = initial_text if stored_text is None else stored_text
        self.interval_s = interval_s
        self._clock = clock
        self._parts = [initial_text] if initial_text else []
        self._saved_at = clock()
        self._dirty = False

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def append(self, chunk: str) -> None:
        if not chunk:
            return
        self._parts.append(chunk)
        self._dirty = True
        if self._clock() - self._saved_at >= self.interval_s:
            self.checkpoint()

    def checkpoint(self) -> None:
        if self._dirty:
            text = self.text
            try:
                self.store.checkpoint_answer(self.message_id, text, expected=self._stored)
            except AnswerChanged:
                self._fork(text)
            self._stored = text
            self._dirty = False
        self._saved_at = self._clock()

    def finish(self, text: str | None = None, **answer: Any) -> None:
        """Save the final text (the engine's, when given) with the answer's figures."""
        text = self.text if text is None else text
        try:
            self.store.finish_answer(self.message_id, text, expected=self._stored, **answer)
        except AnswerChanged:
            self._fork(text)
            self.store.finish_answer(self.message_id, text, **answer)
        self._stored = text

    def _fork(self, text: str) -> None:
        self.forked_from = self.forked_from or self.message_id
        self.message_id = self.store.fork_answer(self.message_id, text).id
