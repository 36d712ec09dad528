"""Is a file in the Hugging Face cache the one the Hub listed? Checked by hash, remembered.

The cache names each blob after the ETag the Hub gave for it: the SHA-256 of an LFS file's bytes,
or the git blob id (sha1 of b"blob <size>\\0" + bytes) of a small file. That name is the Hub's
listing kept on disk, whichever tool downloaded the file, so every blob can be checked offline.
A file whose expected hash is not known locally (a plain copy in a snapshot folder, a blob with
another kind of name) is reported as unverified, never as verified.

Hashing a large model takes seconds, so each result is remembered in a small JSON file in Hearth's
data folder, keyed by the blob's path, size, modification time and inode: a file that changes gets
hashed again. The memo is only a cache: when it cannot be read or written, files are hashed anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from .state import write_json_atomically

# What an mlx-lm model needs; never code, pickles or docs.
MODEL_FILES = (
    "config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "chat_template.jinja", "chat_template.json",
)
MEMO_FILE = "verified-files.json"
READ_BYTES = 8 * 1024 * 1024
SHA256 = "sha256"
GIT_SHA1 = "git-sha1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Expected:
    """A file as the Hub lists it: its hash, of one of two kinds."""

    name: str
    kind: str  # SHA256 or GIT_SHA1
    digest: str
    size: int | None = None


@dataclass
class Verdict:
    """A snapshot's files checked against the Hub's hashes."""

    verified: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # no hash known locally
    damaged: dict[str, str] = field(default_factory=dict)  # name -> what is wrong

    @property
    def status(self) -> str:
        if self.damaged:
            return "damaged"
        return "unverified" if self.unverified else "verified"

    def problem(self, repo_id: str) -> str | None:
        if not self.damaged:
            return None
        name, what = next(iter(sorted(self.damaged.items())))
        more = f" (and {len(self.damaged) - 1} more)" if len(self.damaged) > 1 else ""
        return f"damaged: {name} {what}{more}; `hearth download {repo_id}` fetches it again"


def expected_from_etag(name: str, etag: str, size: int | None = None) -> Expected | None:
    """What a file named by the Hub's ETag must hash to; None when the name is no known hash."""
    if _HEX64.fullmatch(etag):
        return Expected(name, SHA256, etag, size)
    if _HEX40.fullmatch(etag):
        return Expected(name, GIT_SHA1, etag, size)
    return None


def new_hasher(kind: str, size: int):
    if kind == SHA256:
        return hashlib.sha256()
    hasher = hashlib.sha1(usedforsecurity=False)
    hasher.update(b"blob %d\0" % size)  # git's blob id
    return hasher


def mismatch(path: Path, expected: Expected, memo: Memo | None = None) -> str | None:
    """What is wrong with the file at path (None when it matches). Raises OSError if unreadable."""
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        return f"has {size:,} bytes, the Hub lists {expected.size:,}"
    memo = memo if memo is not None else Memo.load()
    if memo.digest(path, expected.kind) != expected.digest:
        what = "SHA-256" if expected.kind == SHA256 else "checksum"
        return f"does not match its {what} on the Hub"
    return None


def wanted(name: str, patterns: tuple[str, ...] = MODEL_FILES) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def verify_snapshot(snapshot: Path, etags: dict[str, str] | None = None,
                    patterns: tuple[str, ...] = MODEL_FILES) -> Verdict:
    """Check the model files of a Hugging Face cache snapshot. A symlinked file is checked against
    its blob's name; a plain file against `etags` (name -> ETag from a Hearth download record)."""
    verdict, memo = Verdict(), Memo.load()
    try:
        entries = sorted(os.scandir(snapshot), key=lambda e: e.name)
    except OSError:
        return verdict
    for entry in entries:
        if not wanted(entry.name, patterns):
            continue
        path = Path(entry.path)
        expected = _expected_for(path, etags or {})
        if expected is None:
            verdict.unverified.append(entry.name)
            continue
        try:
            problem = mismatch(path, expected, memo)
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or exc})"
        if problem:
            verdict.damaged[entry.name] = problem
        else:
            verdict.verified.append(entry.name)
    memo.save()
    return verdict


