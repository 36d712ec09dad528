"""`hearth history ...` and the terminal chat recording into the same history, as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.history import HistoryStore

HEARTH_SCRIPT = Path(sys.executable).with_name("hearth")
HEARTH = [str(HEARTH_SCRIPT)] if HEARTH_SCRIPT.is_file() else [sys.executable, "-m", "app.cli"]
TIMEOUT_S = 120


@pytest.fixture
def env(tmp_path, hearth_home):
    environment = dict(os.environ, HEARTH_HOME=str(hearth_home), HOME=str(tmp_path / "home"))
    return environment


def hearth(env, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*HEARTH, *args], input=stdin, capture_output=True, text=True, env=env,
                            timeout=TIMEOUT_S)
    if ok:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    return result


def _store(env) -> HistoryStore:
    return HistoryStore(Path(env["HEARTH_HOME"]) / "data" / "history.sqlite3")


def test_chat_is_recorded_and_can_be_continued(env, llama2_chat):
    hearth(env, "chat", str(llama2_chat), "--temp", "0", "--max-tokens", "8", "--system", "Be brief.",
           stdin="First question about llamas\nSecond question\n")
    with _store(env) as store:
        [summary] = store.list_conversations()
        conv = store.conversation(summary.id)
        path = store.active_path(conv.id)
    assert conv.title == "First question about llamas" and conv.system_prompt == "Be brief."
    assert conv.model == str(llama2_chat)
    assert [m.role for m in path] == ["user", "assistant", "user", "assistant"]
    assert path[1].finish_reason == "length" and path[1].generation_tokens == 8 and path[1].seed is not None
    assert path[1].settings["temperature"] == 0.0 and path[1].status == "complete"

    # Continue it: the earlier exchanges are in the prompt (the answer differs from a fresh chat).
    hearth(env, "chat", str(llama2_chat), "--temp", "0", "--max-tokens", "8",
           "--conversation", summary.id[:8], stdin="Third question\n")
    with _store(env) as store:
        path = store.active_path(summary.id)
        assert len(store.list_conversations()) == 1
    assert [m.content for m in path][4] == "Third question" and len(path) == 6
    listing = hearth(env, "history", "list").stdout
    assert summary.id[:8] in listing and "First question about llamas" in listing


def test_generate_save_and_conversation(env, llama2_chat):
    dialog = [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Q1"},
              {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2 about sourdough"}]
    out = hearth(env, "generate", str(llama2_chat), "--messages", "-", "--json", "--save", "--temp", "0",
                 "--max-tokens", "5", stdin=json.dumps(dialog)).stdout
    result = json.loads(out)
    conversation_id = result["conversation_id"]
    with _store(env) as store:
        path = store.active_path(conversation_id)
        assert [m.content for m in path[:-1]] == ["Q1", "A1", "Q2 about sourdough"]
        assert path[-1].content == result["text"] and store.conversation(conversation_id).system_prompt == "Sys"
    more = [{"role": "user", "content": "Q3"}]
    hearth(env, "generate", str(llama2_chat), "--messages", "-", "--conversation", conversation_id,
           "--temp", "0", "--max-tokens", "5", stdin=json.dumps(more))
    with _store(env) as store:
        assert [m.content for m in store.active_path(conversation_id)][4] == "Q3"
    # Not saved without --save.
    hearth(env, "generate", str(llama2_chat), "--messages", "-", "--max-tokens", "3", stdin=json.dumps(more))
    with _store(env) as store:
        assert len(store.list_conversations()) == 1


def test_history_commands(env, tmp_path):
    with _store(env) as store:
        conv = store.create_conversation(system_prompt="Be kind.", model="org/model")
        q = store.add_user_message(conv.id, "How do I bake sourdough?")
        store.add_answer(conv.id, q.id, "Feed the starter, then proof overnight.")
        other = store.create_conversation(title="Other")
    short = conv.id[:8]
    shown = hearth(env, "history", "show", short).stdout
    assert "# How do I bake sourdough?" in shown and "Feed the starter" in shown and "> Be kind." in shown
    found = hearth(env, "history", "search", "proof overnight").stdout
    assert short in found and "«proof»" in found
    assert hearth(env, "history", "search", '"unbalanced AND (').returncode == 0
    hearth(env, "history", "rename", short, "Bread")
    assert "Bread" in hearth(env, "history", "list").stdout
    out_json, out_md = tmp_path / "all.json", tmp_path / "one.md"
    hearth(env, "history", "export", "--format", "json", "-o", str(out_json))
    hearth(env, "history", "export", short, "--format", "md", "-o", str(out_md))
    assert json.loads(out_json.read_text())["format"] == "hearth.history"
    assert out_md.read_text().startswith("# Bread")
    hearth(env, "history", "delete", other.id)
    hearth(env, "history", "delete", short)
    assert hearth(env, "history", "list").stdout == ""
    hearth(env, "history", "import", str(out_json))
    with _store(env) as store:
        assert {c.title for c in store.list_conversations()} == {"Bread", "Other"}


@pytest.mark.parametrize("args, fragment", [
    (["history", "show", "ffffffff"], "no conversation"),
    (["history", "show", "not-hex!"], "not a conversation id"),
    (["history", "rename", "ffff", "x"], "no conversation"),
    (["history", "import", "/no/such/file.json"], "cannot read"),
])
def test_history_mistakes_are_one_line(env, args, fragment):
    result = hearth(env, *args, ok=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("hearth: error:") and fragment in result.stderr


def test_a_bad_import_file_changes_nothing(env, tmp_path):
    with _store(env) as store:
        store.create_conversation(title="Keep")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "hearth.history", "version": 1, "conversations": [{"id": 3}]}))
    result = hearth(env, "history", "import", str(bad), ok=False)
    assert result.returncode == 1 and "Nothing was imported" in result.stderr
    with _store(env) as store:
        assert [c.title for c in store.list_conversations()] == ["Keep"]


def test_killed_mid_answer_loses_at_most_about_a_second(env, llama2_chat):
    """SIGKILL a chat while it streams; the reopened history has the answer, marked interrupted."""
    proc = subprocess.Popen([*HEARTH, "chat", str(llama2_chat), "--temp", "0", "--max-tokens", "100000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    os.set_blocking(proc.stdout.fileno(), False)
    proc.stdin.write(b"Tell me a long story\n")
    proc.stdin.flush()
    received: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + 60
    started = None
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            received.append((time.monotonic(), chunk))
            started = started or time.monotonic()
        if started and time.monotonic() - started > 3.0:
            break
        time.sleep(0.01)
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert started is not None, proc.stderr.read().decode()
    shown = b"".join(c for _, c in received).decode("utf-8", "replace")
    shown_a_while_ago = b"".join(c for t, c in received if t < killed_at - 1.5).decode("utf-8", "replace")
    with _store(env) as store:
        [summary] = store.list_conversations()
        user, answer = store.active_path(summary.id)
    assert user.content == "Tell me a long story"
    assert answer.status == "interrupted" and answer.finish_reason == "interrupted"
    assert shown.startswith(answer.content)  # saved text is what was shown, up to a point
    assert len(answer.content) >= len(shown_a_while_ago) > 0  # everything older than ~1 s is there


def test_regenerate_and_continue_in_the_terminal(env, llama2_chat):
    hearth(env, "chat", str(llama2_chat), "--temp", "1", "--seed", "3", "--max-tokens", "6",
           stdin="Tell me a story\n/regenerate\n/continue\n")
    with _store(env) as store:
        [summary] = store.list_conversations()
        path = store.active_path(summary.id)
        user, answer = path
        versions = store.siblings(answer.id)
        first = store.message(versions[0])
    assert len(versions) == 2 and answer.id == versions[1]  # regenerated beside the first answer
    assert first.content and answer.status == "complete"
    assert answer.generation_tokens == 6  # the continuation's own figures


def test_an_interrupted_answer_can_be_continued(env, llama2_chat):
    with _store(env) as store:
        conv = store.create_conversation()
        user = store.add_user_message(conv.id, "Tell me a story")
        answer = store.begin_answer(conv.id, user.id)
        store.checkpoint_answer(answer.id, "Once upon a time")
        with store.transaction() as tx:  # as if its writer had been killed
            tx.execute("UPDATE messages SET writer_pid = 999999999 WHERE id = ?", (answer.id,))
    result = hearth(env, "chat", str(llama2_chat), "--temp", "0", "--max-tokens", "5",
                    "--conversation", conv.id, stdin="/continue\n")
    assert "interrupted" in result.stderr and result.stdout.startswith("Once upon a time")
    with _store(env) as store:
        message = store.message(answer.id)
    assert message.status == "complete" and message.content.startswith("Once upon a time")
    assert len(message.content) > len("Once upon a time") and message.finish_reason == "length"
