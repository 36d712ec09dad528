"""Copying what can still be read from a damaged history into a new one, row by row.

The damaged file is read from a temporary copy, so the file kept aside stays byte for byte as it was
(even closing a WAL database writes to it). Rows are read in key order until SQLite hits a bad page,
then looked up one key at a time, so one bad page costs the rows on it, not the whole table.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

TABLES = ("conversations", "messages", "presets")
# Lookups one key at a time stop here: a damaged page can claim an absurd largest key.
MAX_PROBES = 5_000_000


def recover_into(damaged: Path, target: sqlite3.Connection) -> tuple[int, int]:
    """Copy readable conversations, messages and presets into target; (conversations, messages)."""
    with tempfile.TemporaryDirectory(prefix=".recovering-", dir=damaged.parent) as tmp:
        copy = Path(tmp) / damaged.name
        for suffix in ("", "-wal"):
            if Path(f"{damaged}{suffix}").exists():
                shutil.copyfile(f"{damaged}{suffix}", f"{copy}{suffix}")
        source = sqlite3.connect(str(copy), isolation_level=None)
        try:
            source.text_factory = lambda data: data.decode("utf-8", "replace")
            rows = {table: _readable_rows(source, table, _columns(target, table)) for table in TABLES}
        finally:
            source.close()
    target.execute("BEGIN IMMEDIATE")
    try:
        counts = _insert(target, rows)
        target.execute("COMMIT")
    except BaseException:
        target.execute("ROLLBACK")
        raise
    log.warning("recovered %d conversation(s) and %d message(s) from %s", *counts, damaged)
    return counts


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _readable_rows(source: sqlite3.Connection, table: str, wanted: list[str]) -> list[dict]:
    """Every row of table that can be read, as column -> value, in key (seq) order."""
    try:
        present = set(_columns(source, table))
    except sqlite3.DatabaseError:
        return []
    columns = [c for c in wanted if c in present]
    if "seq" not in columns:
        return []
    select = f"SELECT {', '.join(columns)} FROM {table}"
    rows: dict[int, tuple] = {}
    with contextlib.suppress(sqlite3.DatabaseError):
        for row in source.execute(f"{select} ORDER BY seq"):
            rows[row[columns.index("seq")]] = row
    for seq in sorted(_keys_named(source, table) - rows.keys()):
        with contextlib.suppress(sqlite3.DatabaseError):
            row = source.execute(f"{select} WHERE seq = ?", (seq,)).fetchone()
            if row is not None:
                rows[seq] = row
    return [dict(zip(columns, rows[seq], strict=True)) for seq in sorted(rows)]


def _keys_named(source: sqlite3.Connection, table: str) -> set[int]:
    """Keys worth looking up: up to the table's largest, and every key its indexes still hold."""
    keys: set[int] = set()
    with contextlib.suppress(sqlite3.DatabaseError):
        highest = source.execute(f"SELECT max(seq) FROM {table}").fetchone()[0] or 0
        keys.update(range(1, min(highest, MAX_PROBES) + 1))
    with contextlib.suppress(sqlite3.DatabaseError):
        indexes = [r[1] for r in source.execute(f"PRAGMA index_list({table})")]
        for index in indexes:  # an index holds every row's key, on pages of its own
            with contextlib.suppress(sqlite3.DatabaseError):
                for (seq,) in source.execute(f'SELECT seq FROM {table} INDEXED BY "{index}"'):
                    keys.add(seq)
    return keys


def _insert(target: sqlite3.Connection, rows: dict[str, list[dict]]) -> tuple[int, int]:
    conversations = {row["id"]: row for row in rows["conversations"]
                     if _insert_row(target, "conversations", {**row, "active_leaf_id": None})}
    saved: dict[str, dict] = {}
    for row in rows["messages"]:
        if row["conversation_id"] not in conversations:
            conversations[row["conversation_id"]] = _stand_in_conversation(target, row)
        if row.get("parent_id") not in saved:
            row = {**row, "parent_id": None}  # its parent was lost: it starts a branch of its own
        if row.get("status") == "streaming":
            row = {**row, "status": "interrupted", "writer_pid": None}
        if _insert_row(target, "messages", row):
            saved[row["id"]] = row
    _restore_leaves(target, conversations, saved)
    for row in rows["presets"]:
        _insert_preset(target, row)
    return len(conversations), len(saved)


def _insert_row(target: sqlite3.Connection, table: str, row: dict) -> bool:
    """Insert one recovered row; False when it breaks a rule of the schema (then it is left out).

    Its old seq is not reused: rows go in in their old order, and a key is never taken from a row
    another process may have added to the new history meanwhile."""
    row = {column: value for column, value in row.items() if column != "seq"}
    columns = ", ".join(row)
    try:
        target.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})",
                       tuple(row.values()))
    except sqlite3.IntegrityError as exc:
        log.warning("a recovered %s row was left out: %s", table, exc)
        return False
    return True


def _stand_in_conversation(target: sqlite3.Connection, message: dict) -> dict:
    """A conversation for messages whose own conversation row could not be read."""
    when = message.get("created_at") or time.time()
    row = {"id": message["conversation_id"], "title": "Recovered conversation", "title_is_auto": 0,
           "created_at": when, "updated_at": when}
    _insert_row(target, "conversations", row)
    return row


def _restore_leaves(target: sqlite3.Connection, conversations: dict[str, dict],
                    saved: dict[str, dict]) -> None:
    """Each conversation's active leaf: its own if it survived, else its last surviving message."""
    last: dict[str, str] = {}
    for message_id, row in saved.items():  # in seq order
        last[row["conversation_id"]] = message_id
    for conversation_id, row in conversations.items():
        leaf = row.get("active_leaf_id")
        leaf = leaf if leaf in saved else last.get(conversation_id)
        if leaf is not None:
            target.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                           (leaf, conversation_id))


def _insert_preset(target: sqlite3.Connection, row: dict) -> None:
    """A user's preset, over the built-in one of the same name; its default flag kept."""
    values = {k: row[k] for k in ("id", "name", "system_prompt", "settings", "created_at", "updated_at")
              if k in row}
    with contextlib.suppress(sqlite3.IntegrityError):
        target.execute(
            f"INSERT INTO presets ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})"
            " ON CONFLICT(name) DO UPDATE SET system_prompt = excluded.system_prompt,"
            " settings = excluded.settings", tuple(values.values()))
        if row.get("is_default"):
            target.execute("UPDATE presets SET is_default = (name = ?)", (row["name"],))
