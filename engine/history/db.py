"""Opening the history database: WAL, foreign keys, numbered migrations with a backup first.

The schema version lives in `PRAGMA user_version`. Faults are told apart from damage:

- locked or busy (another process holds the database): wait and retry, saying so, then give up with
  `HistoryLocked`;
- unreadable, read-only or on a full disk: `HistoryUnavailable` (`HistoryReadOnly`,
  `HistoryDiskFull`) naming the cause;
- written by a newer Hearth: `HistoryTooNew`; an SQLite database that is not Hearth's:
  `HistoryForeign`.

In all of these the file stays where it is, unchanged, and no empty history is started in its place.
Only damage (SQLite says the file is corrupt or not a database, or the integrity check fails) moves
the file aside; what can still be read from it is copied into the new database (recovery.py).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import HearthError
from .schema import MIGRATIONS

SCHEMA_VERSION = len(MIGRATIONS)
# How long opening waits for another process that holds the database before giving up.
LOCK_WAIT_S = 30.0
# SQLite's own wait per attempt while opening; between attempts the caller is told we are waiting.
_OPEN_BUSY_MS = 500
# Once open, a write waits this long for another writer (a checkpoint of a few KB takes ms).
_BUSY_MS = 10_000
# Tables every Hearth history has had since version 1.
_HEARTH_TABLES = {"conversations", "messages"}

log = logging.getLogger(__name__)


class HistoryError(HearthError):
    pass


class HistoryTooNew(HistoryError):
    pass


class HistoryCorrupt(HistoryError):
    """The file is damaged: SQLite cannot read it as a database, or its integrity check fails."""


class HistoryForeign(HistoryError):
    """A readable SQLite database that is not a Hearth history: refused, never migrated."""


class HistoryUnavailable(HistoryError):
    """A fault around a healthy file (permissions, read-only, full disk, I/O): the file is kept."""


class HistoryLocked(HistoryUnavailable):
    pass


class HistoryReadOnly(HistoryUnavailable):
    pass


class HistoryDiskFull(HistoryUnavailable):
    pass


@dataclass(frozen=True)
class Recovery:
    """A damaged history that was set aside, and how much of it was copied into the new one."""

    kept_at: Path
    conversations: int
    messages: int

    def __str__(self) -> str:
        return (f"the history database was damaged; it was kept at {self.kept_at}, and what could "
                f"still be read ({self.conversations} conversation(s), {self.messages} message(s)) "
                f"was copied into a new one.")


def connect(path: Path, busy_ms: int = _BUSY_MS) -> sqlite3.Connection:
    # isolation_level=None: we open transactions explicitly, one per logical change.
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_ms / 1000,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    return conn


def open_database(path: Path, on_wait: Callable[[str], None] | None = None,
                  lock_wait_s: float = LOCK_WAIT_S) -> tuple[sqlite3.Connection, Recovery | None]:
    """An open, migrated connection, and what was recovered if the file was damaged.

    on_wait is told (once) when another process holds the database and we are waiting for it."""
    _make_folder(path.parent)
    try:
        return _open_waiting(path, on_wait, lock_wait_s), None
    except HistoryCorrupt as damage:
        log.warning("%s", damage)
        return _replace_damaged(path, on_wait, lock_wait_s)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_fault(folder, exc) from exc


def folder_fault(folder: Path, exc: OSError) -> HistoryUnavailable:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        return HistoryDiskFull(f"Hearth cannot create its history folder {folder}: the disk is full.")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return HistoryReadOnly(f"Hearth cannot create its history folder {folder}: {reason}. "
                               f"Nothing was saved; make the folder writable (or set HEARTH_HOME to "
                               f"one that is).")
    return HistoryUnavailable(f"Hearth cannot create its history folder {folder}: {reason}.")


def _open_waiting(path: Path, on_wait: Callable[[str], None] | None,
                  lock_wait_s: float) -> sqlite3.Connection:
    """Open, retrying while another process holds a lock; told once, then given up on."""
    deadline = time.monotonic() + lock_wait_s
    told = False
    while True:
        try:
            return _open_checked(path)
        except HistoryLocked:
            if not told:
                told = True
                message = f"waiting for another Hearth window/process that is using the history ({path}) ..."
                log.info("%s", message)
                if on_wait is not None:
                    on_wait(message)
            if time.monotonic() >= deadline:
                raise HistoryLocked(
                    f"The history database {path} is locked by another program (waited "
                    f"{lock_wait_s:.0f} s). It has not been changed; close the other Hearth window "
                    f"or process and try again.") from None
            time.sleep(0.1)


def _open_checked(path: Path) -> sqlite3.Connection:
    existed = path.exists() and path.stat().st_size > 0
    conn = None
    try:
        conn = connect(path, busy_ms=_OPEN_BUSY_MS)
        version = _check_is_hearth(conn, path)
        if existed:
            _check_integrity(conn, path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            if version > 0:
                backup(conn, path.with_name(f"{path.stem}.before-v{SCHEMA_VERSION}-{_stamp()}{path.suffix}"))
            migrate(conn)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        return conn
    except sqlite3.Error as exc:
        _close(conn)
        raise classify(exc, path) from exc
    except BaseException:
        _close(conn)
        raise


def _close(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


def _check_is_hearth(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of a Hearth history (0: a new, empty file); refuses anything else."""
    conn.execute("BEGIN")  # one snapshot: another process may be creating the schema right now
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    finally:
        conn.execute("COMMIT")
    if version > SCHEMA_VERSION:
        raise HistoryTooNew(
            f"The history database {path} was written by a newer version of Hearth (schema "
            f"{version}; this version knows up to {SCHEMA_VERSION}). Update Hearth to open it; it "
            f"has not been changed."
        )
    if (version == 0 and tables) or (version > 0 and not _HEARTH_TABLES <= tables):
        names = ", ".join(sorted(tables)[:5]) or "none"
        raise HistoryForeign(
            f"{path} is an SQLite database but not a Hearth history (its tables: {names}). Hearth "
            f"has not changed it; move it elsewhere and Hearth will start a new history there."
        )
    return version


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    # quick_check reads every page, O(size); cheap next to one answer, and run once per start.
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise HistoryCorrupt(f"The history database {path} is damaged: {result}")


