"""Real disk faults for tests: a small, filling tmpfs (ENOSPC) and a read-only folder (EROFS, or
EACCES where the tests do not run as root). Mounting needs root; where it is refused the test is
skipped with the reason the system gave."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a test filesystem here: {proc.stderr.strip() or proc.returncode}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2M") -> Iterator[Path]:
    """A tmpfs of `size` mounted at path (created if needed) for the duration."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (to fill a disk for real) needs root")
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


def fill(folder: Path, leave: int = 0) -> Path:
    """Write a filler file in folder until the disk has at most `leave` bytes free; its path."""
    filler = folder / f".filler-{os.getpid()}-{len(list(folder.glob('.filler-*')))}"
    with open(filler, "wb") as f:
        try:
            while True:
                free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
                if free <= leave:
                    break
                f.write(b"\0" * min(64 * 1024, max(free - leave, 1)))
                f.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """path made unwritable: a read-only bind mount as root (root ignores permissions), else
    permissions without write bits."""
    if os.geteuid() == 0:
        _mount("--bind", str(path), str(path))
        try:
            _mount("-o", "remount,ro,bind", str(path))
            yield path
        finally:
            _umount(path)
        return
    mode = path.stat().st_mode
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(mode)
