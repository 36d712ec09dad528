"""The Qt-free chat session that the app and the terminal share: a turn from send to finish, with
the real engine and a real (tiny) Llama 2 style model, and the history on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.terminal import EngineLink, Printer
from engine.chat_session import Busy, ChatSession, NoModel, Outcome, TurnRefused
from engine.events import TextChunk
from engine.history import HistoryStore
from engine.sampling import SamplingSettings

GREEDY = SamplingSettings(temperature=0.0, max_tokens=6)


class Recorder(Printer):
    """The terminal's listener, kept quiet, with every streamed chunk remembered."""

    def __init__(self) -> None:
        super().__init__(None)
        self.streamed: list[str] = []

    def text_streamed(self, turn, text: str) -> None:
        self.streamed.append(text)


@pytest.fixture
def store(tmp_path):
    with HistoryStore(tmp_path / "history.sqlite3") as history:
        yield history


@pytest.fixture
def session(store, engine_llama2, llama2_chat):
    chat = ChatSession(store, EngineLink(engine_llama2), lambda: ("Be brief.", GREEDY), Recorder())
    chat.model_ref = str(llama2_chat)
    return chat


def run(session: ChatSession, start) -> Outcome:
    """Start a turn and hand the engine's events to the session until it ends."""
    turn = start()
    for event in session.link.handle.events():
        session.on_event(event)
    assert session.turn is None and session.listener.outcome.turn is turn
    return session.listener.outcome


def stopped_at_once(session: ChatSession, start) -> Outcome:
    """A turn stopped before its first token (the user pressed Stop at once)."""
    start()
    assert session.stop()
    for event in session.link.handle.events():
        assert not isinstance(event, TextChunk)
        session.on_event(event)
    return session.listener.outcome


def test_a_sent_message_and_its_answer_are_saved_with_the_engines_figures(session, store):
    outcome = run(session, lambda: session.send("Tell me about llamas"))
    assert outcome.answered and outcome.result.finish_reason == "length"
    conversation = store.conversation(session.conversation_id)
    user, answer = store.active_path(conversation.id)
    assert conversation.system_prompt == "Be brief." and conversation.title == "Tell me about llamas"
    assert user.content == "Tell me about llamas"
    assert answer.content == outcome.result.text == "".join(session.listener.streamed)
    assert answer.status == "complete" and answer.generation_tokens == 6
    assert answer.settings["temperature"] == 0.0 and answer.model == session.model_ref


def test_stopped_before_the_first_token_the_message_stays_and_retry_answers_it(session, store):
    outcome = stopped_at_once(session, lambda: session.send("Please keep this"))
    assert not outcome.answered and outcome.result.finish_reason == "cancelled"
    [user] = store.active_path(session.conversation_id)
    assert user.content == "Please keep this" and session.pending_question().id == user.id
    answered = run(session, session.retry)
    assert answered.answered
    user_again, answer = store.active_path(session.conversation_id)
    assert user_again.id == user.id and answer.content


def test_a_new_message_after_an_unanswered_one_goes_beside_it(session, store):
    stopped_at_once(session, lambda: session.send("First try"))
    [first] = store.active_path(session.conversation_id)
    run(session, lambda: session.send("Second try"))
    second, _answer = store.active_path(session.conversation_id)
    assert store.siblings(second.id) == [first.id, second.id]  # both kept


def test_a_message_too_big_for_the_context_fails_and_stays(session, store):
    huge = "words upon words " * 3000
    outcome = run(session, lambda: session.send(huge))
    assert outcome.failed and not outcome.answered and "does not fit" in outcome.result.error
    [user] = store.active_path(session.conversation_id)
    assert user.content == huge


def test_refusals_say_why_and_record_nothing(session, store, llama2_chat):
    session.model_ref = None
    with pytest.raises(NoModel):
        session.send("Hello")
    assert session.conversation_id is None and store.list_conversations() == []
    with pytest.raises(TurnRefused, match="nothing to send"):
        session.send("   ")
    session.model_ref = str(llama2_chat)
    session.send("One at a time")
    with pytest.raises(Busy) as busy:
        session.send("Another")
    assert busy.value.here and "Still answering here" in str(busy.value)
    session.open(None)  # another chat is opened: the answer goes on in its own
    with pytest.raises(Busy, match="Still answering in “One at a time”") as elsewhere:
        session.send("Meanwhile")
    assert not elsewhere.value.here
    for event in session.link.handle.events():
        session.on_event(event)
    [conversation] = store.list_conversations()
    assert [m.content for m in store.active_path(conversation.id)][0] == "One at a time"
    assert session.listener.outcome.answered


