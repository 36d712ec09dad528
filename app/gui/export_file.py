"""An exported conversation's file: named after its title, and one line when it cannot be written.
(history_cli.write_atomically writes it: whole or not at all, with the user's normal permissions.)"""

from __future__ import annotations

import errno
import re
from pathlib import Path

MAX_NAME_CHARS = 80
# Characters no file name may hold on macOS, Windows or Linux, and control characters.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def export_file_name(title: str, suffix: str = ".md") -> str:
    """A safe file name from a conversation's title: "Trip to Lisbon.md"."""
    name = _UNSAFE.sub(" ", title)
    name = " ".join(name.split()).strip(" .")[:MAX_NAME_CHARS].strip(" .")
    return (name or "Conversation") + suffix


def describe_write_error(path: Path, error: BaseException) -> str:
    """One line saying why an export could not be written, and that nothing was changed."""
    reasons = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
               errno.EACCES: "you do not have permission to write there",
               errno.EPERM: "you do not have permission to write there",
               errno.EROFS: "that disk is read-only", errno.ENOENT: "that folder does not exist"}
    cause = error.__cause__ if isinstance(error.__cause__, OSError) else error  # HearthError from OSError
    reason = reasons.get(getattr(cause, "errno", None)) or getattr(cause, "strerror", None) or str(cause)
    return f"Could not export to {path}: {reason}. Nothing was written."
