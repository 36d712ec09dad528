"""Writing an exported conversation: named after its title, with the user's normal permissions.

A temporary file beside the target, then a rename: never a half-written file. It is created with
mode 0666 less the umask, as any file the user saves (mkstemp's 0600 would hide it from others the
user shares the folder with).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from pathlib import Path

MAX_NAME_CHARS = 80
# Characters no file name may hold on macOS, Windows or Linux, and control characters.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def export_file_name(title: str, suffix: str = ".md") -> str:
    """A safe file name from a conversation's title: "Trip to Lisbon.md"."""
    name = _UNSAFE.sub(" ", title)
    name = " ".join(name.split()).strip(" .")[:MAX_NAME_CHARS].strip(" .")
    return (name or "Conversation") + suffix


def write_export(path: Path, text: str) -> None:
    """Write `text` to `path` atomically. OSError (with the reason) when it cannot be written."""
    path = Path(path).expanduser()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def describe_write_error(path: Path, error: BaseException) -> str:
    """One line saying why an export could not be written, and that nothing was changed."""
    reasons = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
               errno.EACCES: "you do not have permission to write there",
               errno.EPERM: "you do not have permission to write there",
               errno.EROFS: "that disk is read-only", errno.ENOENT: "that folder does not exist"}
    errno_value = getattr(error, "errno", None)
    reason = reasons.get(errno_value) or getattr(error, "strerror", None) or str(error)
    return f"Could not export to {path}: {reason}. Nothing was written."
