"""Hearth's own record of its models: imported folders, last use, the default, download states.

One small JSON file in the data directory, rewritten atomically (temporary file, fsync, rename)
under a lock, so the app and the `hearth` command can both update it and a crash never leaves it
half written. A record that cannot be written (full disk, read-only folder) raises StateWriteError,
which says so in one line; nothing is left half done.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import HearthError

STATE_FILE = "library.json"
VERSION = 1


class StateWriteError(HearthError):
    """Hearth's library record could not be written."""


def _path() -> Path:
    return paths.data_dir() / STATE_FILE


def _empty() -> dict[str, Any]:
    return {"version": VERSION, "imported": [], "last_used": {}, "default_model": None, "downloads": {}}


def load() -> dict[str, Any]:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _empty()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        # A damaged record only loses Hearth's notes about models, never a model: keep it aside.
        damaged = _path().with_suffix(".damaged.json")
        with contextlib.suppress(OSError):
            os.replace(_path(), damaged)
        return _empty()
    base = _empty()
    data = data if isinstance(data, dict) else {}
    for key, default in base.items():
        value = data.get(key, default)
        if key == "default_model":
            base[key] = value if isinstance(value, str) else None
        elif isinstance(value, type(default)):
            base[key] = value
    return base


@contextlib.contextmanager
def editing() -> Iterator[dict[str, Any]]:
    """Read, let the caller change, and write back the state, holding a lock throughout."""
    lock_path = _path().with_suffix(".lock")
    try:
        lock = open(lock_path, "a")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as exc:
        raise write_error(exc, _path()) from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = load()
            yield data
            try:
                _write(data)
            except OSError as exc:
                raise write_error(exc, _path()) from exc
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_error(exc: OSError, path: Path) -> StateWriteError:
    """One line that says why Hearth's record at path cannot be written."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why = "the disk is full; free some space and try again"
    elif exc.errno == errno.EROFS:
        why = "its folder is on a read-only disk"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied; check the folder's owner and permissions"
    else:
        why = exc.strerror or str(exc)
    return StateWriteError(f"Hearth cannot write its library file {path}: {why}.")


def _write(data: dict[str, Any]) -> None:
    write_json_atomically(_path(), data, indent=1, sort_keys=True)


def write_json_atomically(target: Path, data: Any, **dump_options: Any) -> None:
    """Replace target with data as JSON: a temporary file beside it, fsynced, renamed over it, so a
    reader (another process) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, **dump_options)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
