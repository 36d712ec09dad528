"""Opening the history database: WAL, foreign keys, numbered migrations with a backup first.

The schema version lives in `PRAGMA user_version`. A database written by a newer Hearth is refused
and left untouched; a file that is not a readable SQLite database is moved aside (never overwritten)
and reported, and a new one is started.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import HearthError
from .schema import MIGRATIONS

SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(HearthError):
    pass


class HistoryTooNew(HistoryError):
    pass


class HistoryCorrupt(HistoryError):
    pass


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we open transactions explicitly, one per logical change.
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=10.0, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def open_database(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """An open, migrated connection, and where a corrupt earlier file was moved (if it was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    moved_aside = None
    try:
        conn = _open_checked(path)
    except HistoryCorrupt:
        moved_aside = _move_aside(path)
        conn = _open_checked(path)
    return conn, moved_aside


def _open_checked(path: Path) -> sqlite3.Connection:
    existed = path.exists() and path.stat().st_size > 0
    try:
        conn = connect(path)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if existed:
            _check_integrity(conn)
    except sqlite3.DatabaseError as exc:
        raise HistoryCorrupt(f"The history database {path} is damaged: {exc}") from exc
    if version > SCHEMA_VERSION:
        conn.close()
        raise HistoryTooNew(
            f"The history database {path} was written by a newer version of Hearth (schema "
            f"{version}; this version knows up to {SCHEMA_VERSION}). Update Hearth to open it; it "
            f"has not been changed."
        )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    if version < SCHEMA_VERSION:
        if version > 0:
            backup(conn, path.with_name(f"{path.stem}.before-v{SCHEMA_VERSION}-{_stamp()}{path.suffix}"))
        migrate(conn, version)
    return conn


def _check_integrity(conn: sqlite3.Connection) -> None:
    # quick_check reads every page, O(size); cheap next to one answer, and run once per start.
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise sqlite3.DatabaseError(result)


def migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Apply migrations after from_version, each in its own transaction with its version bump."""
    for number, step in enumerate(MIGRATIONS[from_version:], start=from_version + 1):
        _apply(conn, number, step)


def _apply(conn: sqlite3.Connection, number: int, step: Callable[[sqlite3.Connection], None]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        step(conn)
        conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def backup(conn: sqlite3.Connection, dest: Path) -> Path:
    target = sqlite3.connect(str(dest))
    try:
        conn.backup(target)
    finally:
        target.close()
    return dest


def _move_aside(path: Path) -> Path:
    dest = path.with_name(f"{path.stem}.corrupt-{_stamp()}{path.suffix}")
    shutil.move(str(path), str(dest))
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            shutil.move(str(side), str(dest) + suffix)
    return dest


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")
