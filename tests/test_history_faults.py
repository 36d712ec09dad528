"""Faults are not damage: a locked, unreadable, read-only or full history is left where it is, and
the user gets one line saying which; only a damaged file is set aside, with what can be read saved.
Two processes at once (creating the history, writing one answer) never lose text.

Faults are made for real: locks held by a second process, files made unreadable to a process
without root's permission override, read-only mounts and a tmpfs filled to the last byte.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.history import HistoryStore
from engine.history.db import (
    SCHEMA_VERSION,
    HistoryDiskFull,
    HistoryForeign,
    HistoryLocked,
    HistoryReadOnly,
)
from engine.history.recording import start_continuation
from engine.history.writer import AnswerWriter

HEARTH_SCRIPT = Path(sys.executable).with_name("hearth")
HEARTH = [str(HEARTH_SCRIPT)] if HEARTH_SCRIPT.is_file() else [sys.executable, "-m", "app.cli"]
TIMEOUT_S = 120
ROOT = Path(__file__).resolve().parents[1]


# --- helpers ---

def _history(home: Path) -> Path:
    return home / "data" / "history.sqlite3"


def _fill(path: Path, conversations: int = 3, messages: int = 4) -> dict[str, list[str]]:
    """A history with some conversations; conversation id -> its messages' texts."""
    saved: dict[str, list[str]] = {}
    with HistoryStore(path) as store:
        for c in range(conversations):
            conv = store.create_conversation(title=f"Conversation {c}")
            parent = None
            for m in range(messages):
                text = f"conversation {c} message {m} " + "words " * 40
                message = (store.add_user_message(conv.id, text) if m % 2 == 0
                           else store.add_answer(conv.id, parent, text))
                parent = message.id
            saved[conv.id] = [m.content for m in store.active_path(conv.id)]
    return saved


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _conversation_count(path: Path) -> int:
    with HistoryStore(path) as store:
        return store.count_conversations()


def hearth(home: Path, *args: str, prefix: tuple[str, ...] = (), stdin: str | None = None,
           ) -> subprocess.CompletedProcess:
    env = dict(os.environ, HEARTH_HOME=str(home))
    return subprocess.run([*prefix, *HEARTH, *args], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT_S, input=stdin, cwd=ROOT)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hearth: error: "), result.stderr
    return lines[0]


def _without_permission_override() -> tuple[str, ...]:
    """A command prefix that runs a process which file permissions apply to (root's ignore them)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv, so no process here is refused an unreadable file")
    caps = "-dac_override,-dac_read_search,-fowner"
    return (setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}")


@contextlib.contextmanager
def _mounted(target: Path, *options: str):
    """`mount OPTIONS TARGET` for the block; skipped where mounting is not permitted."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("this fault is made with a Linux mount, which needs root; not available here")
    result = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"mounting is not permitted here: {result.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


