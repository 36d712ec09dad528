"""The history database: schema, migrations, damage, branches, durability, search, export/import."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from engine.history import HistoryCorrupt, HistoryError, HistoryStore, HistoryTooNew
from engine.history.db import SCHEMA_VERSION
from engine.history.export import ImportError_, export_json, export_markdown, import_json
from engine.history.schema import DEFAULT_PRESETS
from engine.history.writer import AnswerWriter

DATA = Path(__file__).parent / "data"
V1_CONVERSATION = "c0ffee00000000000000000000000001"


@pytest.fixture
def store(tmp_path):
    with HistoryStore(tmp_path / "history.sqlite3") as s:
        yield s


def _schema(path: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(path)
    try:
        objects: dict[str, set[str]] = {}
        for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"):
            objects.setdefault(kind, set()).add(name)
        return objects
    finally:
        conn.close()


def _columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_schema_built_from_blank_is_whole(tmp_path):
    path = tmp_path / "history.sqlite3"
    HistoryStore(path).close()
    objects = _schema(path)
    assert {"conversations", "messages", "presets", "message_fts", "title_fts"} <= objects["table"]
    assert {"conversations_by_recency", "messages_by_conversation", "messages_by_parent"} <= objects["index"]
    assert objects["trigger"] == {
        "messages_fts_insert", "messages_fts_delete", "messages_fts_update",
        "conversations_fts_insert", "conversations_fts_delete", "conversations_fts_update",
    }
    assert _columns(path, "messages")[:9] == ["seq", "id", "conversation_id", "parent_id", "role",
                                              "content", "status", "created_at", "updated_at"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert {r[0] for r in conn.execute("SELECT name FROM presets")} == {p[0] for p in DEFAULT_PRESETS}


def test_foreign_keys_are_enforced(store):
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as tx:
            tx.execute("INSERT INTO messages (id, conversation_id, role, created_at, updated_at)"
                       " VALUES ('x', 'no-such-conversation', 'user', 0, 0)")


def test_upgrade_from_a_saved_version_1_database(tmp_path):
    path = tmp_path / "history.sqlite3"
    shutil.copy(DATA / "history-v1.sqlite3", path)
    original = path.read_bytes()
    with HistoryStore(path) as store:
        conv = store.conversation(V1_CONVERSATION)
        assert conv.title == "Llamas in the Andes" and conv.system_prompt == "You are a guide."
        assert [m.content for m in store.active_path(conv.id)][-1] == "Grass and hay, mostly."
        hits = store.search("andes mountains")
        assert hits and hits[0].conversation_id == V1_CONVERSATION
        assert store.default_preset() is not None
    backups = list(tmp_path.glob("history.before-v*.sqlite3"))
    assert len(backups) == 1
    conn = sqlite3.connect(backups[0])
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 4
    assert (DATA / "history-v1.sqlite3").read_bytes() == original  # the saved fixture is untouched


def test_database_from_a_newer_hearth_is_refused_and_untouched(tmp_path):
    path = tmp_path / "history.sqlite3"
    HistoryStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(HistoryTooNew, match="newer version of Hearth"):
        HistoryStore(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.sqlite3"]


@pytest.mark.parametrize("damage", ["garbage", "scrambled pages"])
def test_a_corrupt_database_is_kept_aside_and_reported(tmp_path, damage):
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as store:
        conv = store.create_conversation()
        for i in range(200):
            store.add_user_message(conv.id, f"message {i} " + "padding " * 50)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    data = bytearray(path.read_bytes())
    if damage == "garbage":
        data = bytearray(b"this is not a database at all" * 100)
    else:
        for offset in range(8192, len(data) - 4096, 4096):
            data[offset + 100 : offset + 400] = b"\xff" * 300
    path.write_bytes(bytes(data))
    with HistoryStore(path) as store:
        assert store.recovered_from is not None and store.recovered_from.exists()
        assert store.recovered_from.read_bytes() == bytes(data)  # kept, byte for byte
        if damage == "garbage":  # nothing readable: a fresh, empty history
            assert store.list_conversations() == [] and store.recovery.messages == 0
        else:  # what could be read was copied over (tests/test_history_faults.py says how much)
            assert store.recovery.conversations == 1 and 0 < store.recovery.messages < 200
        store.create_conversation()  # and a fresh database works


def test_branches_edit_and_regenerate_switch_the_active_path(store):
    conv = store.create_conversation(system_prompt="sys")
    q1 = store.add_user_message(conv.id, "First question")
    a1 = store.add_answer(conv.id, q1.id, "First answer")
    q2 = store.add_user_message(conv.id, "Second question")
    a2 = store.add_answer(conv.id, q2.id, "Second answer")
    # Regenerate the second answer: a sibling of a2.
    a2b = store.add_answer(conv.id, q2.id, "Second answer, again")
    assert store.siblings(a2b.id) == [a2.id, a2b.id]
    assert [m.id for m in store.active_path(conv.id)] == [q1.id, a1.id, q2.id, a2b.id]
    # Edit the second question: a sibling of q2, and its own answer.
    q2e = store.add_user_message(conv.id, "Second question, edited", parent_id=a1.id)
    a2e = store.add_answer(conv.id, q2e.id, "Answer to the edit")
    assert store.siblings(q2e.id) == [q2.id, q2e.id]
    assert [m.content for m in store.active_path(conv.id)][-2:] == ["Second question, edited", "Answer to the edit"]
    # Revisit the earlier branch: down its newest reply.
    path = store.select_branch(q2.id)
    assert [m.id for m in path] == [q1.id, a1.id, q2.id, a2b.id]
    assert store.conversation(conv.id).active_leaf_id == a2b.id
    store.select_branch(a2.id)
    assert [m.id for m in store.active_path(conv.id)][-1] == a2.id
    # Editing the very first message starts a new root branch.
    q1e = store.add_user_message(conv.id, "First question, edited", branch=True)
    assert q1e.parent_id is None and store.siblings(q1e.id) == [q1.id, q1e.id]
    assert [m.id for m in store.active_path(conv.id)] == [q1e.id]
    assert store.message_count(conv.id) == 8 and a2e.id in {m.id for m in store.select_branch(q2e.id)}


def test_title_is_named_from_the_first_message_and_renamable(store):
    conv = store.create_conversation()
    store.add_user_message(conv.id, "  How do I   bake sourdough bread at home without a starter kit from the shop?\nThanks")
    title = store.conversation(conv.id).title
    assert title.startswith("How do I bake sourdough bread") and len(title) <= 60 and title.endswith("…")
    store.rename(conv.id, "Bread")
    store.add_user_message(conv.id, "another", branch=True)
    assert store.conversation(conv.id).title == "Bread"
    with pytest.raises(HistoryError, match="empty"):
        store.rename(conv.id, "   ")


def test_list_is_pinned_first_then_most_recent(store):
    ids = [store.create_conversation(title=f"c{i}").id for i in range(4)]
    store.add_user_message(ids[1], "touch")  # most recent now
    store.set_pinned(ids[3], True)
    assert [c.id for c in store.list_conversations()] == [ids[3], ids[1], ids[2], ids[0]]
    store.delete_conversation(ids[1])
    assert store.message_count(ids[1]) == 0 and len(store.list_conversations()) == 3
    with pytest.raises(HistoryError):
        store.conversation(ids[1])


def test_answer_writer_checkpoints_at_most_once_per_interval(store):
    conv = store.create_conversation()
    user = store.add_user_message(conv.id, "Tell me a story")
    answer = store.begin_answer(conv.id, user.id, model="m")
    now = [0.0]
    writer = AnswerWriter(store, answer.id, clock=lambda: now[0])
    writes = []
    original = store.checkpoint_answer
    store.checkpoint_answer = lambda mid, text, **kw: (writes.append(text), original(mid, text, **kw))
    for i in range(100):  # 100 tokens over 2.5 s
        now[0] = i * 0.025
        writer.append(f"w{i} ")
    assert len(writes) == 2  # at 1.0 s and 2.0 s, not per token
    assert store.message(answer.id).content == writes[-1] and store.message(answer.id).status == "streaming"
    writer.finish(finish_reason="stop", generation_tokens=100)
    final = store.message(answer.id)
    assert final.status == "complete" and final.content.endswith("w99 ") and final.generation_tokens == 100


HOSTILE = ['"', '""', "'", "AND", "OR NOT", "NEAR(a b", "a*", "*", "^x", "title:foo", "(", ")",
           "-", "\\", "\x00", "😀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "a\u0301", "ʼnŉ", "\ud7ff", "   ", "", "col:", "{a b}",
           "a" * 10000, " OR ".join(["x"] * 500), "SELECT * FROM messages; --", "ﬁ ligature", "İstanbul"]


def test_search_ranks_snippets_and_survives_hostile_input(store):
    conv = store.create_conversation(title="Sourdough notes")
    user = store.add_user_message(conv.id, "How long should sourdough proof?")
    store.add_answer(conv.id, user.id, "Proof sourdough overnight in the fridge. Sourdough likes cold.")
    other = store.create_conversation(title="Cars")
    store.add_user_message(other.id, "Café racer motorcycles and İstanbul traffic")
    hits = store.search("sourdough")
    assert hits[0].message_id is None and hits[0].conversation_id == conv.id  # the title ranks first
    assert any("\x02Sourdough\x03" in h.snippet or "\x02sourdough\x03" in h.snippet for h in hits if h.message_id)
    assert {h.conversation_id for h in store.search("cafe")} == {other.id}  # diacritics folded
    assert store.search("sourd") and store.search("PROOF fridge")
    assert store.search("fridge motorcycles") == []  # all words must match
    for query in HOSTILE:
        assert isinstance(store.search(query), list)


def test_export_then_import_round_trips_exactly(store, tmp_path):
    conv = store.create_conversation(model="org/model", model_revision="abc", system_prompt="Be kind.",
                                     settings={"temperature": 0.2, "stop": ["END"]})
    q = store.add_user_message(conv.id, "Unicode: café 中文 🙂\nnew line")
    a = store.add_answer(conv.id, q.id, "answer", model="org/model", seed=7, finish_reason="stop",
                         generation_tps=31.5, settings={"temperature": 0.2})
    store.add_answer(conv.id, q.id, "regenerated", seed=8)
    store.add_user_message(conv.id, "edit", parent_id=a.id)
    store.set_pinned(conv.id, True)
    second = store.create_conversation(title="Empty one")
    exported = export_json(store)
    with HistoryStore(tmp_path / "other.sqlite3") as target:
        assert import_json(target, json.loads(json.dumps(exported))) == [conv.id, second.id]
        again = export_json(target)
    exported.pop("exported_at"), again.pop("exported_at")
    assert again == exported
    markdown = export_markdown(store, [conv.id])
    assert "# Unicode: café 中文 🙂 new line" in markdown and "> Be kind." in markdown


def test_importing_twice_makes_a_copy_not_a_clash(store):
    conv = store.create_conversation()
    store.add_user_message(conv.id, "hello")
    data = export_json(store)
    new_ids = import_json(store, data)
    assert new_ids != [conv.id] and len(store.list_conversations()) == 2
    assert [m.content for m in store.active_path(new_ids[0])] == ["hello"]


def _valid_export(store) -> dict:
    conv = store.create_conversation()
    q = store.add_user_message(conv.id, "q")
    store.add_answer(conv.id, q.id, "a")
    data = export_json(store)
    store.delete_conversation(conv.id)
    return data


BAD_IMPORTS = {
    "not an export": ([], "not a Hearth history export"),
    "newer version": (lambda d: d.update(version=99), "newer Hearth"),
    "missing messages": (lambda d: d["conversations"][0].pop("messages"), "no 'messages'"),
    "bad role": (lambda d: d["conversations"][0]["messages"][0].update(role="robot"), "role"),
    "orphan parent": (lambda d: d["conversations"][0]["messages"][1].update(parent_id="nope"), "parent"),
    "bad leaf": (lambda d: d["conversations"][0].update(active_leaf_id="nope"), "active_leaf_id"),
    "wrong type": (lambda d: d["conversations"][0].update(created_at="yesterday"), "wrong type"),
    "duplicate message": (lambda d: d["conversations"][0]["messages"].append(d["conversations"][0]["messages"][0]), "twice"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMPORTS))
def test_a_bad_import_changes_nothing_and_says_why(store, case):
    data = _valid_export(store)
    keep = store.create_conversation(title="keep me")
    store.add_user_message(keep.id, "precious")
    before = export_json(store)
    change, fragment = BAD_IMPORTS[case]
    if callable(change):
        change(data)
    else:
        data = change
    with pytest.raises(ImportError_, match=fragment):
        import_json(store, data)
    after = export_json(store)
    before.pop("exported_at"), after.pop("exported_at")
    assert after == before


def test_shared_message_ids_across_conversations_are_refused(store):
    data = _valid_export(store)
    data["conversations"].append(json.loads(json.dumps(data["conversations"][0])))
    data["conversations"][1]["id"] = "another-id"
    with pytest.raises(ImportError_, match="used by another conversation"):
        import_json(store, data)
    assert store.list_conversations() == []


def test_a_failure_midway_through_an_import_rolls_everything_back(store, monkeypatch):
    from engine.history import export

    data = _valid_export(store)
    second = json.loads(json.dumps(data["conversations"][0]))
    second["id"] = "another-id"
    data["conversations"].append(export._with_new_ids(second))
    real_insert = export._insert_conversation
    calls = []

    def insert_then_fail(tx, conv):
        calls.append(conv["id"])
        if len(calls) == 2:
            raise OSError(28, "No space left on device")  # a full disk, after the first went in
        real_insert(tx, conv)

    monkeypatch.setattr(export, "_insert_conversation", insert_then_fail)
    with pytest.raises(OSError):
        import_json(store, data)
    assert len(calls) == 2 and store.list_conversations() == []


def test_a_reader_lists_while_a_writer_streams(tmp_path):
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as writer_store:
        for i in range(20):
            writer_store.create_conversation(title=f"old {i}")
        conv = writer_store.create_conversation(title="streaming")
        user = writer_store.add_user_message(conv.id, "go")
        answer = writer_store.begin_answer(conv.id, user.id)
        stop = threading.Event()
        errors: list[BaseException] = []

        def write():
            writer = AnswerWriter(writer_store, answer.id, interval_s=0.0)
            try:
                for i in range(400):
                    writer.append(f"token{i} ")
                writer.finish()
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                stop.set()

        thread = threading.Thread(target=write)
        with HistoryStore(path) as reader:
            thread.start()
            listings = 0
            while not stop.is_set():
                assert len(reader.list_conversations(limit=50)) == 21
                reader.active_path(conv.id)
                listings += 1
            thread.join()
            assert errors == [] and listings > 0
            assert reader.message(answer.id).content.endswith("token399 ")


def test_store_opened_after_a_crash_marks_streaming_answers_interrupted(tmp_path):
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as store:
        conv = store.create_conversation()
        user = store.add_user_message(conv.id, "hi")
        answer = store.begin_answer(conv.id, user.id)
        store.checkpoint_answer(answer.id, "partial text")
        # Pretend the writer was another process that has since died.
        with store.transaction() as tx:
            tx.execute("UPDATE messages SET writer_pid = 999999999 WHERE id = ?", (answer.id,))
    with HistoryStore(path) as store:
        message = store.message(answer.id)
        assert message.status == "interrupted" and message.content == "partial text"
        assert store.interrupted_on_open == [answer.id]


def test_errors_name_the_missing_thing(store):
    with pytest.raises(HistoryError, match="no conversation"):
        store.add_user_message("nope", "x")
    with pytest.raises(HistoryError, match="not a conversation id"):
        store.resolve_id("zzz")
    with pytest.raises(HistoryCorrupt.__mro__[1]):
        store.message("missing")


def test_path_tail_and_branch_positions(store):
    conv = store.create_conversation()
    parent = None
    for i in range(30):
        message = store.add_user_message(conv.id, f"q{i}", parent_id=parent) if i % 2 == 0 else \
            store.add_answer(conv.id, parent, f"a{i}")
        parent = message.id
    tail, total = store.active_path_tail(conv.id, 5)
    assert total == 30 and [m.content for m in tail] == ["a25", "q26", "a27", "q28", "a29"]
    assert store.active_path_tail(conv.id, None)[0] == store.active_path(conv.id)
    again = store.add_answer(conv.id, tail[-2].id, "a29 again")
    positions = store.branch_positions(store.active_path(conv.id))
    assert positions == {tail[-1].id: (1, 2), again.id: (2, 2)}
