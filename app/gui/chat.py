"""The chat in the window: a thin Qt adapter over the Qt-free ChatSession (engine/chat_session.py),
which owns every turn from send to finish, as it does for the terminal.

This adapter turns the session's news into Qt signals and the transcript's display: streamed text is
buffered and shown at most about sixty times a second; refusals and failures become one line with the
reason, and the text typed stays where it was (in the box, or in the chat as an unanswered message).
"""

from __future__ import annotations

import json
from dataclasses import replace

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from engine.chat_session import (
    Busy,
    ChatSession,
    NoModel,
    Outcome,
    SessionListener,
    Turn,
    TurnRefused,
)
from engine.errors import HearthError
from engine.events import Event, Finished
from engine.history import HistoryError, HistoryStore, Message
from engine.history.store import Preset
from engine.sampling import SamplingSettings

from . import markdown
from .bridge import EngineBridge
from .prefs import Prefs
from .transcript import MessageView, TranscriptView

FRAME_MS = 16
DEFAULTS_FROM = "chat/defaults_from"  # what new chats start from: "settings" or "preset"
PRESET_SEEN = "chat/default_preset_seen"  # the default preset as last seen
VISIBLE = 100  # messages shown when a conversation opens; older ones behind "Show earlier"


class ChatController(QObject, SessionListener):
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
        self.session = ChatSession(store, bridge, self.new_chat_defaults, listener=self)
        self.show_all = False  # long conversations open with their last VISIBLE messages
        self._context_length = 0
        self._pending = ""  # streamed text not yet shown
        self._flush_timer = QTimer(self, singleShot=True, interval=FRAME_MS, timeout=self._flush)
        bridge.event.connect(self._on_engine_event)
        bridge.modelLoaded.connect(self._on_model_loaded)
        self._draft_request: int | None = None  # loading the draft model Settings chose
        transcript.actionRequested.connect(self._on_action)
        transcript.editSubmitted.connect(self._on_edit_submitted)
        prefs.changed.connect(self._on_prefs_changed)

    # --- the session's state, as the window reads it ---

    @property
    def conversation_id(self) -> str | None:
        return self.session.conversation_id

    @property
    def model_ref(self) -> str | None:
        return self.session.model_ref

    @model_ref.setter
    def model_ref(self, ref: str | None) -> None:
        self.session.model_ref = ref

    @property
    def model_revision(self) -> str | None:
        return self.session.model_revision

    @model_revision.setter
    def model_revision(self, revision: str | None) -> None:
        self.session.model_revision = revision

    @property
    def busy(self) -> bool:
        """An answer is being generated (in any conversation)."""
        return self.session.busy

    @property
    def answering_here(self) -> bool:
        """The conversation on screen is the one being answered."""
        return self.session.answering_here

    @property
    def generating_conversation(self) -> str | None:
        return self.session.generating_conversation

    @property
    def sampling(self) -> SamplingSettings:
        return self.session.sampling

    @sampling.setter
    def sampling(self, settings: SamplingSettings) -> None:
        """This chat's sampling for the next answer, not saved (the self-test's greedy answers)."""
        self.session.sampling = settings
        self.session.chosen_for_new_chat = True

    @property
    def system_prompt(self) -> str:
        return self.session.system_prompt

    def set_sampling(self, settings: SamplingSettings) -> None:
        """This chat's sampling settings, saved with the conversation."""
        self._saving(lambda: self.session.set_sampling(settings))

    def set_system_prompt(self, text: str) -> None:
        """This chat's system prompt, saved with the conversation."""
        self._saving(lambda: self.session.set_system_prompt(text))

    def _saving(self, change) -> None:
        try:
            change()
        except HistoryError as exc:
            self.notice.emit(f"Not saved: {exc}", "")

    # --- what new chats start from ---

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

    def _on_prefs_changed(self, key: str) -> None:
        if key == "generation/draft":
            self._use_draft_setting()
        if key not in ("generation/system_prompt", "generation/sampling"):
            return
        self._default_preset()  # a preset marked default before this change counts as earlier
        self.prefs.set(DEFAULTS_FROM, "settings")
        self.session.defaults_changed()

    # --- conversations ---

    def open(self, conversation_id: str | None) -> None:
        """Show a conversation (None: a new, empty chat). An answer being written goes on."""
        try:
            self.session.open(conversation_id)
        except HistoryError as exc:  # deleted by another window meanwhile, or the history is busy
            self.session.open(None)
            self.notice.emit(str(exc), "")
        self.show_all = False
        self.conversationChanged.emit(self.conversation_id or "")
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

    def conversation_deleted(self, conversation_id: str, undoable: bool = False) -> None:
        """The user deleted a conversation (undoable: for a few seconds, Undo brings it back): its
        answer stops, its caches go, and a new chat shows if it was open."""
        was_open = self.conversation_id == conversation_id
        self.session.conversation_deleted(conversation_id, undoable)
        if was_open:
            self.open(None)

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
            self.session.open(None)
            self.transcript.clear_messages()
            self._show_context([])
            return
        earlier = total - len(path)
        turn = self.session.turn if self.answering_here else None
        if turn is not None:
            path = [m for m in path if m.id != turn.answer_id]
        self.transcript.show_messages(self._views(path, streaming=turn is not None), earlier, scroll_to)
        if turn is not None:
            self._pending = ""
            self.transcript.begin_answer()
            self.transcript.append_text(turn.text, turn.chunks)
        self._show_context(path)

    def _show_context(self, path: list[Message]) -> None:
        """The context meter for the conversation on screen: the answer being written, or the last
        finished answer's prompt and reply."""
        turn = self.session.turn
        if self.answering_here and turn.prompt_tokens:
            self.contextChanged.emit(turn.prompt_tokens, self._context_length, len(turn.dropped))
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

    # --- starting and stopping answers ---

    def send(self, text: str) -> bool:
        """Send a message in the open conversation (a new one if none). False, with `refused`
        saying why, when it cannot be sent; the caller keeps the text then."""
        if not text.strip():
            return False
        started = self._starting(lambda: self.session.send(text), typed=True)
        if started:
            self.historyChanged.emit()
        return started

    def _starting(self, start, typed: bool = False) -> bool:
        """Start a turn; a refusal is told (`refused` for typed text, which stays in the box)."""
        try:
            start()
        except Busy as busy:
            self.refused.emit(self._busy_text(busy, typed))
            return False
        except NoModel:
            self.refused.emit("No model is loaded: choose one in the Model list above, or get one in "
                              "Settings." + (" Your message stays in the box." if typed else ""))
            return False
        except (TurnRefused, HistoryError) as exc:
            kept = " Your message is still here." if typed else ""
            self.refused.emit(f"Not sent: {exc}{kept}")
            return False
        return True

    def _busy_text(self, busy: Busy, typed: bool) -> str:
        kept = " Your message stays in the box;" if typed else ""
        if busy.here:
            return f"Still answering here.{kept} Stop the answer (Esc) or wait for it."
        return (f"Still answering in “{self.session.title(busy.conversation_id)}”: one answer is written at "
                f"a time.{kept} Send it when that answer is done, or stop it there.")

    def stop(self) -> None:
        """Stop the answer being written in the conversation on screen (Stop, Esc)."""
        self.session.stop()

    def stop_any(self) -> None:
        """Stop the answer being written, wherever it is (the model changes or goes)."""
        self.session.stop_any()

    def save_partial_for_quit(self) -> None:
        """At quit mid-answer: save what streamed so far as a stopped answer, at once."""
        self.session.save_partial_for_quit()

    # --- the session's news (SessionListener) ---

    def conversation_created(self, conversation_id: str) -> None:
        self.conversationChanged.emit(conversation_id)

    def turn_started(self, turn: Turn) -> None:
        self._pending = ""
        self.refresh()
        self.busyChanged.emit(True)
        self.generatingChanged.emit(turn.conversation_id)

    def text_streamed(self, turn: Turn, text: str) -> None:
        if turn.conversation_id != self.conversation_id:
            return
        self._pending += text
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _flush(self) -> None:
        turn = self.session.turn
        text, self._pending = self._pending, ""
        if text and turn is not None and turn.conversation_id == self.conversation_id:
            self.transcript.append_text(text, turn.chunks)

    def prompt_ready(self, turn: Turn) -> None:
        self._context_length = turn.context_length
        if turn.conversation_id == self.conversation_id:
            self.contextChanged.emit(turn.prompt_tokens, self._context_length, len(turn.dropped))

    def prompt_progress(self, turn: Turn, done: int, total: int) -> None:
        if turn.conversation_id == self.conversation_id:
            self.promptProgress.emit(done, total)

    def turn_finished(self, outcome: Outcome) -> None:
        self._flush_timer.stop()
        self._pending = ""
        result, conversation_id = outcome.result, outcome.turn.conversation_id
        here = self.conversation_id == conversation_id
        if outcome.failed:
            self.notice.emit(self._failure_text(outcome), "settings" if "model" in (result.error or "") else "")
        elif not outcome.answered and here:
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

    def _failure_text(self, outcome: Outcome) -> str:
        conversation_id = outcome.turn.conversation_id
        reason = outcome.result.error or "The answer failed."
        where = "" if conversation_id == self.conversation_id else f" (in “{self.session.title(conversation_id)}”)"
        kept = " The answer so far is kept." if outcome.answered else " Your message is kept: Retry or Edit it."
        return f"{reason}{where}{kept}"

    # --- speculative decoding: Settings' choice ---

    def _use_draft_setting(self) -> None:
        """Settings > Generation's choice for the next answers. A draft model is loaded beside the
        model (on the engine thread); until it is, and if it cannot be, prompt lookup decides."""
        choice = self.prefs.get("generation/draft", "auto")
        self.session.draft = draft_mode(choice)
        self._draft_request = None
        if self.session.draft != choice and self.model_ref:
            self._draft_request = self.bridge.load_draft(choice)

    def is_draft_request(self, request_id: int) -> bool:
        """Whether a finished request was the draft model's load (its failure is not the model's)."""
        return request_id == self._draft_request

    def _on_engine_event(self, event: Event) -> None:
        if event.request_id == self._draft_request:
            if isinstance(event, Finished):
                self._draft_loaded(event)
            return
        self.session.on_event(event)

    def _draft_loaded(self, result: Finished) -> None:
        if result.finish_reason == "done":
            self.session.draft = "model"
            return
        choice = self.prefs.get("generation/draft", "")
        self.notice.emit(f"The draft model {choice} was not loaded: {result.error or 'it failed'}. "
                         f"Answers use prompt lookup when it pays instead.", "settings")

    def _on_model_loaded(self, loaded: dict) -> None:
        """The context length is known now: the meter shows the open chat against it. A draft model
        chosen in Settings is loaded beside the new model."""
        self._use_draft_setting()
        self._context_length = loaded["context_length"]
        if self.conversation_id is not None:
            try:
                self._show_context(self.store.active_path(self.conversation_id, last=VISIBLE))
            except HistoryError:
                pass

    # --- actions from the transcript ---

    def _on_action(self, action: str, message_id: str, number: int) -> None:
        if action == "more":
            first_shown = next((v.id for v in self.transcript.shown_messages()), None)
            self.show_all = True
            self.refresh(scroll_to=first_shown)  # where the reader was, not the bottom
        elif action == "copy":
            QGuiApplication.clipboard().setText(self.store.message(message_id).content)
        elif action == "code":
            blocks = markdown.code_blocks(self.store.message(message_id).content)
            if 0 <= number < len(blocks):
                QGuiApplication.clipboard().setText(blocks[number])
        elif action == "regenerate":
            self._starting(lambda: self.session.regenerate(message_id))
        elif action == "retry":
            self._starting(lambda: self.session.retry(message_id))
        elif action == "continue":
            self._starting(lambda: self.session.continue_answer(message_id))
        elif action in ("prev", "next"):
            shown = self.session.switch_branch(message_id, -1 if action == "prev" else +1)
            if shown is not None:
                self.refresh(scroll_to=shown)

    def _on_edit_submitted(self, message_id: str, new_text: str) -> None:
        """A user message edited in place: a new version (a branch), answered afresh."""
        self._starting(lambda: self.session.edit(message_id, new_text))


def draft_mode(choice: str | None) -> str:
    """GenerationRequest.draft for Settings' speculative-decoding choice. A draft model's ref is
    "auto" until the window has loaded it (then the window sets "model")."""
    return choice if choice in ("auto", "lookup", "off") else "auto"


__all__ = ["ChatController", "draft_mode"]