@contextlib.contextmanager
def _read_only_copy(source: Path, target: Path):
    """source's files seen through a read-only bind mount at target."""
    target.mkdir()
    with _mounted(target, "--bind", str(source)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        yield target


def _fill_disk(folder: Path) -> Path:
    """Fill the file system holding folder to the last byte; the file that did it."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    assert os.statvfs(folder).f_bavail == 0
    return filler


class _LockHolder:
    """A second process holding the history until told to let go: with an exclusive lock (nobody
    else may even read), or with an open write transaction (nobody else may write)."""

    SCRIPT = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE presets SET name = name")
print("holding", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
conn.close()
"""

    def __init__(self, path: Path, how: str = "exclusive") -> None:
        self.process = subprocess.Popen([sys.executable, "-c", self.SCRIPT, str(path), how], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout.readline() == "holding\n"

    def release(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
            assert self.process.wait(TIMEOUT_S) == 0


# --- locked and busy ---

def test_a_locked_history_is_waited_for_and_then_opened(hearth_home):
    path = _history(hearth_home)
    saved = _fill(path)
    holder = _LockHolder(path)
    env = dict(os.environ, HEARTH_HOME=str(hearth_home))
    child = subprocess.Popen([*HEARTH, "history", "list"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        waiting = child.stderr.readline()
        assert waiting.startswith("hearth: waiting for another Hearth window/process")
    finally:
        holder.release()
    out, err = child.communicate(timeout=TIMEOUT_S)
    assert child.returncode == 0, err
    assert err == "" and len(out.splitlines()) == len(saved)
    assert [p.name for p in path.parent.glob("*corrupt*")] == []


def test_a_history_locked_too_long_is_left_alone_with_a_clear_error(hearth_home):
    path = _history(hearth_home)
    saved = _fill(path)
    holder = _LockHolder(path)
    told: list[str] = []
    try:
        before = _files(path.parent)
        with pytest.raises(HistoryLocked, match="locked by another program") as error:
            HistoryStore(path, on_wait=told.append, lock_wait_s=0.3)
        assert _files(path.parent) == before
    finally:
        holder.release()
    assert len(told) == 1 and "waiting for another Hearth window/process" in told[0]
    assert str(path) in str(error.value) and "has not been changed" in str(error.value)
    assert _conversation_count(path) == len(saved)


def test_a_write_while_another_process_holds_the_lock_names_the_fault(hearth_home):
    path = _history(hearth_home)
    _fill(path)
    with HistoryStore(path) as store:
        store._conn.execute("PRAGMA busy_timeout = 100")  # not the usual 10 s, for the test's sake
        holder = _LockHolder(path, "write")
        try:
            with pytest.raises(HistoryLocked, match="in use by another Hearth window or process"):
                store.create_conversation(title="while locked")
        finally:
            holder.release()
        store.create_conversation(title="after")  # the same store works once the lock is gone


# --- unreadable, read-only, full ---

def test_an_unreadable_history_is_named_and_kept(hearth_home):
    prefix = _without_permission_override()
    path = _history(hearth_home)
    saved = _fill(path)
    before = _files(path.parent)
    path.chmod(0)
    try:
        line = _one_line_error(hearth(hearth_home, "history", "list", prefix=prefix))
    finally:
        path.chmod(0o644)
    assert f"history file {path} (permission denied)" in line and "left as it is" in line
    assert _files(path.parent) == before
    assert _conversation_count(path) == len(saved)


def test_an_unreadable_shared_memory_file_is_named_and_the_history_kept(hearth_home):
    prefix = _without_permission_override()
    path = _history(hearth_home)
    saved = _fill(path)
    shm = Path(f"{path}-shm")
    with HistoryStore(path) as store:  # an open history has its -wal and -shm files
        assert shm.exists()
        shm.chmod(0)
        try:
            line = _one_line_error(hearth(hearth_home, "history", "list", prefix=prefix))
        finally:
            shm.chmod(0o644)
        assert f"history file {shm} (permission denied)" in line
        assert store.count_conversations() == len(saved)
    assert [p.name for p in path.parent.glob("*corrupt*")] == []
    assert _conversation_count(path) == len(saved)


def test_a_read_only_home_on_first_run_is_one_line(tmp_path):
    prefix = _without_permission_override()
    home = tmp_path / "read-only-home"
    home.mkdir()
    home.chmod(0o555)
    try:
        line = _one_line_error(hearth(home, "history", "list", prefix=prefix))
    finally:
        home.chmod(0o755)
    assert f"cannot create its history folder {home / 'data'}" in line
    assert list(home.iterdir()) == []


def test_a_read_only_home_is_one_line_for_other_commands_too(tmp_path):
    """Even an unexpected failure there says one line: there is no log folder to point to."""
    prefix = _without_permission_override()
    home = tmp_path / "read-only-home"
    home.mkdir()
    home.chmod(0o555)
    try:
        result = hearth(home, "models", prefix=prefix)
    finally:
        home.chmod(0o755)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Permission denied" in result.stderr


def test_a_read_only_mounted_home_on_first_run_is_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with _read_only_copy(empty, tmp_path / "home") as home:
        line = _one_line_error(hearth(home, "history", "list"))
    assert f"cannot create its history folder {home / 'data'}: Read-only file system" in line


def test_a_history_on_a_read_only_mount_is_left_as_it_is(tmp_path, hearth_home):
    saved = _fill(_history(hearth_home))
    before = _files(hearth_home / "data")
    with _read_only_copy(hearth_home, tmp_path / "mounted") as home:
        line = _one_line_error(hearth(home, "history", "list"))
        with pytest.raises(HistoryReadOnly):
            HistoryStore(_history(home))
    assert "is on a read-only disk" in line and "left as it is" in line
    assert _files(hearth_home / "data") == before
    assert _conversation_count(_history(hearth_home)) == len(saved)


def test_a_full_disk_on_opening_is_named_and_the_history_kept(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    with _mounted(disk, "-t", "tmpfs", "-o", "size=1M", "tmpfs"):
        path = _history(disk)
        saved = _fill(path)
        filler = _fill_disk(disk)
        before = _files(path.parent)
        line = _one_line_error(hearth(disk, "history", "list"))
        assert f"The disk holding the history ({path.parent}) is full" in line
        assert "What the history holds is kept as it is" in line
        after = _files(path.parent)  # SQLite may have made empty -wal/-shm files; the rest is as it was
        assert after[path.name] == before[path.name] and set(after) <= {*before, f"{path.name}-wal",
                                                                         f"{path.name}-shm"}
        filler.unlink()
        listing = hearth(disk, "history", "list")
        assert listing.returncode == 0 and listing.stderr == ""
        assert len(listing.stdout.splitlines()) == len(saved)


def test_a_full_disk_while_saving_is_named_and_nothing_saved_is_lost(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    with _mounted(disk, "-t", "tmpfs", "-o", "size=1M", "tmpfs"):
        path = _history(disk)
        saved = _fill(path)
        with HistoryStore(path) as store:
            conv = store.create_conversation(title="being written")
            filler = _fill_disk(disk)
            with pytest.raises(HistoryDiskFull, match="is full"):
                for i in range(200):  # the write-ahead log grows until the disk refuses
                    store.add_user_message(conv.id, f"message {i} " + "x" * 4000)
            filler.unlink()
            store.add_user_message(conv.id, "after space was freed")
        with HistoryStore(path) as store:
            assert store.count_conversations() == len(saved) + 1
            for conversation_id, texts in saved.items():
                assert [m.content for m in store.active_path(conversation_id)] == texts


# --- not Hearth's, and damaged ---

def test_a_foreign_sqlite_database_is_refused_and_untouched(hearth_home):
    path = _history(hearth_home)
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('mine')")
    conn.commit()
    conn.close()
    before = _files(path.parent)
    with pytest.raises(HistoryForeign, match="not a Hearth history"):
        HistoryStore(path)
    line = _one_line_error(hearth(hearth_home, "history", "list"))
    assert "is an SQLite database but not a Hearth history (its tables: notes)" in line
    assert _files(path.parent) == before


def test_a_foreign_database_that_sets_a_version_is_refused_too(hearth_home):
    path = _history(hearth_home)
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE settings (key TEXT, value TEXT)")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    before = _files(path.parent)
    with pytest.raises(HistoryForeign):
        HistoryStore(path)
    assert _files(path.parent) == before


def _damage_one_page(path: Path, inside: bytes) -> bytes:
    """Overwrite the page holding `inside` (a message's text) with junk; the damaged file's bytes."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")  # everything in the main file
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    start = data.index(inside) // page_size * page_size
    data[start:start + page_size] = b"\xa5" * page_size
    path.write_bytes(bytes(data))
    return bytes(data)


def _damaged(path: Path) -> bool:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA quick_check").fetchone()[0] != "ok"
    except sqlite3.DatabaseError:
        return True
    finally:
        conn.close()


def test_a_damaged_history_is_kept_and_what_can_be_read_is_recovered(hearth_home):
    path = _history(hearth_home)
    saved = _fill(path, conversations=6, messages=30)
    with HistoryStore(path) as store:
        store.save_preset("Pirate", "Answer like a pirate.", make_default=True)
    total = sum(len(texts) for texts in saved.values())
    data = _damage_one_page(path, b"conversation 3 message 15 ")
    assert _damaged(path)
    result = hearth(hearth_home, "history", "list")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    [warning] = result.stderr.strip().splitlines()
    kept = next(path.parent.glob("history.corrupt-*.sqlite3"))
    assert kept.read_bytes() == data  # kept aside, byte for byte
    with HistoryStore(path) as store:
        recovered = {c.id: [m.content for m in store.active_path(c.id)]
                     for c in store.list_conversations()}
        messages = sum(store.message_count(c) for c in recovered)
        assert store.recovery is None  # the new history is whole
        assert store.default_preset().system_prompt == "Answer like a pirate."
        hit = store.search("conversation 5 message 29")[0]  # recovered text is searchable
        assert store.message(hit.message_id).content.startswith("conversation 5 message 29 ")
    assert set(recovered) == set(saved)  # every conversation is still there
    assert total - 30 < messages < total  # one page of messages lost, no more
    for conversation_id, texts in recovered.items():
        assert set(texts) <= set(saved[conversation_id])
    assert (f"the history database was damaged; it was kept at {kept}, and what could still be read "
            f"({len(saved)} conversation(s), {messages} message(s)) was copied into a new one.") in warning
    assert warning.startswith("hearth: warning: ")
    assert len(result.stdout.splitlines()) == len(saved)


def test_garbage_instead_of_a_history_is_set_aside_and_a_new_one_started(hearth_home):
    path = _history(hearth_home)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database " * 500)
    with HistoryStore(path) as store:
        assert store.recovery.conversations == 0 and store.recovery.messages == 0
        assert store.recovered_from.read_bytes() == b"not a database " * 500
        assert store.count_conversations() == 0


# --- two processes at once ---

_OPEN_ON_CUE = """
import sys
from pathlib import Path
from engine.history import HistoryStore
sys.stdin.readline()
with HistoryStore(Path(sys.argv[1])) as store:
    store.create_conversation(title=sys.argv[2])
"""


def test_two_processes_creating_the_history_at_once_both_succeed(tmp_path):
    failures = []
    for attempt in range(15):
        path = tmp_path / f"attempt-{attempt}" / "history.sqlite3"
        children = [subprocess.Popen([sys.executable, "-c", _OPEN_ON_CUE, str(path), f"p{i}"],
                                     stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                    for i in range(2)]
        for child in children:  # both are started and waiting: let them go together
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            _, err = child.communicate(timeout=TIMEOUT_S)
            if child.returncode != 0:
                failures.append(err.strip().splitlines()[-1])
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM presets").fetchone()[0] == 3  # built once
        conn.close()
    assert failures == []


def _streaming_answer(store: HistoryStore, text: str = "The first writer's words") -> tuple[str, AnswerWriter]:
    conv = store.create_conversation()
    user = store.add_user_message(conv.id, "Tell me a long story")
    answer = store.begin_answer(conv.id, user.id)
    writer = AnswerWriter(store, answer.id, interval_s=0.0)
    writer.append(text)
    return conv.id, writer


def test_a_continuation_elsewhere_does_not_lose_the_first_writers_text(tmp_path):
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as first, HistoryStore(path) as second:
        conversation_id, streaming = _streaming_answer(first)
        # The other window continues the answer while the first still streams it.
        turn = start_continuation(second, conversation_id)
        turn.writer.append(" and the second writer's continuation.")
        turn.writer.finish()
        streaming.append(" Then more of the first writer's story.")
        streaming.finish(finish_reason="stop")
        continued = second.message(turn.answer.id)
        assert continued.content == "The first writer's words and the second writer's continuation."
        assert streaming.forked_from == turn.answer.id and streaming.message_id != turn.answer.id
        forked = first.message(streaming.message_id)
        assert forked.content == "The first writer's words Then more of the first writer's story."
        assert forked.status == "complete" and forked.parent_id == continued.parent_id
        assert first.siblings(continued.id) == [continued.id, forked.id]  # two versions, side by side


def test_the_continuation_that_lost_the_race_goes_to_a_new_version(tmp_path):
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as first, HistoryStore(path) as second:
        conversation_id, streaming = _streaming_answer(first)
        turn = start_continuation(second, conversation_id)
        streaming.append(" More from the first writer.")  # saved before the second writes
        streaming.finish(finish_reason="stop")
        turn.writer.append(" The second writer's ending.")
        turn.writer.finish()
        assert first.message(streaming.message_id).content == \
            "The first writer's words More from the first writer."
        assert turn.writer.forked_from == streaming.message_id
        assert second.message(turn.writer.message_id).content == \
            "The first writer's words The second writer's ending."


_CONTINUE = """
import json, sys
from pathlib import Path
from engine.history import HistoryError, HistoryStore
from engine.history.recording import start_continuation
with HistoryStore(Path(sys.argv[1])) as store:
    try:
        start_continuation(store, sys.argv[2])
    except HistoryError as exc:
        print(json.dumps(str(exc)))
"""


def test_continue_in_another_process_while_the_answer_streams_is_refused(tmp_path):
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as store:
        conversation_id, streaming = _streaming_answer(store)
        other = subprocess.run([sys.executable, "-c", _CONTINUE, str(path), conversation_id],
                               capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT)
        assert other.returncode == 0, other.stderr
        message = json.loads(other.stdout)
        assert message.startswith("That answer is still being written by another Hearth window or "
                                  f"process (pid {os.getpid()})")
        streaming.append(" and the rest.")
        streaming.finish(finish_reason="stop")
        answer = store.message(streaming.message_id)
        assert answer.content == "The first writer's words and the rest." and streaming.forked_from is None


# --- failed runs leave nothing behind ---

def test_a_failed_generate_save_leaves_no_conversation(hearth_home, llama2_chat):
    long_question = [{"role": "user", "content": "llama " * 400}]
    result = hearth(hearth_home, "generate", str(llama2_chat), "--messages", "-", "--save",
                    "--context", "64", "--max-tokens", "4", stdin=json.dumps(long_question))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert _conversation_count(_history(hearth_home)) == 0


def test_a_save_refused_for_its_roles_writes_nothing(hearth_home, llama2_chat):
    dialog = [{"role": "assistant", "content": "I speak first"}, {"role": "user", "content": "Hi"}]
    result = hearth(hearth_home, "generate", str(llama2_chat), "--messages", "-", "--save",
                    "--max-tokens", "4", stdin=json.dumps(dialog))
    line = _one_line_error(result)
    assert "Roles must alternate" in line
    assert _conversation_count(_history(hearth_home)) == 0


def test_a_chat_that_says_nothing_leaves_no_empty_conversation(hearth_home, llama2_chat):
    result = hearth(hearth_home, "chat", str(llama2_chat), "--max-tokens", "4", stdin="/reset\n/reset\n")
    assert result.returncode == 0, result.stderr
    assert _conversation_count(_history(hearth_home)) == 0
