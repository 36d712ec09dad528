"""A chat session: one conversation's turns from send to finish, shared by the app and the terminal.

The session owns what a turn does to the history and to the engine: recording the user's message,
starting the answer, saving it as it streams (an AnswerWriter), closing it with the engine's figures,
regenerating, editing, continuing, switching branches, and releasing a conversation's cache when it
is left, deleted or rewritten. The front ends only show what happens: the desktop app through Qt
signals, the terminal by printing. Nothing here knows Qt or threads; every call is made on the front
end's thread, and engine events are handed in by the front end (`on_event`) on that same thread.

One answer is written at a time (the engine has one thread), in whichever conversation asked for it;
the open conversation may change meanwhile and the answer goes on in its own conversation.

Nothing typed is lost: a message whose answer never began (stopped before the first token, failed,
too long for the context) stays in the conversation, unanswered; `retry` answers it, and a new
message sent after it goes beside it (a branch), so neither is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import HearthError
from .events import Event, Finished, PromptProgress, PromptReady, TextChunk
from .generation import GenerationRequest
from .history.db import HistoryError
from .history.recording import RecordedTurn, engine_messages, finish_turn, start_continuation
from .history.store import HistoryStore, Message
from .history.writer import AnswerWriter
from .sampling import SamplingSettings


class EngineLink(Protocol):
    """What a session asks of the engine; none of these waits for the engine."""

    def generate(self, request: GenerationRequest) -> int: ...

    def cancel(self, request_id: int) -> None: ...

    def leave(self, conversation_id: str) -> Any: ...

    def forget(self, conversation_id: str, deleted: bool = False) -> Any: ...


class TurnRefused(HearthError):
    """A turn could not start; the message says why. Whatever was typed is still the caller's."""


class Busy(TurnRefused):
    """An answer is being written already (`here`: in the open conversation)."""

    def __init__(self, message: str, *, here: bool, conversation_id: str) -> None:
        super().__init__(message)
        self.here, self.conversation_id = here, conversation_id


class NoModel(TurnRefused):
    pass