def verify_repo(repo_id: str) -> Verdict:
    """Check the snapshot of a cached repo that Hearth would load (the one refs/main names)."""
    from . import hub_cache, state

    cached = hub_cache.read_repo(hub_cache.repo_folder(repo_id))
    if cached.snapshot is None:
        return Verdict()
    return verify_snapshot(cached.snapshot, recorded_etags(state.load(), repo_id, cached.commit))


def recorded_etags(data: dict, repo_id: str, commit: str | None) -> dict[str, str]:
    """name -> ETag from Hearth's record of a finished download of this commit, else {}."""
    record = data.get("downloads", {}).get(repo_id) or {}
    if not commit or record.get("commit") != commit:
        return {}
    names, blobs = record.get("files") or [], record.get("blobs") or []
    try:
        return {str(n): str(b[0]) for n, b in zip(names, blobs, strict=True)}
    except (ValueError, TypeError, IndexError):
        return {}


def _expected_for(path: Path, etags: dict[str, str]) -> Expected | None:
    if path.is_symlink():
        return expected_from_etag(path.name, Path(os.readlink(path)).name)
    etag = etags.get(path.name)
    return expected_from_etag(path.name, etag) if etag else None


class Memo:
    """Digests already computed, keyed by a file's real path, size and mtime."""

    def __init__(self, entries: dict[str, dict]) -> None:
        self.entries = entries
        self.added: dict[str, dict] = {}

    @staticmethod
    def path() -> Path:
        return paths.data_dir() / MEMO_FILE

    @classmethod
    def load(cls) -> Memo:
        try:
            data = json.loads(cls.path().read_text(encoding="utf-8"))
            entries = data.get("files") if isinstance(data, dict) else None
        except (OSError, UnicodeDecodeError, ValueError):
            entries = None
        return cls(entries if isinstance(entries, dict) else {})

    def digest(self, path: Path, kind: str) -> str:
        key, stat = _key(path)
        entry = self.added.get(key) or self.entries.get(key)
        if _same_file(entry, stat) and isinstance(entry.get(kind), str):
            return entry[kind]
        hasher = new_hasher(kind, stat.st_size)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(READ_BYTES), b""):
                hasher.update(chunk)
        value = hasher.hexdigest()
        self.remember(path, kind, value)
        return value

    def remember(self, path: Path, kind: str, digest: str) -> None:
        key, stat = _key(path)
        entry = self.added.get(key) or self.entries.get(key)
        fresh = dict(entry) if _same_file(entry, stat) else {}
        fresh.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns, ino=stat.st_ino, **{kind: digest})
        self.added[key] = fresh

    def save(self) -> None:
        """Merge what was computed into the file (under a lock, written atomically); a memo that
        cannot be written only costs hashing again next time."""
        if not self.added:
            return
        with contextlib.suppress(OSError):
            _merge_into_file(self.path(), self.added)
        self.entries.update(self.added)
        self.added = {}


def remember(path: Path, kind: str, digest: str) -> None:
    """Note a digest Hearth computed while downloading, so the file is never hashed again."""
    memo = Memo({})
    memo.remember(path, kind, digest)
    memo.save()


def _key(path: Path) -> tuple[str, os.stat_result]:
    real = os.path.realpath(path)
    return real, os.stat(real)


def _same_file(entry: dict | None, stat: os.stat_result) -> bool:
    # The inode too: a copy that kept the size and mtime (cp -p, rsync -t) over the path is a new file.
    return (isinstance(entry, dict) and entry.get("size") == stat.st_size
            and entry.get("mtime_ns") == stat.st_mtime_ns and entry.get("ino") == stat.st_ino)


def _merge_into_file(target: Path, added: dict[str, dict]) -> None:
    with open(target.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entries = Memo.load().entries
            entries.update(added)
            # Forget files that are gone, so the memo does not grow without end.
            entries = {k: v for k, v in entries.items() if os.path.exists(k)}
            write_json_atomically(target, {"version": 1, "files": entries})
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
