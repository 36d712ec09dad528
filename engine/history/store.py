"""The history store: conversations, messages as a tree, presets, search.

Every logical change runs in one transaction. A streamed answer is a message with status
'streaming', checkpointed by `AnswerWriter` (writer.py) at most once a second; one left behind by a
process that died is marked 'interrupted' when the history is next opened, text kept.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .. import paths
from ..platform import process_alive
from .db import LOCK_WAIT_S, HistoryError, classify, folder_fault, open_database
from .search import to_fts_query

DB_NAME = "history.sqlite3"
TITLE_LENGTH = 60
# A 'streaming' answer whose writer is gone, or silent this long, was interrupted.
STALE_STREAM_S = 120.0

ANSWER_FIELDS = (
    "model", "model_revision", "settings", "seed", "finish_reason", "prompt_tokens",
    "generation_tokens", "ttft_s", "prompt_tps", "generation_tps", "peak_memory_gb", "error",
)


class AnswerChanged(HistoryError):
    """Another writer changed an answer since this writer last saved it: nothing was overwritten."""


class Message(NamedTuple):
    """One message. A named tuple: a 5,000-message conversation opens in a few milliseconds."""

    id: str
    conversation_id: str
    parent_id: str | None
    role: str
    content: str
    status: str
    created_at: float
    updated_at: float
    model: str | None = None
    model_revision: str | None = None
    settings_json: str | None = None
    seed: int | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    generation_tokens: int | None = None
    ttft_s: float | None = None
    prompt_tps: float | None = None
    generation_tps: float | None = None
    peak_memory_gb: float | None = None
    error: str | None = None

    @property
    def settings(self) -> dict[str, Any] | None:
        return json.loads(self.settings_json) if self.settings_json else None


MESSAGE_COLUMNS = ", ".join(
    "settings" if name == "settings_json" else name for name in Message._fields
)


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    updated_at: float
    pinned: bool
    model: str | None


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    title_is_auto: bool
    created_at: float
    updated_at: float
    model: str | None
    model_revision: str | None
    system_prompt: str
    settings: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False
    active_leaf_id: str | None = None


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    title: str
    message_id: str | None  # None when the title matched
    snippet: str
    rank: float


@dataclass(frozen=True)
class Preset:
    id: str
    name: str
    system_prompt: str
    settings: dict[str, Any]
    is_default: bool


def _new_id() -> str:
    return uuid.uuid4().hex


def auto_title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


class HistoryStore:
    """Thread-safe (one connection behind a lock); callers keep it off the GUI thread."""

    def __init__(self, path: Path | None = None, *, on_wait: Callable[[str], None] | None = None,
                 lock_wait_s: float = LOCK_WAIT_S) -> None:
        """Open (creating or migrating) the history; on_wait is told when another process holds
        it and we wait. Raises a HistoryError naming the fault; the file is then left as it was."""
        self.path = path or _default_path()
        self._conn, self.recovery = open_database(self.path, on_wait, lock_wait_s)
        self._lock = threading.RLock()
        try:
            self.interrupted_on_open = self._mark_interrupted()
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def in_memory(cls) -> HistoryStore:
        """A history that lives only in this process (the terminal's --no-save)."""
        return cls(Path(":memory:"))

    @property
    def recovered_from(self) -> Path | None:
        """Where a damaged earlier history was kept, when one was replaced on opening."""
        return self.recovery.kept_at if self.recovery else None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._faults():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:  # SQLite rolls back by itself on some errors
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """SQLite's operational errors (locked, full disk, read-only, I/O) as HistoryErrors."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            # Locked, full disk, read-only, I/O, damage; a broken rule of the schema is a bug.
            if type(exc) not in (sqlite3.OperationalError, sqlite3.DatabaseError):
                raise
            raise classify(exc, self.path) from exc

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock, self._faults():
            return self._conn.execute(sql, params).fetchall()

    # --- conversations ---

    def create_conversation(
        self,
        *,
        model: str | None = None,
        model_revision: str | None = None,
        system_prompt: str = "",
        settings: dict[str, Any] | None = None,
        title: str | None = None,
    ) -> Conversation:
        now = time.time()
        conversation_id = _new_id()
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO conversations (id, title, title_is_auto, created_at, updated_at, model,"
                " model_revision, system_prompt, settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, title or "New chat", int(title is None), now, now, model,
                 model_revision, system_prompt, json.dumps(settings or {})),
            )
        return self.conversation(conversation_id)

    def conversation(self, conversation_id: str) -> Conversation:
        rows = self._query("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        if not rows:
            raise HistoryError(f"There is no conversation {conversation_id}.")
        return _conversation(rows[0])

    def resolve_id(self, prefix: str) -> str:
        """A conversation id from a unique prefix of it (as the terminal shows short ids)."""
        prefix = prefix.strip().lower()
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            raise HistoryError(f"{prefix!r} is not a conversation id.")
        rows = self._query(
            "SELECT id FROM conversations WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")
        )
        if not rows:
            raise HistoryError(f"There is no conversation {prefix}.")
        if len(rows) > 1:
            raise HistoryError(f"{prefix} matches several conversations; give more of the id.")
        return rows[0]["id"]

    def list_conversations(self, limit: int = 50, offset: int = 0) -> list[ConversationSummary]:
        rows = self._query(
            "SELECT id, title, updated_at, pinned, model FROM conversations"
            " ORDER BY pinned DESC, updated_at DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [ConversationSummary(r["id"], r["title"], r["updated_at"], bool(r["pinned"]), r["model"])
                for r in rows]

    def count_conversations(self) -> int:
        return self._query("SELECT count(*) FROM conversations")[0][0]

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise HistoryError("A title cannot be empty.")
        self._update_conversation(conversation_id, title=title, title_is_auto=0)

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        self._update_conversation(conversation_id, pinned=int(pinned), touch=False)

    def set_system_prompt(self, conversation_id: str, system_prompt: str) -> None:
        self._update_conversation(conversation_id, system_prompt=system_prompt)

    def set_settings(self, conversation_id: str, settings: dict[str, Any]) -> None:
        self._update_conversation(conversation_id, settings=json.dumps(settings))

    def set_model(self, conversation_id: str, model: str | None, revision: str | None = None) -> None:
        self._update_conversation(conversation_id, model=model, model_revision=revision)

    def _update_conversation(self, conversation_id: str, touch: bool = True, **values: Any) -> None:
        if touch:
            values["updated_at"] = time.time()
        assignments = ", ".join(f"{column} = ?" for column in values)
        with self.transaction() as tx:
            cursor = tx.execute(
                f"UPDATE conversations SET {assignments} WHERE id = ?", (*values.values(), conversation_id)
            )
            if cursor.rowcount == 0:
                raise HistoryError(f"There is no conversation {conversation_id}.")

    def delete_conversation(self, conversation_id: str) -> None:
        with self.transaction() as tx:
            # Clear the leaf pointer first: the cascade then deletes messages without re-pointing it.
            tx.execute("UPDATE conversations SET active_leaf_id = NULL WHERE id = ?", (conversation_id,))
            tx.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            cursor = tx.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            if cursor.rowcount == 0:
                raise HistoryError(f"There is no conversation {conversation_id}.")

    # --- messages ---

    def add_user_message(self, conversation_id: str, content: str, parent_id: str | None = None,
                         *, branch: bool = False) -> Message:
        """A user turn after parent_id (default: the end of the active path), made the active leaf.

        branch=True with parent_id=None starts a new root branch (an edited first message)."""
        with self.transaction() as tx:
            conv = _conversation(_one(tx, "SELECT * FROM conversations WHERE id = ?", conversation_id))
            parent = parent_id if (parent_id or branch) else conv.active_leaf_id
            message = self._insert_message(tx, conv.id, parent, "user", content, "complete")
            if conv.title_is_auto and parent is None:
                tx.execute("UPDATE conversations SET title = ? WHERE id = ?", (auto_title(content), conv.id))
        return message

    def begin_answer(self, conversation_id: str, parent_id: str, **answer: Any) -> Message:
        """An empty assistant message with status 'streaming', made the active leaf."""
        with self.transaction() as tx:
            return self._insert_message(tx, conversation_id, parent_id, "assistant", "", "streaming",
                                        writer_pid=os.getpid(), **answer)

    def add_answer(self, conversation_id: str, parent_id: str, content: str, **answer: Any) -> Message:
        """A finished assistant message in one go."""
        with self.transaction() as tx:
            return self._insert_message(tx, conversation_id, parent_id, "assistant", content,
                                        "complete", **answer)

    def resume_answer(self, message_id: str) -> Message:
        """Reopen a stopped, cut or interrupted answer so its text can be continued.

        Refused while another live process is still writing it: its text would be overwritten."""
        with self.transaction() as tx:
            row = _one(tx, "SELECT role, conversation_id, status, writer_pid FROM messages WHERE id = ?",
                       message_id)
            if row["role"] != "assistant":
                raise HistoryError("Only an answer can be continued.")
            if row["status"] == "streaming" and _alive(row["writer_pid"]):
                raise HistoryError(
                    f"That answer is still being written by another Hearth window or process (pid "
                    f"{row['writer_pid']}); let it finish, or stop it there, then continue it.")
            tx.execute("UPDATE messages SET status = 'streaming', writer_pid = ?, updated_at = ?,"
                       " finish_reason = NULL WHERE id = ?", (os.getpid(), time.time(), message_id))
            tx.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                       (message_id, row["conversation_id"]))
        return self.message(message_id)

    def checkpoint_answer(self, message_id: str, content: str, expected: str | None = None) -> None:
        """Save an answer's text so far. With expected (the text this writer last saved), raises
        AnswerChanged instead of overwriting when another writer changed it meanwhile."""
        with self.transaction() as tx:
            _check_unchanged(tx, message_id, expected)
            tx.execute("UPDATE messages SET content = ?, updated_at = ? WHERE id = ? AND content != ?",
                       (content, time.time(), message_id, content))

    def finish_answer(self, message_id: str, content: str, expected: str | None = None,
                      **answer: Any) -> None:
        """Close an answer with its final text and figures; expected as for checkpoint_answer."""
        values = _answer_values(answer)
        values.update(content=content, status="complete", updated_at=time.time(), writer_pid=None)
        assignments = ", ".join(f"{column} = ?" for column in values)
        with self.transaction() as tx:
            row = _check_unchanged(tx, message_id, expected)
            tx.execute(f"UPDATE messages SET {assignments} WHERE id = ?", (*values.values(), message_id))
            tx.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                       (values["updated_at"], row["conversation_id"]))

    def fork_answer(self, message_id: str, content: str) -> Message:
        """A new version of an answer (a branch beside it) holding content, still being written:
        where a writer's text goes when another writer changed the answer it was writing."""
        with self.transaction() as tx:
            row = _one(tx, f"SELECT conversation_id, parent_id, {', '.join(ANSWER_FIELDS)} FROM messages"
                           " WHERE id = ?", message_id)
            figures = {name: row[name] for name in ANSWER_FIELDS}
            return self._insert_message(tx, row["conversation_id"], row["parent_id"], "assistant",
                                        content, "streaming", writer_pid=os.getpid(), **figures)

    def _insert_message(self, tx: sqlite3.Connection, conversation_id: str, parent_id: str | None,
                        role: str, content: str, status: str, writer_pid: int | None = None,
                        **answer: Any) -> Message:
        if parent_id is not None:
            parent = _one(tx, "SELECT conversation_id FROM messages WHERE id = ?", parent_id)
            if parent["conversation_id"] != conversation_id:
                raise HistoryError("A message's parent must be in the same conversation.")
        now = time.time()
        message_id = _new_id()
        values = {"id": message_id, "conversation_id": conversation_id, "parent_id": parent_id,
                  "role": role, "content": content, "status": status, "created_at": now,
                  "updated_at": now, "writer_pid": writer_pid, **_answer_values(answer)}
        columns = ", ".join(values)
        tx.execute(f"INSERT INTO messages ({columns}) VALUES ({', '.join('?' * len(values))})",
                   tuple(values.values()))
        cursor = tx.execute("UPDATE conversations SET active_leaf_id = ?, updated_at = ? WHERE id = ?",
                            (message_id, now, conversation_id))
        if cursor.rowcount == 0:
            raise HistoryError(f"There is no conversation {conversation_id}.")
        return _message(_one(tx, "SELECT * FROM messages WHERE id = ?", message_id))

    def delete_message(self, message_id: str) -> None:
        """Delete a message and its replies; the active path falls back to its parent if needed."""
        with self.transaction() as tx:
            row = _one(tx, "SELECT conversation_id, parent_id FROM messages WHERE id = ?", message_id)
            leaf = tx.execute("SELECT active_leaf_id FROM conversations WHERE id = ?",
                              (row["conversation_id"],)).fetchone()[0]
            on_active_path = leaf is not None and any(m.id == message_id for m in self._path(tx, leaf)[0])
            tx.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            if on_active_path:
                tx.execute("UPDATE conversations SET active_leaf_id = ?, updated_at = ? WHERE id = ?",
                           (row["parent_id"], time.time(), row["conversation_id"]))

    def message(self, message_id: str) -> Message:
        rows = self._query("SELECT * FROM messages WHERE id = ?", (message_id,))
        if not rows:
            raise HistoryError(f"There is no message {message_id}.")
        return _message(rows[0])

    def active_path(self, conversation_id: str, last: int | None = None) -> list[Message]:
        """Messages from the first to the active leaf (only the last `last` of them, if given)."""
        return self.active_path_tail(conversation_id, last)[0]

    def active_path_tail(self, conversation_id: str, last: int | None) -> tuple[list[Message], int]:
        """The last `last` messages of the active path (all if None), and the path's full length."""
        leaf = self.conversation(conversation_id).active_leaf_id
        if not leaf:
            return [], 0
        with self._lock:
            return self._path(self._conn, leaf, last)

    def path_to(self, message_id: str) -> list[Message]:
        with self._lock:
            return self._path(self._conn, message_id)[0]

    @staticmethod
    def _path(conn: sqlite3.Connection, message_id: str, last: int | None = None) -> tuple[list[Message], int]:
        """Root-to-message path, walked up the parent pointers in Python: cheaper than a recursive
        query. For the whole path, one read of the conversation's rows; for its tail, a read of the
        (id, parent) pairs, then of the rows wanted."""
        cursor = conn.cursor()
        cursor.row_factory = None  # plain tuples, in Message's field order
        row = cursor.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            return [], 0
        if last is None:
            rows = cursor.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?",
                                  (row[0],)).fetchall()
            by_id = {r[0]: r for r in rows}
            ids = _walk_up(message_id, {i: r[2] for i, r in by_id.items()})
            return [Message._make(by_id[i]) for i in ids], len(ids)
        parents = dict(cursor.execute("SELECT id, parent_id FROM messages WHERE conversation_id = ?",
                                      (row[0],)).fetchall())
        ids = _walk_up(message_id, parents)
        wanted = ids[-last:] if last > 0 else []
        rows = cursor.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN "
                              f"({', '.join('?' * len(wanted))})", wanted).fetchall() if wanted else []
        by_id = {r[0]: r for r in rows}
        return [Message._make(by_id[i]) for i in wanted], len(ids)

    def branch_positions(self, messages: list[Message]) -> dict[str, tuple[int, int]]:
        """For these messages: their place among their versions and how many there are (`< 2/3 >`);
        messages with a single version are left out."""
        if not messages:
            return {}
        parents = sorted({m.parent_id for m in messages if m.parent_id is not None})
        with self._lock:
            cursor = self._conn.cursor()
            cursor.row_factory = None
            rows = []
            for start in range(0, len(parents), 500):
                chunk = parents[start:start + 500]
                rows += cursor.execute(f"SELECT id, parent_id, role FROM messages WHERE parent_id IN "
                                       f"({', '.join('?' * len(chunk))}) ORDER BY seq", chunk).fetchall()
            if any(m.parent_id is None for m in messages):
                rows += cursor.execute("SELECT id, parent_id, role FROM messages WHERE conversation_id = ?"
                                       " AND parent_id IS NULL ORDER BY seq", (messages[0].conversation_id,)
                                       ).fetchall()
        groups: dict[tuple, list[str]] = {}
        for mid, parent, role in rows:
            groups.setdefault((parent, role), []).append(mid)
        return {mid: (i + 1, len(ids)) for ids in groups.values() if len(ids) > 1
                for i, mid in enumerate(ids)}

    def siblings(self, message_id: str) -> list[str]:
        """Ids of the versions of this message (same parent), oldest first: the `< 2/3 >` branches."""
        m = self.message(message_id)
        rows = self._query(
            "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS ? AND role = ?"
            " ORDER BY seq",
            (m.conversation_id, m.parent_id, m.role),
        )
        return [r["id"] for r in rows]

    def select_branch(self, message_id: str) -> list[Message]:
        """Make the branch through message_id active (down its newest replies); its path."""
        with self.transaction() as tx:
            conversation_id = _one(tx, "SELECT conversation_id FROM messages WHERE id = ?", message_id)[0]
            leaf = message_id
            while row := tx.execute("SELECT id FROM messages WHERE parent_id = ? ORDER BY seq DESC LIMIT 1",
                                    (leaf,)).fetchone():
                leaf = row["id"]
            tx.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (leaf, conversation_id))
        return self.path_to(leaf)

    def message_count(self, conversation_id: str) -> int:
        return self._query("SELECT count(*) FROM messages WHERE conversation_id = ?", (conversation_id,))[0][0]

    def _mark_interrupted(self) -> list[str]:
        """Answers left 'streaming' by a process that is gone are interrupted; their text stays."""
        stale_before = time.time() - STALE_STREAM_S
        rows = self._query("SELECT id, writer_pid, updated_at FROM messages WHERE status = 'streaming'")
        dead = [r["id"] for r in rows if r["updated_at"] < stale_before or not _alive(r["writer_pid"])]
        if dead:
            with self.transaction() as tx:
                tx.executemany("UPDATE messages SET status = 'interrupted', writer_pid = NULL,"
                               " finish_reason = COALESCE(finish_reason, 'interrupted') WHERE id = ?",
                               [(i,) for i in dead])
        return dead

    # --- search ---

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Ranked full-text hits over titles and messages; any input is safe (never raises)."""
        fts = to_fts_query(query)
        if not fts or limit <= 0:
            return []
        try:
            return self._search(fts, limit)
        except sqlite3.OperationalError:  # a query FTS5 still rejects: no hits rather than a crash
            return []

    def _search(self, fts: str, limit: int) -> list[SearchHit]:
        titles = self._query(
            "SELECT c.id, c.title, snippet(title_fts, 0, '\x02', '\x03', '…', 12) AS snip,"
            " bm25(title_fts) - 5.0 AS rank"
            " FROM title_fts JOIN conversations c ON c.seq = title_fts.rowid"
            " WHERE title_fts MATCH ? ORDER BY rank LIMIT ?", (fts, limit))
        messages = self._query(
            "SELECT m.conversation_id, c.title, m.id, snippet(message_fts, 0, '\x02', '\x03', '…', 16)"
            " AS snip, bm25(message_fts) AS rank FROM message_fts"
            " JOIN messages m ON m.seq = message_fts.rowid"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE message_fts MATCH ? ORDER BY rank LIMIT ?", (fts, limit))
        hits = [SearchHit(r["id"], r["title"], None, r["snip"], r["rank"]) for r in titles]
        hits += [SearchHit(r[0], r["title"], r["id"], r["snip"], r["rank"]) for r in messages]
        return sorted(hits, key=lambda h: h.rank)[:limit]

    # --- presets ---

    def presets(self) -> list[Preset]:
        return [_preset(r) for r in self._query("SELECT * FROM presets ORDER BY is_default DESC, name")]

    def default_preset(self) -> Preset | None:
        rows = self._query("SELECT * FROM presets WHERE is_default = 1 LIMIT 1")
        return _preset(rows[0]) if rows else None

    def save_preset(self, name: str, system_prompt: str, settings: dict[str, Any] | None = None,
                    *, make_default: bool = False) -> Preset:
        name = name.strip()
        if not name:
            raise HistoryError("A preset needs a name.")
        now = time.time()
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO presets (id, name, system_prompt, settings, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " system_prompt = excluded.system_prompt, settings = excluded.settings,"
                " updated_at = excluded.updated_at",
                (_new_id(), name, system_prompt, json.dumps(settings or {}), now, now))
            if make_default:
                tx.execute("UPDATE presets SET is_default = (name = ?)", (name,))
            row = _one(tx, "SELECT * FROM presets WHERE name = ?", name)
        return _preset(row)

    def delete_preset(self, name: str) -> None:
        with self.transaction() as tx:
            if tx.execute("DELETE FROM presets WHERE name = ?", (name,)).rowcount == 0:
                raise HistoryError(f"There is no preset {name!r}.")


def _walk_up(message_id: str, parents: dict[str, str | None]) -> list[str]:
    ids: list[str] = []
    node: str | None = message_id
    while node is not None:
        ids.append(node)
        node = parents[node]
    ids.reverse()
    return ids


def _default_path() -> Path:
    try:
        return paths.data_dir() / DB_NAME
    except OSError as exc:  # the data folder cannot be created (read-only home, full disk, ...)
        raise folder_fault(Path(exc.filename or paths.HOME_ENV), exc) from exc


def _check_unchanged(tx: sqlite3.Connection, message_id: str, expected: str | None) -> sqlite3.Row:
    row = _one(tx, "SELECT conversation_id, content FROM messages WHERE id = ?", message_id)
    if expected is not None and row["content"] != expected:
        raise AnswerChanged("Another Hearth window or process changed this answer while it was "
                            "being written.")
    return row


def _one(tx: sqlite3.Connection, sql: str, key: str) -> sqlite3.Row:
    row = tx.execute(sql, (key,)).fetchone()
    if row is None:
        raise HistoryError(f"There is no conversation or message {key}.")
    return row


def _alive(pid: int | None) -> bool:
    # This process is opening the store: it is not streaming that answer yet.
    return bool(pid) and pid != os.getpid() and process_alive(pid)


def _answer_values(answer: dict[str, Any]) -> dict[str, Any]:
    unknown = set(answer) - set(ANSWER_FIELDS)
    if unknown:
        raise TypeError(f"unknown answer fields: {sorted(unknown)}")
    values = dict(answer)
    if isinstance(values.get("settings"), dict):
        values["settings"] = json.dumps(values["settings"])
    return values


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"], title=row["title"], title_is_auto=bool(row["title_is_auto"]),
        created_at=row["created_at"], updated_at=row["updated_at"], model=row["model"],
        model_revision=row["model_revision"], system_prompt=row["system_prompt"],
        settings=json.loads(row["settings"] or "{}"), pinned=bool(row["pinned"]),
        active_leaf_id=row["active_leaf_id"],
    )


def _message(row: sqlite3.Row) -> Message:
    return Message._make(row[name if name != "settings_json" else "settings"] for name in Message._fields)


def _preset(row: sqlite3.Row) -> Preset:
    return Preset(row["id"], row["name"], row["system_prompt"], json.loads(row["settings"] or "{}"),
                  bool(row["is_default"]))
