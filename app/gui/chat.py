"""The chat in the window: sends turns to the engine, streams answers into the transcript and the
history, and handles regenerate, edit, branches, continue and retry.

One answer is generated at a time (the engine has one thread), in whichever conversation asked for
it; opening another conversation never stops it: the answer goes on being written to its own
conversation in the history, and shows again, still streaming or finished, when that conversation is
opened. A second send while an answer runs is refused with a reason, and the text stays in the box.

Nothing typed is lost: a message whose answer never began (stopped before the first token, failed,
too long for the context) stays in the conversation, marked as not answered, with Retry and Edit.

Streamed text is buffered and shown at most about sixty times a second; the history gets it through
an AnswerWriter, which saves at most once a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from engine.errors import HearthError
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
from engine.history.store import Preset
from engine.history.writer import AnswerWriter
from engine.sampling import SamplingSettings

from . import markdown
from .bridge import EngineBridge
from .prefs import Prefs
from .transcript import MessageView, TranscriptView

FRAME_MS = 16
DEFAULTS_FROM = "chat/defaults_from"  # what new chats start from: "settings" or "preset"
PRESET_SEEN = "chat/default_preset_seen"  # the default preset as last seen
VISIBLE = 100  # messages shown when a conversation opens; older ones behind "Show earlier"


@dataclass
class ActiveTurn:
    """The answer being generated, in whichever conversation it belongs to."""

    request_id: int
    conversation_id: str
    recorded: RecordedTurn
    pending: str = ""  # streamed, not yet shown or saved
    chunks: int = 0  # text chunks streamed: about one a token
    prompt_tokens: int = 0
    dropped: int = 0


class ChatController(QObject):
    """Signals:
        busyChanged(bool): the conversation on screen started or stopped answering (Stop applies).
        generatingChanged(str): the conversation an answer is being written in ("" for none).
        conversationChanged(str): the shown conversation (id, or "" for none).
        historyChanged(): titles or order in the sidebar may have changed.
        notice(str, str): a message for the banner, and the action it offers ("" for none).
        refused(str): a message was not sent, and why; the text stays in the message box.
        contextChanged(int, int, int): tokens in use, context length, messages left out, for the
            conversation on screen.
        promptProgress(int, int): tokens of the prompt processed, of total.
    """

    busyChanged = Signal(bool)
    generatingChanged = Signal(str)
    conversationChanged = Signal(str)
    historyChanged = Signal()
    notice = Signal(str, str)
    refused = Signal(str)
    contextChanged = Signal(int, int, int)
    promptProgress = Signal(int, int)

    def __init__(self, store: HistoryStore, bridge: EngineBridge, transcript: TranscriptView, prefs: Prefs,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store, self.bridge, self.transcript, self.prefs = store, bridge, transcript, prefs
        self.conversation_id: str | None = None
        self.model_ref: str | None = None
        self.model_revision: str | None = None
        self._system_prompt, self._sampling = self.new_chat_defaults()
        self._chosen_for_new_chat = False  # a new chat's own settings were set: defaults no longer apply
        self._turn: ActiveTurn | None = None
        self.show_all = False  # long conversations open with their last VISIBLE messages
        self._context_length = 0
        self._flush_timer = QTimer(self, singleShot=True, interval=FRAME_MS, timeout=self._flush)
        bridge.textChunk.connect(self._on_text)
        bridge.finished.connect(self._on_finished)
        bridge.promptReady.connect(self._on_prompt_ready)
        bridge.promptProgress.connect(self._on_prompt_progress)
        bridge.modelLoaded.connect(self._on_model_loaded)
        transcript.actionRequested.connect(self._on_action)
        transcript.editSubmitted.connect(self._on_edit_submitted)
        prefs.changed.connect(self._on_prefs_changed)

    @property
    def busy(self) -> bool:
        """An answer is being generated (in any conversation)."""
        return self._turn is not None

    @property
    def answering_here(self) -> bool:
        """The conversation on screen is the one being answered."""
        return self._turn is not None and self._turn.conversation_id == self.conversation_id

    @property
    def generating_conversation(self) -> str | None:
        return self._turn.conversation_id if self._turn else None

    # --- this chat's settings ---

    @property
    def sampling(self) -> SamplingSettings:
        return self._sampling

    @sampling.setter
    def sampling(self, settings: SamplingSettings) -> None:
        self._sampling = settings
        self._chosen_for_new_chat = True

    @property
    def system_prompt(self) -> str:
        return self._system_prompt

    @system_prompt.setter
    def system_prompt(self, text: str) -> None:
        self._system_prompt = text
        self._chosen_for_new_chat = True

    def set_sampling(self, settings: SamplingSettings) -> None:
        """This chat's sampling settings, saved with the conversation."""
        self.sampling = settings
        if self.conversation_id:
            self.store.set_settings(self.conversation_id, settings.to_dict())

    def set_system_prompt(self, text: str) -> None:
        """This chat's system prompt, saved with the conversation."""
        self.system_prompt = text
        if self.conversation_id:
            self.store.set_system_prompt(self.conversation_id, text)

    def new_chat_defaults(self) -> tuple[str, SamplingSettings]:
        """What a new chat starts from: Settings' defaults for new conversations, or the preset
        marked default, whichever the user chose last."""
        prompt, sampling = self.prefs.get("generation/system_prompt"), self.prefs.sampling()
        preset = self._default_preset()
        if preset is not None and self.prefs.get(DEFAULTS_FROM, "preset") == "preset":
            prompt = preset.system_prompt
            try:
                sampling = SamplingSettings.from_dict({**sampling.to_dict(), **preset.settings})
            except (HearthError, TypeError, ValueError):
                pass  # an odd saved value: the preset's prompt with Settings' sampling
        return prompt, sampling

    def _default_preset(self) -> Preset | None:
        """The preset marked default. One not seen before (newly marked, or edited) becomes the
        latest choice; the history has no signal for it, so it is looked at when needed."""
        try:
            preset = self.store.default_preset()
        except HistoryError:
            return None
        if preset is not None:
            seen = json.dumps([preset.id, preset.system_prompt, preset.settings], sort_keys=True)
            if self.prefs.get(PRESET_SEEN, "") != seen:
                self.prefs.set(PRESET_SEEN, seen)
                self.prefs.set(DEFAULTS_FROM, "preset")
        return preset

    def _apply_new_chat_defaults(self) -> None:
        self._system_prompt, self._sampling = self.new_chat_defaults()
        self._chosen_for_new_chat = False

    def _on_prefs_changed(self, key: str) -> None:
        if key not in ("generation/system_prompt", "generation/sampling"):
            return
        self._default_preset()  # a preset marked default before this change counts as earlier
        self.prefs.set(DEFAULTS_FROM, "settings")
        if self.conversation_id is None and not self._chosen_for_new_chat:
            self._apply_new_chat_defaults()

    def _load_settings(self) -> None:
        if self.conversation_id is None:
            self._apply_new_chat_defaults()
            return
        try:
            conversation = self.store.conversation(self.conversation_id)
        except HistoryError:
            return
        self._system_prompt = conversation.system_prompt
        self._sampling = self.new_chat_defaults()[1]
        if conversation.settings:
            try:
                self._sampling = SamplingSettings.from_dict(conversation.settings)
            except (HearthError, TypeError, ValueError):
                pass  # an odd saved value: Settings' defaults

    # --- conversations ---

    def open(self, conversation_id: str | None) -> None:
        """Show a conversation (None: a new, empty chat). An answer being written goes on; the one
        left has its KV cache saved to disk, so coming back to it (also after a restart) is quick."""
        left = self.conversation_id
        if left and left != conversation_id:
            self.bridge.leave(left)
        self.conversation_id = conversation_id
        self.show_all = False
        self._load_settings()
        self.conversationChanged.emit(conversation_id or "")
        self.refresh()
        self.busyChanged.emit(self.answering_here)

    def new_chat(self) -> None:
        self.open(None)

    def show_search_hit(self, conversation_id: str, message_id: str, matched: str) -> None:
        """Open a conversation at a search hit: its branch made active, older messages shown if it
        is among them, the view scrolled to it and the matched text selected."""
        try:
            if self.generating_conversation != conversation_id:
                self.store.select_branch(message_id)  # the hit may be on another branch
            path = self.store.active_path(conversation_id)
        except HistoryError:
            self.open(conversation_id)
            return
        self.open(conversation_id)
        ids = [m.id for m in path]
        if message_id in ids and len(ids) - ids.index(message_id) > VISIBLE:
            self.show_all = True
            self.refresh()
        self.transcript.show_match(message_id, matched)

    def conversation_deleted(self, conversation_id: str) -> None:
        """The user deleted a conversation: stop its answer, leave it, and free its cache."""
        if self._turn is not None and self._turn.conversation_id == conversation_id:
            self.bridge.cancel(self._turn.request_id)
        if self.conversation_id == conversation_id:
            self.open(None)
        self.bridge.forget(conversation_id)

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

    def refresh(self, scroll_to: str | None = None) -> None:
        """Show the open conversation as saved, with the answer being written, if it is this one's;
        at the bottom, or at message `scroll_to`."""
        if self.conversation_id is None:
            self.transcript.clear_messages()
            self._show_context([])
            return
        try:
            path, total = self.store.active_path_tail(self.conversation_id, None if self.show_all else VISIBLE)
        except HistoryError:
            self.conversation_id = None
            self.transcript.clear_messages()
            self._show_context([])
            return
        earlier = total - len(path)
        turn = self._turn if self.answering_here else None
        if turn is not None:
            path = [m for m in path if m.id != turn.recorded.answer.id]
        self.transcript.show_messages(self._views(path, streaming=turn is not None), earlier, scroll_to)
        if turn is not None:
            self.transcript.begin_answer()
            self.transcript.append_text(turn.recorded.writer.text + turn.pending, turn.chunks)
        self._show_context(path)

    def _show_context(self, path: list[Message]) -> None:
        """The context meter for the conversation on screen: the answer being written, or the last
        finished answer's prompt and reply."""
        if self.answering_here and self._turn.prompt_tokens:
            self.contextChanged.emit(self._turn.prompt_tokens, self._context_length, self._turn.dropped)
            return
        last = next((m for m in reversed(path) if m.role == "assistant" and m.prompt_tokens), None)
        used = last.prompt_tokens + (last.generation_tokens or 0) if last else 0
        self.contextChanged.emit(used, self._context_length, 0)

    def _views(self, path: list[Message], streaming: bool = False) -> list[MessageView]:
        positions = self.store.branch_positions(path)
        views = [self._view(m, positions.get(m.id, (1, 1))) for m in path]
        if views and views[-1].role == "user" and not streaming:
            views[-1] = replace(views[-1], unanswered=True)
        return views

    @staticmethod
    def _view(message: Message, position: tuple[int, int]) -> MessageView:
        return MessageView(message.id, message.role, message.content, message.status, message.finish_reason,
                           message.generation_tps, message.ttft_s, message.generation_tokens,
                           position[0], position[1], message.model)

    # --- sending ---

    def send(self, text: str) -> bool:
        """Send a message in the open conversation (a new one if none). False, with `refused`
        saying why, when it cannot be sent; the caller keeps the text then."""
        if not text.strip() or not self._can_start():
            return False
        try:
            if self.conversation_id is None:
                if not self._chosen_for_new_chat:
                    self._apply_new_chat_defaults()  # a preset made default since this chat opened
                conv = self.store.create_conversation(model=self.model_ref, model_revision=self.model_revision,
                                                      system_prompt=self.system_prompt,
                                                      settings=self.sampling.to_dict())
                self.conversation_id = conv.id
                self.conversationChanged.emit(conv.id)
            turn = self._record_turn(text)
        except HistoryError as exc:
            self.refused.emit(f"Not sent: {exc} Your message is still here.")
            return False
        self._start(turn)
        self.historyChanged.emit()
        return True

    def _can_start(self) -> bool:
        """Whether an answer can start now; if not, `refused` says why."""
        if self._turn is not None:
            if self.answering_here:
                self.refused.emit("Still answering here. Stop the answer (Esc) or wait for it; your message "
                                  "stays in the box.")
            else:
                self.refused.emit(f"Still answering in “{self._title(self._turn.conversation_id)}”: one answer "
                                  f"is written at a time. Your message stays in the box; send it when that "
                                  f"answer is done, or stop it there.")
            return False
        if not self.model_ref:
            self.refused.emit("No model is loaded: choose one in the Model list above, or get one in "
                              "Settings. Your message stays in the box.")
            return False
        return True

    def _title(self, conversation_id: str) -> str:
        try:
            return self.store.conversation(conversation_id).title
        except HistoryError:
            return "another chat"

    def _record_turn(self, text: str) -> RecordedTurn:
        """The user message and an empty answer, in the history. A conversation ending in a message
        that was never answered gets the new one beside it (a branch), so neither is lost."""
        last = self.store.active_path(self.conversation_id, last=1)
        if not last or last[-1].role != "user":
            return start_turn(self.store, self.conversation_id, text, model=self.model_ref,
                              model_revision=self.model_revision, settings=self.sampling)
        user = self.store.add_user_message(self.conversation_id, text, parent_id=last[-1].parent_id, branch=True)
        return self._begin_answer(user.id, user)

    def _begin_answer(self, user_message_id: str, user: Message | None = None) -> RecordedTurn:
        answer = self.store.begin_answer(self.conversation_id, user_message_id, model=self.model_ref,
                                         model_revision=self.model_revision, settings=self.sampling.to_dict(),
                                         seed=self.sampling.seed)
        messages = engine_messages(self.store, self.store.conversation(self.conversation_id))[:-1]
        return RecordedTurn(user, answer, AnswerWriter(self.store, answer.id), messages)

    def _start(self, recorded: RecordedTurn) -> None:
        request = GenerationRequest(recorded.messages, self.sampling, self.conversation_id,
                                    continue_answer=recorded.continuing)
        self._turn = ActiveTurn(self.bridge.generate(request), self.conversation_id, recorded)
        self.refresh()
        self.busyChanged.emit(True)
        self.generatingChanged.emit(self.conversation_id)

    def stop(self) -> None:
        """Stop the answer being written in the conversation on screen (Stop, Esc)."""
        if self.answering_here:
            self.bridge.cancel(self._turn.request_id)

    def stop_any(self) -> None:
        """Stop the answer being written, wherever it is (the model changes or goes)."""
        if self._turn is not None:
            self.bridge.cancel(self._turn.request_id)

    # --- streaming ---

    def _on_text(self, request_id: int, text: str) -> None:
        if self._turn is None or request_id != self._turn.request_id:
            return
        self._turn.pending += text
        self._turn.chunks += 1
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _flush(self) -> None:
        turn = self._turn
        if turn is None or not turn.pending:
            return
        text, turn.pending = turn.pending, ""
        turn.recorded.writer.append(text)
        if self.conversation_id == turn.conversation_id:
            self.transcript.append_text(text, turn.chunks)

    def _on_model_loaded(self, loaded: dict) -> None:
        """The context length is known now: the meter shows the open chat against it."""
        self._context_length = loaded["context_length"]
        if self.conversation_id is not None:
            try:
                self._show_context(self.store.active_path(self.conversation_id, last=VISIBLE))
            except HistoryError:
                pass

    def _on_prompt_ready(self, request_id: int, ready: dict) -> None:
        if self._turn is None or request_id != self._turn.request_id:
            return
        self._turn.prompt_tokens = ready["prompt_tokens"]
        self._turn.dropped = len(ready["dropped_messages"])
        self._context_length = ready["context_length"]
        if self.answering_here:
            self.contextChanged.emit(self._turn.prompt_tokens, self._context_length, self._turn.dropped)

    def _on_prompt_progress(self, request_id: int, done: int, total: int) -> None:
        if self._turn is not None and request_id == self._turn.request_id and self.answering_here:
            self.promptProgress.emit(done, total)

    def _on_finished(self, request_id: int, data: dict[str, Any]) -> None:
        if self._turn is None or request_id != self._turn.request_id:
            return
        self._flush()
        turn, self._turn = self._turn, None
        result = _finished(data)
        answered = self._close_answer(turn.recorded, result)
        here = self.conversation_id == turn.conversation_id
        if result.finish_reason == "error":
            self.notice.emit(self._failure_text(result, answered, turn.conversation_id),
                             "settings" if "model" in (result.error or "") else "")
        elif not answered and here:
            self.notice.emit("Stopped before the answer began. Your message is kept: Retry answers it, "
                             "Edit changes it.", "")
        if here:
            self.refresh()
            if result.prompt_tokens:
                self.contextChanged.emit(result.prompt_tokens + result.generation_tokens,
                                         self._context_length, len(result.dropped_messages))
        self.busyChanged.emit(False)
        self.generatingChanged.emit("")
        self.historyChanged.emit()

    def _close_answer(self, recorded: RecordedTurn, result: Finished) -> bool:
        """Save the answer; one that never began is removed, and the user's message stays."""
        try:
            if result.text or result.finish_reason not in ("cancelled", "error") or recorded.continuing:
                finish_turn(self.store, recorded, result)
                return True
            self.store.delete_message(recorded.answer.id)
        except HistoryError:
            pass  # the conversation was deleted meanwhile
        return False

    def _failure_text(self, result: Finished, answered: bool, conversation_id: str) -> str:
        reason = result.error or "The answer failed."
        where = "" if conversation_id == self.conversation_id else f" (in “{self._title(conversation_id)}”)"
        kept = " The answer so far is kept." if answered else " Your message is kept: Retry or Edit it."
        return f"{reason}{where}{kept}"

    def save_partial_for_quit(self) -> None:
        """At quit mid-answer: save what streamed so far as a stopped answer, at once."""
        if self._turn is None:
            return
        self._flush()
        try:
            self._turn.recorded.writer.finish(finish_reason="cancelled")
        except HistoryError:
            pass
        self._turn = None

    # --- actions from the transcript ---

    def _on_action(self, action: str, message_id: str, number: int) -> None:
        if action == "more":
            first_shown = next((v.id for v in self.transcript.shown_messages()), None)
            self.show_all = True
            self.refresh(scroll_to=first_shown)  # where the reader was, not the bottom
            return
        handler = {"copy": self._copy, "code": self._copy_code, "regenerate": self.regenerate,
                   "retry": self.retry, "prev": lambda m, n: self._switch(m, -1),
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
        if self._can_start():
            self._start(self._begin_answer(self.store.message(message_id).parent_id))

    def retry(self, message_id: str, _number: int = 0) -> None:
        """Answer a message whose answer never began."""
        if self._can_start():
            self._start(self._begin_answer(message_id))

    def _on_edit_submitted(self, message_id: str, new_text: str) -> None:
        self.edit(message_id, new_text=new_text)

    def edit(self, message_id: str, _number: int = 0, new_text: str = "") -> None:
        """Edit a user message (in place, in the transcript): a new version (a branch), answered afresh."""
        if not new_text.strip() or not self._can_start():
            return
        original = self.store.message(message_id)
        edited = self.store.add_user_message(original.conversation_id, new_text, parent_id=original.parent_id,
                                             branch=True)
        self._start(self._begin_answer(edited.id, edited))

    def continue_answer(self, message_id: str, _number: int = 0) -> None:
        if not self._can_start():
            return
        path = self.store.active_path(self.conversation_id)
        if not path or path[-1].id != message_id:
            self.store.select_branch(message_id)
        self._start(start_continuation(self.store, self.conversation_id))

    def _switch(self, message_id: str, step: int) -> None:
        siblings = self.store.siblings(message_id)
        index = siblings.index(message_id) + step
        if 0 <= index < len(siblings) and not self.answering_here:
            self.store.select_branch(siblings[index])
            self.refresh(scroll_to=siblings[index])


def _finished(data: dict[str, Any]) -> Finished:
    names = {f.name for f in fields(Finished)}
    return Finished(**{k: v for k, v in data.items() if k in names})


__all__ = ["ChatController", "answer_figures"]