@dataclass
class Turn:
    """The answer being written, in whichever conversation it belongs to."""

    request_id: int
    conversation_id: str
    recorded: RecordedTurn
    chunks: int = 0  # text chunks streamed: about one a token
    prompt_tokens: int = 0
    context_length: int = 0
    dropped: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The answer's text so far (a continued answer's earlier text included)."""
        return self.recorded.writer.text

    @property
    def answer_id(self) -> str:
        return self.recorded.answer.id


@dataclass(frozen=True)
class Outcome:
    """How a turn ended."""

    turn: Turn
    result: Finished
    answered: bool  # an answer (whole or partial) was saved; False: the user's message stays unanswered
    forked_from: str | None = None  # another writer changed the answer meanwhile: saved beside it

    @property
    def failed(self) -> bool:
        return self.result.finish_reason == "error"


class SessionListener:
    """What a front end hears from its session; every method is optional."""

    def conversation_created(self, conversation_id: str) -> None: ...

    def turn_started(self, turn: Turn) -> None: ...

    def text_streamed(self, turn: Turn, text: str) -> None: ...

    def prompt_ready(self, turn: Turn) -> None: ...

    def prompt_progress(self, turn: Turn, done: int, total: int) -> None: ...

    def turn_finished(self, outcome: Outcome) -> None: ...


Defaults = Callable[[], tuple[str, SamplingSettings]]


class ChatSession:
    """The open conversation (None: a new chat, created on the first send) and the answer being
    written. `defaults` gives a new chat's system prompt and sampling (Settings, a preset, or the
    terminal's options)."""

    def __init__(self, store: HistoryStore, link: EngineLink, defaults: Defaults,
                 listener: SessionListener | None = None) -> None:
        self.store, self.link, self.defaults = store, link, defaults
        self.listener = listener or SessionListener()
        self.conversation_id: str | None = None
        self.model_ref: str | None = None
        self.model_revision: str | None = None
        self.draft = "auto"  # GenerationRequest.draft: auto, lookup, off, or model (a draft model is loaded)
        self.turn: Turn | None = None
        self.system_prompt, self.sampling = defaults()
        self.chosen_for_new_chat = False  # a new chat's own settings were set: defaults no longer apply

    # --- state ---

    @property
    def busy(self) -> bool:
        """An answer is being written (in any conversation)."""
        return self.turn is not None

    @property
    def answering_here(self) -> bool:
        """The open conversation is the one being answered."""
        return self.turn is not None and self.turn.conversation_id == self.conversation_id

    @property
    def generating_conversation(self) -> str | None:
        return self.turn.conversation_id if self.turn else None

    def title(self, conversation_id: str) -> str:
        try:
            return self.store.conversation(conversation_id).title
        except HistoryError:
            return "another chat"

    # --- the open conversation and its settings ---

    def open(self, conversation_id: str | None) -> None:
        """Make a conversation the open one (None: a new chat). An answer being written goes on; the
        conversation left has its KV cache saved (the engine does it), so coming back is quick."""
        left = self.conversation_id
        if left and left != conversation_id:
            self.link.leave(left)
        self.conversation_id = conversation_id
        self._load_settings()

    def set_system_prompt(self, text: str) -> None:
        """The open chat's system prompt, saved with it. Its cache no longer matches: released."""
        if text == self.system_prompt and self.conversation_id:
            return
        self.system_prompt = text
        if self.conversation_id is None:
            self.chosen_for_new_chat = True
            return
        self.store.set_system_prompt(self.conversation_id, text)
        if self.generating_conversation != self.conversation_id:
            self.link.forget(self.conversation_id)

    def set_sampling(self, settings: SamplingSettings) -> None:
        """The open chat's sampling settings, saved with it."""
        self.sampling = settings
        if self.conversation_id is None:
            self.chosen_for_new_chat = True
        else:
            self.store.set_settings(self.conversation_id, settings.to_dict())

    def defaults_changed(self) -> None:
        """The defaults for new chats changed: a new chat not yet given its own settings takes them."""
        if self.conversation_id is None and not self.chosen_for_new_chat:
            self.system_prompt, self.sampling = self.defaults()

    def _load_settings(self) -> None:
        self.chosen_for_new_chat = False
        if self.conversation_id is None:
            self.system_prompt, self.sampling = self.defaults()
            return
        conversation = self.store.conversation(self.conversation_id)
        self.system_prompt = conversation.system_prompt
        self.sampling = self.defaults()[1]
        if conversation.settings:
            try:
                self.sampling = SamplingSettings.from_dict(conversation.settings)
            except (HearthError, TypeError, ValueError):
                pass  # an odd saved value: the defaults

    def conversation_deleted(self, conversation_id: str, undoable: bool = False) -> None:
        """The user deleted a conversation: its answer stops and its caches (memory and disk) go.
        Once the delete is final (not undoable), no Hearth process may save a cache of it again."""
        if self.turn is not None and self.turn.conversation_id == conversation_id:
            self.link.cancel(self.turn.request_id)
        if self.conversation_id == conversation_id:
            self.conversation_id = None
            self._load_settings()
        self.link.forget(conversation_id, deleted=not undoable)

    # --- starting turns; each raises TurnRefused (saying why) when it cannot start ---

    def send(self, text: str) -> Turn:
        """Send a message in the open conversation (a new one if none)."""
        if not text.strip():
            raise TurnRefused("There is nothing to send.")
        self._check_can_start()
        if self.conversation_id is None:
            if not self.chosen_for_new_chat:
                self.system_prompt, self.sampling = self.defaults()  # defaults may have changed since
            self.conversation_id = self.store.create_conversation(
                model=self.model_ref, model_revision=self.model_revision, system_prompt=self.system_prompt,
                settings=self.sampling.to_dict()).id
            self.listener.conversation_created(self.conversation_id)
        last = self.store.active_path(self.conversation_id, last=1)
        # After a message that was never answered, the new one goes beside it, so neither is lost.
        parent, branch = (last[-1].parent_id, True) if last and last[-1].role == "user" else (None, False)
        user = self.store.add_user_message(self.conversation_id, text, parent_id=parent, branch=branch)
        return self._start(self._begin_answer(user.id, user))

    def pending_question(self) -> Message | None:
        """The open conversation's last message, when it is a user message never answered."""
        if self.conversation_id is None:
            return None
        last = self.store.active_path(self.conversation_id, last=1)
        return last[-1] if last and last[-1].role == "user" else None

    def retry(self, user_message_id: str | None = None) -> Turn:
        """Answer a message whose answer never began (default: the open conversation's last)."""
        self._check_can_start()
        if user_message_id is None:
            pending = self.pending_question()
            if pending is None:
                raise TurnRefused("There is no unanswered message to answer.")
            user_message_id = pending.id
        return self._start(self._begin_answer(user_message_id))

    def regenerate(self, answer_id: str | None = None) -> Turn:
        """A new version of an answer (default: the last one) beside the old one (a branch)."""
        self._check_can_start()
        answer = self._answer(answer_id)
        return self._start(self._begin_answer(answer.parent_id))

    def edit(self, user_message_id: str, new_text: str) -> Turn:
        """A new version of a user message (a branch), answered afresh."""
        if not new_text.strip():
            raise TurnRefused("An edited message cannot be empty.")
        self._check_can_start()
        original = self.store.message(user_message_id)
        edited = self.store.add_user_message(original.conversation_id, new_text, parent_id=original.parent_id,
                                             branch=True)
        return self._start(self._begin_answer(edited.id, edited))

    def continue_answer(self, answer_id: str | None = None) -> Turn:
        """Go on with an answer (default: the last one) that was stopped, cut short or interrupted."""
        self._check_can_start()
        answer = self._answer(answer_id)
        path = self.store.active_path(self.conversation_id)
        if path[-1].id != answer.id:
            self.store.select_branch(answer.id)
        return self._start(start_continuation(self.store, self.conversation_id))

    def switch_branch(self, message_id: str, step: int) -> str | None:
        """Show the previous (-1) or next (+1) version of a message; the one now shown, or None.
        Not while the open conversation is being answered: its path is being written."""
        if self.answering_here:
            return None
        siblings = self.store.siblings(message_id)
        index = siblings.index(message_id) + step
        if not 0 <= index < len(siblings):
            return None
        self.store.select_branch(siblings[index])
        return siblings[index]

    def _answer(self, answer_id: str | None) -> Message:
        if answer_id is not None:
            return self.store.message(answer_id)
        path = self.store.active_path(self.conversation_id, last=1) if self.conversation_id else []
        if not path or path[-1].role != "assistant":
            raise TurnRefused("There is no answer to regenerate or continue yet.")
        return path[-1]

    def _check_can_start(self) -> None:
        if self.turn is not None:
            here = self.answering_here
            where = "here" if here else f"in “{self.title(self.turn.conversation_id)}”"
            raise Busy(f"Still answering {where}: one answer is written at a time.", here=here,
                       conversation_id=self.turn.conversation_id)
        if not self.model_ref:
            raise NoModel("No model is loaded.")

    def _begin_answer(self, user_message_id: str, user: Message | None = None) -> RecordedTurn:
        answer = self.store.begin_answer(self.conversation_id, user_message_id, model=self.model_ref,
                                         model_revision=self.model_revision, settings=self.sampling.to_dict(),
                                         seed=self.sampling.seed)
        messages = engine_messages(self.store, self.store.conversation(self.conversation_id))[:-1]
        return RecordedTurn(user, answer, AnswerWriter(self.store, answer.id), messages)

    def _start(self, recorded: RecordedTurn) -> Turn:
        request = GenerationRequest(recorded.messages, self.sampling, self.conversation_id,
                                    continue_answer=recorded.continuing, draft=self.draft)
        self.turn = Turn(self.link.generate(request), self.conversation_id, recorded)
        self.listener.turn_started(self.turn)
        return self.turn

    # --- stopping ---

    def stop(self) -> bool:
        """Stop the answer being written in the open conversation; False if there is none."""
        if not self.answering_here:
            return False
        self.link.cancel(self.turn.request_id)
        return True

    def stop_any(self) -> None:
        """Stop the answer being written, wherever it is (the model changes or goes)."""
        if self.turn is not None:
            self.link.cancel(self.turn.request_id)

    def save_partial_for_quit(self) -> None:
        """At quit mid-answer: save what streamed so far as a stopped answer, at once."""
        if self.turn is None:
            return
        try:
            self.turn.recorded.writer.finish(finish_reason="cancelled")
        except HistoryError:
            pass
        self.turn = None

    # --- engine events, handed in on the front end's thread ---

    def on_event(self, event: Event) -> None:
        turn = self.turn
        if turn is None or event.request_id != turn.request_id:
            return
        if isinstance(event, TextChunk):
            turn.recorded.writer.append(event.text)
            turn.chunks += 1
            self.listener.text_streamed(turn, event.text)
        elif isinstance(event, PromptReady):
            turn.prompt_tokens, turn.context_length = event.prompt_tokens, event.context_length
            turn.dropped = list(event.dropped_messages)
            self.listener.prompt_ready(turn)
        elif isinstance(event, PromptProgress):
            self.listener.prompt_progress(turn, event.processed, event.total)
        elif isinstance(event, Finished):
            self.turn = None
            self.listener.turn_finished(self._close(turn, event))

    def _close(self, turn: Turn, result: Finished) -> Outcome:
        """Save the answer with the engine's figures. One that never began is removed and the
        user's message stays, unanswered."""
        recorded = turn.recorded
        try:
            if result.text or result.finish_reason not in ("cancelled", "error") or recorded.continuing:
                finish_turn(self.store, recorded, result)
                return Outcome(turn, result, True, recorded.writer.forked_from)
            self.store.delete_message(recorded.answer.id)
        except HistoryError:
            pass  # the conversation was deleted meanwhile
        return Outcome(turn, result, False)
