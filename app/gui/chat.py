"""The chat in the window: sends turns to the engine, streams answers into the transcript and the
history, and handles regenerate, edit, branches and continue.

Streamed text is buffered and shown at most about sixty times a second; the history gets it through
an AnswerWriter, which saves at most once a second. A stop, a switch to another conversation, a model
change or a quit mid-answer all keep the partial answer.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from engine.events import Finished
from engine.generation import GenerationRequest
from engine.history import HistoryError, HistoryStore, Message
from engine.history.recording import (
    RecordedTurn,
    answer_figures,
    engine_messages,
    finish_turn,
    start_continuation,
    start_turn,
)
from engine.history.writer import AnswerWriter
from engine.sampling import SamplingSettings

from . import markdown
from .bridge import EngineBridge
from .transcript import MessageView, TranscriptView

FRAME_MS = 16
VISIBLE = 100  # messages shown when a conversation opens; older ones behind "Show earlier"


class ChatController(QObject):
    """Signals:
        busyChanged(bool): an answer started or ended.
        conversationChanged(str): the shown conversation (id, or "" for none).
        historyChanged(): titles or order in the sidebar may have changed.
        notice(str, str): a message for the banner, and the action it offers ("" for none).
        contextChanged(int, int, int): prompt tokens, context length, messages left out.
        promptProgress(int, int): tokens of the prompt processed, of total.
    """

    busyChanged = Signal(bool)
    conversationChanged = Signal(str)
    historyChanged = Signal()
    notice = Signal(str, str)
    contextChanged = Signal(int, int, int)
    promptProgress = Signal(int, int)

    def __init__(self, store: HistoryStore, bridge: EngineBridge, transcript: TranscriptView, parent=None) -> None:
        super().__init__(parent)
        self.store, self.bridge, self.transcript = store, bridge, transcript
        self.conversation_id: str | None = None
        self.model_ref: str | None = None
        self.model_revision: str | None = None
        self.sampling = SamplingSettings()
        self.system_prompt = ""
        self._request: int | None = None
        self._turn: RecordedTurn | None = None
        self._turn_conversation: str | None = None
        self._pending = ""
        self.show_all = False  # long conversations open with their last VISIBLE messages
        self._context_length = 0
        self._flush_timer = QTimer(self, singleShot=True, interval=FRAME_MS, timeout=self._flush)
        bridge.textChunk.connect(self._on_text)
        bridge.finished.connect(self._on_finished)
        bridge.promptReady.connect(self._on_prompt_ready)
        bridge.promptProgress.connect(lambda rid, done, total: rid == self._request and self.promptProgress.emit(done, total))
        transcript.actionRequested.connect(self._on_action)

    @property
    def busy(self) -> bool:
        return self._request is not None

    # --- conversations ---

    def open(self, conversation_id: str | None) -> None:
        if self.busy and conversation_id != self._turn_conversation:
            self.stop()  # the partial answer is kept when the engine confirms
        self.conversation_id = conversation_id
        self.show_all = False
        self._load_settings()
        self.refresh()
        self.conversationChanged.emit(conversation_id or "")

    def new_chat(self) -> None:
        self.open(None)

    def set_sampling(self, settings: SamplingSettings) -> None:
        """This chat's sampling settings, saved with the conversation (new chats take them too)."""
        self.sampling = settings
        if self.conversation_id:
            self.store.set_settings(self.conversation_id, settings.to_dict())

    def dropped_description(self, dropped: int) -> str:
        """Which earlier messages the model no longer sees, in words."""
        if not dropped:
            return ""
        path = self.store.active_path(self.conversation_id, last=None) if self.conversation_id else []
        first = path[0].content if path else ""
        last = path[dropped - 1].content if len(path) >= dropped else ""
        clip = lambda text: " ".join(text.split())[:30]  # noqa: E731
        return (f"Left out, no longer fitting: the {dropped} oldest messages, from “{clip(first)}…” to "
                f"“{clip(last)}…”")

    def _load_settings(self) -> None:
        if not self.conversation_id:
            return
        try:
            stored = self.store.conversation(self.conversation_id).settings
        except HistoryError:
            return
        if stored:
            try:
                self.sampling = SamplingSettings.from_dict(stored)
            except Exception:  # noqa: BLE001 - an odd saved value keeps the current settings
                pass

    def refresh(self) -> None:
        if self.conversation_id is None:
            self.transcript.clear_messages()
            return
        try:
            path, total = self.store.active_path_tail(self.conversation_id, None if self.show_all else VISIBLE)
        except HistoryError:
            self.conversation_id = None
            self.transcript.clear_messages()
            return
        views = self._views(path)
        if self.busy and self._turn_conversation == self.conversation_id and self._turn is not None:
            views = [v for v in views if v.id != self._turn.answer.id]
            self.transcript.show_messages(views, total - len(path))
            self.transcript.begin_answer()
            self.transcript.append_text(self._turn.writer.text + self._pending)
        else:
            self.transcript.show_messages(views, total - len(path))

    def _views(self, path: list[Message]) -> list[MessageView]:
        positions = self.store.branch_positions(path)
        return [self._view(m, positions.get(m.id, (1, 1))) for m in path]

    @staticmethod
    def _view(message: Message, position: tuple[int, int]) -> MessageView:
        return MessageView(message.id, message.role, message.content, message.status, message.finish_reason,
                           message.generation_tps, message.ttft_s, message.generation_tokens,
                           position[0], position[1], message.model)

    # --- sending ---

    def send(self, text: str) -> None:
        if self.busy:
            return
        if not self.model_ref:
            self.notice.emit("Choose a model first: pick one above, or download one in Settings.", "settings")
            return
        if self.conversation_id is None:
            conv = self.store.create_conversation(model=self.model_ref, model_revision=self.model_revision,
                                                  system_prompt=self.system_prompt, settings=self.sampling.to_dict())
            self.conversation_id = conv.id
            self.conversationChanged.emit(conv.id)
        self._fix_unanswered_end()
        turn = start_turn(self.store, self.conversation_id, text, model=self.model_ref,
                          model_revision=self.model_revision, settings=self.sampling)
        self._start(turn)
        self.historyChanged.emit()

    def _fix_unanswered_end(self) -> None:
        """A conversation ending in a user message (its answer failed) continues from before it."""
        path = self.store.active_path(self.conversation_id)
        if path and path[-1].role == "user":
            self.store.delete_message(path[-1].id)

    def _start(self, turn: RecordedTurn, continuing: bool = False) -> None:
        self._turn, self._turn_conversation = turn, self.conversation_id
        self.refresh_without_stream(turn)
        self.transcript.begin_answer()
        if continuing:
            self.transcript.append_text(turn.prefix)
        request = GenerationRequest(turn.messages, self.sampling, self.conversation_id, continue_answer=continuing)
        self._request = self.bridge.generate(request)
        self.busyChanged.emit(True)

    def refresh_without_stream(self, turn: RecordedTurn) -> None:
        path, total = self.store.active_path_tail(self.conversation_id, None if self.show_all else VISIBLE + 1)
        shown = [m for m in path if m.id != turn.answer.id]
        self.transcript.show_messages(self._views(shown), total - len(path))

    def stop(self) -> None:
        if self._request is not None:
            self.bridge.cancel(self._request)

    # --- streaming ---

    def _on_text(self, request_id: int, text: str) -> None:
        if request_id != self._request:
            return
        self._pending += text
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _flush(self) -> None:
        if not self._pending or self._turn is None:
            return
        text, self._pending = self._pending, ""
        self._turn.writer.append(text)
        if self.conversation_id == self._turn_conversation:
            self.transcript.append_text(text)

    def _on_prompt_ready(self, request_id: int, ready: dict) -> None:
        if request_id == self._request:
            self._context_length = ready["context_length"]
            self.contextChanged.emit(ready["prompt_tokens"], ready["context_length"], len(ready["dropped_messages"]))

    def _on_finished(self, request_id: int, data: dict[str, Any]) -> None:
        if request_id != self._request or self._turn is None:
            return
        self._flush()
        result = _finished(data)
        if result.prompt_tokens:
            self.contextChanged.emit(result.prompt_tokens + result.generation_tokens,
                                     self._context_length, len(result.dropped_messages))
        turn, self._turn, self._request = self._turn, None, None
        try:
            finish_turn(self.store, turn, result)
        except HistoryError:
            pass  # the conversation was deleted meanwhile
        if result.finish_reason == "error":
            self.notice.emit(result.error or "The answer failed.", "settings" if "model" in (result.error or "") else "")
        self.busyChanged.emit(False)
        if self.conversation_id == self._turn_conversation:
            self.refresh()
        self.historyChanged.emit()

    def save_partial_for_quit(self) -> None:
        """At quit mid-answer: save what streamed so far as a stopped answer, at once."""
        if self._turn is None:
            return
        self._flush()
        try:
            self._turn.writer.finish(finish_reason="cancelled")
        except HistoryError:
            pass
        self._turn = None

    # --- actions from the transcript ---

    def _on_action(self, action: str, message_id: str, number: int) -> None:
        if action == "more":
            self.show_all = True
            self.refresh()
            return
        handler = {"copy": self._copy, "code": self._copy_code, "regenerate": self.regenerate,
                   "edit": self.edit, "prev": lambda m, n: self._switch(m, -1),
                   "next": lambda m, n: self._switch(m, +1), "continue": self.continue_answer}.get(action)
        if handler is not None:
            handler(message_id, number)

    def _copy(self, message_id: str, _number: int = 0) -> None:
        QGuiApplication.clipboard().setText(self.store.message(message_id).content)

    def _copy_code(self, message_id: str, number: int) -> None:
        blocks = markdown.code_blocks(self.store.message(message_id).content)
        if 0 <= number < len(blocks):
            QGuiApplication.clipboard().setText(blocks[number])

    def regenerate(self, message_id: str, _number: int = 0) -> None:
        """A new version of this answer beside the old one (a branch)."""
        if self.busy or not self.model_ref:
            return
        parent = self.store.message(message_id).parent_id
        self._answer_after(parent)

    def edit(self, message_id: str, _number: int = 0, new_text: str | None = None) -> None:
        """Edit a user message: a new version (a branch), answered afresh."""
        if self.busy or not self.model_ref:
            return
        original = self.store.message(message_id)
        if new_text is None:
            from PySide6.QtWidgets import QInputDialog

            new_text, ok = QInputDialog.getMultiLineText(self.transcript, "Edit message", "Message:", original.content)
            if not ok:
                return
        if not new_text.strip():
            return
        edited = self.store.add_user_message(original.conversation_id, new_text, parent_id=original.parent_id,
                                             branch=True)
        self._answer_after(edited.id)

    def _answer_after(self, user_message_id: str) -> None:
        answer = self.store.begin_answer(self.conversation_id, user_message_id, model=self.model_ref,
                                         model_revision=self.model_revision, settings=self.sampling.to_dict(),
                                         seed=self.sampling.seed)
        messages = engine_messages(self.store, self.store.conversation(self.conversation_id))[:-1]
        self._start(RecordedTurn(None, answer, AnswerWriter(self.store, answer.id), messages))

    def continue_answer(self, message_id: str, _number: int = 0) -> None:
        if self.busy or not self.model_ref:
            return
        path = self.store.active_path(self.conversation_id)
        if not path or path[-1].id != message_id:
            self.store.select_branch(message_id)
        self._start(start_continuation(self.store, self.conversation_id), continuing=True)

    def _switch(self, message_id: str, step: int) -> None:
        siblings = self.store.siblings(message_id)
        index = siblings.index(message_id) + step
        if 0 <= index < len(siblings) and not self.busy:
            self.store.select_branch(siblings[index])
            self.refresh()


def _finished(data: dict[str, Any]) -> Finished:
    names = {f.name for f in fields(Finished)}
    return Finished(**{k: v for k, v in data.items() if k in names})


__all__ = ["ChatController", "answer_figures"]