def classify(exc: sqlite3.Error, path: Path) -> HistoryError:
    """The user-facing error for an SQLite failure on the history: damage or a named fault."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return HistoryCorrupt(f"The history database {path} is damaged: {exc}")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return HistoryLocked(f"The history database {path} is in use by another Hearth window or "
                             f"process; nothing was changed. Try again in a moment.")
    if code == sqlite3.SQLITE_READONLY:
        return HistoryReadOnly(f"The history database {path} is read-only, so Hearth cannot save to "
                               f"it. It has been left as it is.")
    fault = None if code == sqlite3.SQLITE_FULL else _file_fault(path)
    if fault is None and (code == sqlite3.SQLITE_FULL or _disk_full(path.parent)):
        fault = HistoryDiskFull(f"The disk holding the history ({path.parent}) is full, so Hearth "
                                f"cannot save to it. What the history holds is kept as it is; free "
                                f"some space and try again.")
    return fault or HistoryUnavailable(
        f"The history database {path} could not be used ({exc}). It has been left as it is.")


def _disk_full(folder: Path) -> bool:
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _file_fault(path: Path) -> HistoryUnavailable | None:
    """Which of the database's files (or its folder) the operating system refuses, and why."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            os.close(os.open(name, os.O_RDWR))
        except FileNotFoundError:
            continue
        except OSError as exc:
            return _os_fault(path, name, exc)
    try:  # SQLite creates -wal and -shm beside the database
        with open(path.parent / f".{path.name}.probe", "wb"):
            pass
        (path.parent / f".{path.name}.probe").unlink()
    except OSError as exc:
        return _os_fault(path, path.parent, exc)
    return None


def _os_fault(path: Path, culprit: Path, exc: OSError) -> HistoryUnavailable:
    what = "folder" if culprit == path.parent else "file"
    if exc.errno == errno.EROFS:
        return HistoryReadOnly(f"The history database {path} is on a read-only disk, so Hearth "
                               f"cannot open it for saving. It has been left as it is.")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return HistoryUnavailable(f"Hearth may not read or write the history {what} {culprit} "
                                  f"(permission denied). It has been left as it is; check its "
                                  f"owner and permissions.")
    if exc.errno == errno.ENOSPC:
        return HistoryDiskFull(f"The disk holding the history ({path.parent}) is full, so Hearth "
                               f"cannot save to it. What the history holds is kept as it is; free "
                               f"some space and try again.")
    return HistoryUnavailable(f"The history {what} {culprit} cannot be used ({exc.strerror or exc}). "
                              f"It has been left as it is.")


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this database lacks, each in its own transaction with its version bump.

    The version is read again inside each write transaction: a second process creating the same
    history at the same moment then finds the step done and skips it."""
    for number, step in enumerate(MIGRATIONS, start=1):
        _apply(conn, number, step)


def _apply(conn: sqlite3.Connection, number: int, step: Callable[[sqlite3.Connection], None]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] < number:
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


def _replace_damaged(path: Path, on_wait: Callable[[str], None] | None,
                     lock_wait_s: float) -> tuple[sqlite3.Connection, Recovery | None]:
    """Set a damaged file aside, start a new history and copy into it what can still be read."""
    from .recovery import recover_into

    with _exclusive(path):
        try:  # another process may have replaced it while we waited for the lock
            return _open_waiting(path, on_wait, lock_wait_s), None
        except HistoryCorrupt:
            kept = _move_aside(path)
        conn = _open_waiting(path, on_wait, lock_wait_s)
        conversations, messages = recover_into(kept, conn)
    return conn, Recovery(kept, conversations, messages)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """A lock file beside the history, so two processes never both set aside and replace it."""
    with open(path.with_name(f".{path.name}.lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _move_aside(path: Path) -> Path:
    dest = path.with_name(f"{path.stem}.corrupt-{_stamp()}{path.suffix}")
    number = 1
    while dest.exists():  # never over an earlier damaged file set aside the same second
        number += 1
        dest = path.with_name(f"{path.stem}.corrupt-{_stamp()}-{number}{path.suffix}")
    shutil.move(str(path), str(dest))
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            shutil.move(str(side), str(dest) + suffix)
    return dest


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")