def test_regenerate_edit_continue_and_branches(session, store):
    run(session, lambda: session.send("Tell me a story"))
    user, first = store.active_path(session.conversation_id)
    regenerated = run(session, session.regenerate)
    assert store.siblings(first.id) == [first.id, regenerated.turn.answer_id]
    assert session.switch_branch(regenerated.turn.answer_id, -1) == first.id
    assert store.active_path(session.conversation_id)[-1].id == first.id
    assert session.switch_branch(first.id, -1) is None  # there is no earlier version

    continued = run(session, lambda: session.continue_answer(first.id))
    answer = store.message(first.id)
    assert continued.turn.answer_id == first.id and answer.content.startswith(first.content.rstrip())
    assert len(answer.content) > len(first.content.rstrip())

    edited = run(session, lambda: session.edit(user.id, "Tell me a poem"))
    edited_user, _answer = store.active_path(session.conversation_id)
    assert edited_user.content == "Tell me a poem" and store.siblings(user.id) == [user.id, edited_user.id]
    assert edited.answered
    with pytest.raises(TurnRefused):
        session.edit(user.id, "  ")


def test_deleting_a_conversation_stops_its_answer_and_releases_its_cache(session, store, engine_llama2):
    run(session, lambda: session.send("Remember this"))
    conversation_id = session.conversation_id
    assert conversation_id in engine_llama2.caches.keys()
    session.send("And this")
    store.delete_conversation(conversation_id)
    session.conversation_deleted(conversation_id)
    for event in session.link.handle.events():
        session.on_event(event)
    assert session.listener.outcome.result.finish_reason in ("cancelled", "length")
    assert session.conversation_id is None
    engine_llama2.run(lambda loaded: None).result(timeout=60)  # the forget request has been served
    assert conversation_id not in engine_llama2.caches.keys()


def test_a_changed_system_prompt_releases_the_old_cache_and_is_saved(session, store, engine_llama2):
    run(session, lambda: session.send("Hello"))
    conversation_id = session.conversation_id
    session.set_system_prompt("Answer in French.")
    engine_llama2.run(lambda loaded: None).result(timeout=60)
    assert conversation_id not in engine_llama2.caches.keys()
    assert store.conversation(conversation_id).system_prompt == "Answer in French."
    session.open(None)
    session.open(conversation_id)
    assert session.system_prompt == "Answer in French." and session.sampling == GREEDY


def test_new_chats_take_the_defaults_until_given_their_own(store, engine_llama2, llama2_chat):
    defaults = {"prompt": "Old default"}
    session = ChatSession(store, EngineLink(engine_llama2), lambda: (defaults["prompt"], GREEDY), Recorder())
    session.model_ref = str(llama2_chat)
    defaults["prompt"] = "New default"
    session.defaults_changed()
    assert session.system_prompt == "New default"
    session.set_system_prompt("Mine")
    defaults["prompt"] = "Newer default"
    session.defaults_changed()
    assert session.system_prompt == "Mine"  # the user's own choice for this chat stays
    run(session, lambda: session.send("Hi"))
    assert store.conversation(session.conversation_id).system_prompt == "Mine"


def test_no_save_chat_writes_no_history_and_no_cache(tmp_path, llama2_chat):
    """`hearth chat --no-save` runs its session on a history in memory: nothing reaches the disk."""
    env = {**os.environ, "HEARTH_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "app.cli", "chat", str(llama2_chat), "--no-save", "--temp", "0",
                             "--max-tokens", "4"], input="Hello there\nTell me more\n/regenerate\n",
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 3  # three answers, one per line
    written = [p.relative_to(tmp_path) for p in Path(tmp_path / "home").rglob("*") if p.is_file()]
    assert not any("history" in str(p) or p.suffix == ".safetensors" for p in written), written
