"""Where Hearth keeps its files.

`HEARTH_HOME`, when set, replaces every per-user directory (data, config, cache, logs); tests always
set it. Otherwise platformdirs picks the platform's usual places.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import platformdirs

from .errors import FolderUnavailable

APP_NAME = "Hearth"
HOME_ENV = "HEARTH_HOME"


def _home_override() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def _resolve(kind: str) -> Path:
    home = _home_override()
    if home is not None:
        path = home / kind
    else:
        getter = {
            "data": platformdirs.user_data_path,
            "config": platformdirs.user_config_path,
            "cache": platformdirs.user_cache_path,
            "logs": platformdirs.user_log_path,
        }[kind]
        path = getter(APP_NAME, appauthor=False)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unavailable(kind, path, exc) from exc
    return path


def _unavailable(kind: str, path: Path, exc: OSError) -> FolderUnavailable:
    if exc.errno == errno.ENOSPC:
        reason = "the disk is full"
    else:
        reason = exc.strerror or str(exc)
    fix = "" if exc.errno == errno.ENOSPC else (
        f" Make it writable, or set {HOME_ENV} to a folder that is.")
    return FolderUnavailable(exc.errno, exc.strerror or str(exc), str(path),
                             f"Hearth cannot create its {kind} folder {path}: {reason}.{fix}")


def data_dir() -> Path:
    return _resolve("data")


def config_dir() -> Path:
    return _resolve("config")


def cache_dir() -> Path:
    return _resolve("cache")


def logs_dir() -> Path:
    return _resolve("logs")
