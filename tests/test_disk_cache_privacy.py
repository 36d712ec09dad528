"""A deleted conversation leaves no saved KV cache on disk: after a restart, with no model loaded,
from another process (`hearth history delete`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine import disk_cache
from engine.engine import Engine
from engine.generation import GenerationRequest
from engine.sampling import SamplingSettings

REPO = Path(__file__).resolve().parents[1]
GREEDY = SamplingSettings(temperature=0.0, max_tokens=6)
SECRET = "My bank PIN is 4821 and my password is marmalade-hedgehog."


def _chat(text: str, *more: str) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": text}]
    for follow in more:
        messages += [{"role": "assistant", "content": "Noted."}, {"role": "user", "content": follow}]
    return messages


def _ask(engine: Engine, messages, conversation: str):
    result = engine.generate(GenerationRequest(messages, GREEDY, conversation)).wait()
    assert result.finish_reason in ("stop", "length"), result.error
    return result


def _saved() -> dict[str, list[int]]:
    """Each saved file's conversation label -> the token ids it holds."""
    out = {}
    for path in disk_cache.folder().glob("*.safetensors"):
        metadata = disk_cache._read_metadata(path)
        out[metadata["0.conversation"]] = json.loads(metadata["0.token_ids"])
    return out


def _holds(ids: list[int], part: list[int]) -> bool:
    return any(ids[i:i + len(part)] == part for i in range(len(ids) - len(part) + 1))


def _secret_ids(model: Path) -> list[int]:
    from engine.model_folder import resolve_model
    from engine.tokenizer import load_tokenizer

    return load_tokenizer(resolve_model(model)).encode_plain(SECRET)[2:-2]  # inside the sentence


def test_deleting_a_chat_after_a_restart_deletes_its_saved_cache_with_no_model_loaded(llama2_chat):
    with Engine(prefill_step_size=64) as first:
        first.load(llama2_chat).wait()
        _ask(first, _chat(SECRET, "What was my PIN?"), "A")
        _ask(first, _chat("Tell me about sourdough starters."), "B")
    saved = _saved()  # both saved on the way out, each labelled with its conversation
    assert set(saved) == {"A", "B"}
    secret = _secret_ids(llama2_chat)
    assert _holds(saved["A"], secret)

    with Engine() as restarted:  # a fresh process: nothing in memory, no model loaded
        assert restarted.forget("A").wait().finish_reason == "done"
    after = _saved()
    assert set(after) == {"B"}
    assert not any(_holds(ids, secret) for ids in after.values())


def test_a_chat_sharing_its_start_with_a_deleted_one_keeps_its_cache(llama2_chat):
    """B began as a copy of A (same first message). Deleting A keeps B's file, though it holds the
    shared start: every token in it is B's too, and B still exists."""
    with Engine(prefill_step_size=64) as engine:
        engine.load(llama2_chat).wait()
        _ask(engine, _chat(SECRET, "What was my PIN?"), "A")
        _ask(engine, _chat(SECRET, "Spell my password."), "B")
        engine.leave("A").wait()
        engine.leave("B").wait()
        assert set(_saved()) == {"A", "B"}
        engine.forget("A").wait()
        assert set(_saved()) == {"B"}
        # A's own words after the shared start are in no file left.
        tail = engine.loaded.tokenizer.encode_plain("What was my PIN?")[1:]
    assert not any(_holds(ids, tail) for ids in _saved().values())


def test_a_file_whose_conversation_cannot_be_told_is_deleted_with_any_chat(llama2_chat):
    with Engine(prefill_step_size=64) as engine:
        engine.load(llama2_chat).wait()
        _ask(engine, _chat("Tell me about sourdough starters."), "B")
        engine.leave("B").wait()
        (path,) = disk_cache.folder().glob("*.safetensors")
        # An older Hearth's file: no conversation in its label (as format 1 wrote them).
        data = path.read_bytes()
        old = path.with_name("0123456789abcdef-0123456789abcdef.safetensors")
        old.write_bytes(data.replace(b'"0.conversation":"B"', b'"0.xonversation":"B"', 1))
        assert len(list(disk_cache.folder().glob("*.safetensors"))) == 2
        engine.forget("some other chat").wait()
    assert [p.name for p in disk_cache.folder().glob("*.safetensors")] == [path.name]


def test_hearth_history_delete_deletes_the_chats_saved_cache(llama2_chat, hearth_home):
    """The terminal deletes a chat the app answered: no engine runs in that process."""
    from engine.history import HistoryStore

    with HistoryStore() as store:
        conversation = store.create_conversation(model=str(llama2_chat)).id
    with Engine(prefill_step_size=64) as app:
        app.load(llama2_chat).wait()
        _ask(app, _chat(SECRET), conversation)
        _ask(app, _chat("Tell me about sourdough starters."), "other")
    assert set(_saved()) == {conversation, "other"}
    env = {**os.environ, "HEARTH_HOME": str(hearth_home)}
    deleted = subprocess.run([sys.executable, "-m", "app.cli", "history", "delete", conversation],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert deleted.returncode == 0, deleted.stderr
    assert set(_saved()) == {"other"}


def test_a_process_still_holding_a_deleted_chat_never_saves_it_again(llama2_chat, hearth_home):
    """The terminal has chat A open while the app deletes it: leaving A or quitting saves nothing
    of it; its other chats are saved as before."""
    with Engine(prefill_step_size=64) as terminal:
        terminal.load(llama2_chat).wait()
        _ask(terminal, _chat(SECRET), "A")
        assert _saved() == {}  # in memory only so far
        app = subprocess.run(  # another process: no engine, no model
            [sys.executable, "-c", "from engine import disk_cache; "
             "print(disk_cache.forget_conversation('A', deleted=True))"],
            env={**os.environ, "HEARTH_HOME": str(hearth_home)}, cwd=REPO, capture_output=True,
            text=True, timeout=120)
        assert app.returncode == 0, app.stderr
        terminal.leave("A").wait()
        assert _saved() == {}
        _ask(terminal, _chat("Tell me about sourdough starters."), "B")
    assert set(_saved()) == {"B"}  # saved at shut-down; A, still in memory, was not


def test_a_chat_whose_cache_was_only_stale_saves_again(llama2_chat):
    """forget without deleted (a system prompt changed, /reset): the chat goes on and is saved again."""
    with Engine(prefill_step_size=64) as engine:
        engine.load(llama2_chat).wait()
        _ask(engine, _chat(SECRET), "A")
        engine.leave("A").wait()
        engine.forget("A").wait()
        assert _saved() == {}
        _ask(engine, _chat("A new start."), "A")
        engine.leave("A").wait()
    assert set(_saved()) == {"A"}
