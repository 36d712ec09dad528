"""Reading the standard Hugging Face cache (the one mlx-lm and the Hugging Face CLI use) offline.

Layout: <cache>/models--org--name/{blobs/<etag>, snapshots/<commit>/<file> -> ../../blobs/<etag>,
refs/<branch> containing a commit}. Partial downloads are blobs/<etag>.incomplete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..model_folder import hub_cache_dir

PREFIX = "models--"


@dataclass(frozen=True)
class CachedRepo:
    repo_id: str
    folder: Path
    snapshot: Path | None  # the one refs/main points at, else the newest
    commit: str | None
    size_bytes: int  # everything under the repo's folder: blobs, partial downloads
    incomplete_bytes: int


def repo_folder(repo_id: str, cache: Path | None = None) -> Path:
    return (cache or hub_cache_dir()) / (PREFIX + repo_id.replace("/", "--"))


def locks_folder(repo_id: str, cache: Path | None = None) -> Path:
    return (cache or hub_cache_dir()) / ".locks" / (PREFIX + repo_id.replace("/", "--"))


def lock_path(repo_id: str, etag: str, cache: Path | None = None) -> Path:
    """The lock huggingface_hub holds while it writes this blob: taking the same one keeps Hearth
    and every other Hugging Face tool from writing one file at once."""
    return locks_folder(repo_id, cache) / f"{etag}.lock"


def scan(cache: Path | None = None) -> list[CachedRepo]:
    cache = cache or hub_cache_dir()
    try:
        entries = sorted(os.scandir(cache), key=lambda e: e.name)
    except OSError:
        return []
    return [read_repo(Path(e.path)) for e in entries if e.name.startswith(PREFIX) and e.is_dir()]


def read_repo(folder: Path) -> CachedRepo:
    repo_id = "/".join(folder.name[len(PREFIX):].split("--"))
    commit = _ref(folder, "main")
    snapshot = folder / "snapshots" / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        snapshot, commit = _newest_snapshot(folder)
    total, incomplete = _blob_sizes(folder / "blobs")
    return CachedRepo(repo_id, folder, snapshot, commit, total, incomplete)


def _ref(folder: Path, name: str) -> str | None:
    try:
        return (folder / "refs" / name).read_text().strip() or None
    except OSError:
        return None


def _newest_snapshot(folder: Path) -> tuple[Path | None, str | None]:
    try:
        snapshots = [e for e in os.scandir(folder / "snapshots") if e.is_dir()]
    except OSError:
        return None, None
    if not snapshots:
        return None, None
    newest = max(snapshots, key=lambda e: e.stat().st_mtime)
    return Path(newest.path), newest.name


def _blob_sizes(blobs: Path) -> tuple[int, int]:
    """Bytes of the blobs, following a blob that is a link (into a shared store) to its file, and
    counting each file once."""
    total = incomplete = 0
    seen: set[tuple[int, int]] = set()
    try:
        entries = list(os.scandir(blobs))
    except OSError:
        return 0, 0
    for entry in entries:
        try:
            st = entry.stat()
        except OSError:
            continue  # a dangling link
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        total += st.st_size
        if entry.name.endswith(".incomplete"):
            incomplete += st.st_size
    return total, incomplete
