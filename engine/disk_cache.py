"""Conversation KV caches saved to disk, so a long chat continues after a restart or in another process.

Each file is one cache in mlx-lm's prompt-cache format (safetensors), labelled in its metadata with the
model's identity (a digest of the weights' headers and sizes and of config.json, the quantization, the
context length, the mlx-lm version) and the exact token ids whose keys and values it holds. A new
prompt loads the file that shares the longest prefix with it. Files live in Hearth's cache folder,
within a disk budget; the least recently used go first.

Two Hearth processes (the app and the terminal) use the folder at once: files are written to a
temporary name and renamed, so a reader sees a whole file or none; eviction holds a file lock so two
processes never both trim the folder. A file that is damaged, or claims this model's name but was made
by another model or version, is deleted with one log line. A fault (read-only folder, full disk) costs
only the saved cache: it is logged once and the chat goes on.

MLX work here (saving, loading) runs on the engine thread; listing and eviction are plain file work.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .kv_cache import common_prefix_length
from .model_folder import ModelInfo

log = logging.getLogger(__name__)

FOLDER = "kv-caches"
SETTINGS_FILE = "kv-cache.json"
DEFAULT_BUDGET_BYTES = 10 * 10**9
FORMAT_VERSION = "1"
SUFFIX = ".safetensors"
TMP_PREFIX = ".tmp-"
# A temporary file older than this was left by a process that died while writing.
STALE_TMP_S = 3600
# Metadata keys: mlx-lm stores the caller's metadata dict as the first item of a flattened tree.
META = "0."
MAX_HEADER_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ModelIdentity:
    """What must match for a saved cache to be valid for a loaded model."""

    weights_digest: str
    quantization: str
    context_length: int
    mlx_lm_version: str
    name: str  # the model's folder or repo id: to tell a stale file of this model from another's

    @property
    def key(self) -> str:
        text = json.dumps([FORMAT_VERSION, self.weights_digest, self.quantization, self.context_length,
                           self.mlx_lm_version])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def metadata(self) -> dict[str, str]:
        return {"hearth_format": FORMAT_VERSION, "weights_digest": self.weights_digest,
                "quantization": self.quantization, "context_length": str(self.context_length),
                "mlx_lm_version": self.mlx_lm_version, "model": self.name, "identity": self.key}


def model_identity(info: ModelInfo, context_length: int) -> ModelIdentity:
    """The identity of a model folder, from its config, its weights' headers and sizes, and samples
    of the weights themselves: a fine-tune has the same headers and sizes as its base model."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for path in sorted(info.path.glob("model*.safetensors")) + [info.path / "config.json"]:
        digest.update(path.name.encode() + b"\0")
        digest.update(str(path.stat().st_size).encode() + b"\0")
        if path.suffix == SUFFIX:
            digest.update(_safetensors_header(path))
            digest.update(_samples(path))
        else:
            digest.update(path.read_bytes())
    quant = info.quantization or {}
    return ModelIdentity(
        weights_digest=digest.hexdigest(),
        quantization=f"{quant.get('bits', 'none')}/{quant.get('group_size', '-')}",
        context_length=context_length,
        mlx_lm_version=version("mlx-lm"),
        name=info.ref,
    )


def _samples(path: Path, count: int = 16, size: int = 4096) -> bytes:
    """`count` evenly spaced slices of a file: 64 KiB read, whatever the model's size."""
    length = path.stat().st_size
    out = bytearray()
    with open(path, "rb") as f:
        for i in range(count):
            f.seek(max(0, length - size) * i // max(1, count - 1))
            out += f.read(size)
    return bytes(out)


def _safetensors_header(path: Path) -> bytes:
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError("truncated")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise ValueError("header too large")
        header = f.read(length)
        if len(header) < length:
            raise ValueError("truncated header")
        return header


# --- the budget (a setting shared by the app and the terminal) ---

def read_budget() -> int:
    """The disk budget in bytes, from Hearth's settings; the default when unset or unreadable."""
    try:
        data = json.loads((paths.config_dir() / SETTINGS_FILE).read_text(encoding="utf-8"))
        value = int(data["budget_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_BUDGET_BYTES
    return max(0, value)


def write_budget(budget_bytes: int) -> None:
    target = paths.config_dir() / SETTINGS_FILE
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TMP_PREFIX, suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"budget_bytes": int(budget_bytes)}, f)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def folder() -> Path:
    path = paths.cache_dir() / FOLDER
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cache_files(where: Path) -> list[Path]:
    try:
        return [p for p in where.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith(".")]
    except FileNotFoundError:
        return []


def total_bytes() -> int:
    """Bytes the saved caches take, every model's."""
    return sum(_size(p) for p in _cache_files(folder()))


def clear() -> int:
    """Delete every saved cache; returns the bytes freed. Files another process is reading stay
    readable to it until it closes them (POSIX)."""
    freed = 0
    with _locked(folder()):
        for path in _cache_files(folder()):
            size = _size(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                freed += size
    return freed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@contextlib.contextmanager
def _locked(where: Path) -> Iterator[None]:
    """One process at a time trims or clears the folder; readers and writers need no lock."""
    with open(where / ".lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


# --- one model's saved caches ---

@dataclass(frozen=True)
class SavedCache:
    path: Path
    ids: tuple[int, ...]


class DiskCaches:
    """The saved caches of one loaded model. Used only from the engine thread."""

    def __init__(self, identity: ModelIdentity, num_layers: int, budget_bytes: int | None = None) -> None:
        self.identity = identity
        self.num_layers = num_layers
        self._budget = budget_bytes
        # path name -> (mtime_ns, size, ids): headers are read once per version of a file.
        self._seen: dict[str, tuple[int, int, tuple[int, ...]]] = {}
        self._fault_logged = False

    @property
    def budget_bytes(self) -> int:
        return self._budget if self._budget is not None else read_budget()

    def saved(self) -> list[SavedCache]:
        """This model's saved caches; damaged or foreign files met on the way are deleted."""
        where = folder()
        found = []
        for path in _cache_files(where):
            if path.name.startswith(self.identity.key + "-"):
                ids = self._ids_of(path)
                if ids is not None:
                    found.append(SavedCache(path, ids))
        return found

    def best(self, ids: list[int]) -> tuple[SavedCache | None, int]:
        """The saved cache sharing the longest prefix with ids, and how many ids it can serve.

        At least one id must still be fed, so the shared part stops one short of the whole prompt."""
        best, best_shared = None, 0
        for saved in self.saved():
            shared = min(common_prefix_length(list(saved.ids), ids), len(ids) - 1)
            if shared > best_shared:
                best, best_shared = saved, shared
        if best is None or not _worth_loading(best_shared, len(best.ids)):
            return None, 0
        return best, best_shared

    def load(self, saved: SavedCache) -> list[Any] | None:
        """The cache in a saved file, or None if it vanished or is damaged (then it is deleted)."""
        from mlx_lm.models.cache import load_prompt_cache

        try:
            cache, metadata = load_prompt_cache(str(saved.path), return_metadata=True)
            _check_loaded(cache, metadata, self.identity, saved.ids, self.num_layers)
        except Exception as exc:  # noqa: BLE001 - any failure to read it means it cannot be used
            if saved.path.exists():  # else another process evicted it meanwhile (mlx says RuntimeError)
                self._delete(saved.path, f"damaged ({exc})")
            return None
        with contextlib.suppress(OSError):
            os.utime(saved.path)  # most recently used: the last to be evicted
        return cache

    def save(self, cache: list[Any], ids: list[int]) -> Path | None:
        """Write a cache holding exactly `ids`; None when nothing was written (already saved,
        over the budget, or a fault, which is logged once)."""
        if not ids or _cache_length(cache) != len(ids):
            return None
        existing = self.saved()
        for saved in existing:
            if saved.ids[: len(ids)] == tuple(ids):  # a saved file already serves every prefix of ids
                with contextlib.suppress(OSError):
                    os.utime(saved.path)
                return None
        trimmed = _trimmed(cache)
        budget = self.budget_bytes
        if sum(_layer_bytes(layer) for layer in trimmed) > budget:
            return None
        try:
            path = self._write(trimmed, ids)
        except OSError as exc:
            self.log_fault(exc)
            return None
        for saved in existing:
            if _superseded(saved.ids, ids) and saved.path != path:
                with contextlib.suppress(OSError):
                    saved.path.unlink()
        evict(budget, keep=path)
        return path

    def delete_related(self, ids: list[int]) -> None:
        """Delete the saved states of a conversation that was deleted: files holding a prefix of its
        ids or extending them (its keys and values are derived from what the user wrote)."""
        try:
            for saved in self.saved():
                n = min(len(saved.ids), len(ids))
                if n and tuple(ids[:n]) == saved.ids[:n]:
                    with contextlib.suppress(OSError):
                        saved.path.unlink()
        except OSError as exc:
            self.log_fault(exc)

    def _write(self, trimmed: list[Any], ids: list[int]) -> Path:
        from mlx_lm.models.cache import save_prompt_cache

        where = folder()
        target = where / f"{self.identity.key}-{_ids_digest(ids)}{SUFFIX}"
        metadata = {**self.identity.metadata(), "token_ids": json.dumps(ids, separators=(",", ":")),
                    "ids_digest": _ids_digest(ids)}
        # mlx names the file itself (it adds .safetensors), so reserve a unique name and write over it.
        fd, tmp = tempfile.mkstemp(dir=where, prefix=TMP_PREFIX, suffix=SUFFIX)
        os.close(fd)
        try:
            save_prompt_cache(tmp, trimmed, metadata)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, RuntimeError) and not isinstance(exc, OSError):
                raise _as_os_error(exc, tmp) from exc
            raise
        return target

    def _ids_of(self, path: Path) -> tuple[int, ...] | None:
        try:
            info = path.stat()
        except OSError:
            return None
        seen = self._seen.get(path.name)
        if seen is not None and seen[:2] == (info.st_mtime_ns, info.st_size):
            return seen[2]
        try:
            metadata = _read_metadata(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._delete(path, f"damaged ({exc})")
            return None
        problem = _label_problem(metadata, self.identity)
        if problem:
            self._delete(path, problem)
            return None
        ids = tuple(json.loads(metadata[META + "token_ids"]))
        self._seen[path.name] = (info.st_mtime_ns, info.st_size, ids)
        return ids

    def _delete(self, path: Path, why: str) -> None:
        log.warning("deleted the saved conversation cache %s: %s", path.name, why)
        self._seen.pop(path.name, None)
        with contextlib.suppress(OSError):
            path.unlink()

    def log_fault(self, exc: Exception) -> None:
        """One log line per model for faults of the cache folder (read-only, full disk, ...)."""
        if not self._fault_logged:
            reason = _fault_reason(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            log.warning("conversation caches are not saved to disk: %s", reason)
            self._fault_logged = True


def evict(budget_bytes: int, keep: Path | None = None) -> None:
    """Delete the least recently used saved caches (every model's) until they fit the budget."""
    where = folder()
    with _locked(where):
        _remove_stale_temporaries(where)
        files = []
        for path in _cache_files(where):
            with contextlib.suppress(OSError):
                info = path.stat()
                files.append((info.st_mtime_ns, info.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= budget_bytes:
                break
            if path == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size


def _remove_stale_temporaries(where: Path) -> None:
    now = time.time()
    for path in where.glob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_TMP_S:
                path.unlink()


def _worth_loading(shared: int, saved_length: int) -> bool:
    # Reading a saved token costs far less than computing it, but a file that shares only its first
    # few ids (a BOS, a system prompt) with the prompt is mostly read for nothing.
    return shared >= 1 and shared * 8 >= saved_length


def _superseded(old: tuple[int, ...], new: list[int]) -> bool:
    """Whether a saved file adds too little beside a new one to keep: the new one serves every
    prompt it served but for a short tail, typically the earlier state of the same conversation
    (whose answer the next prompt re-encodes, so its generated ids rarely match exactly)."""
    return len(old) - common_prefix_length(list(old), new) <= len(old) // 8


def _ids_digest(ids: list[int] | tuple[int, ...]) -> str:
    return hashlib.sha256(json.dumps(list(ids), separators=(",", ":")).encode()).hexdigest()[:16]


def _read_metadata(path: Path) -> dict[str, str]:
    header = json.loads(_safetensors_header(path))
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        raise ValueError("no metadata")
    return metadata


def _label_problem(metadata: dict[str, str], identity: ModelIdentity) -> str | None:
    """Why a file named for this model cannot be used, or None."""
    if metadata.get(META + "hearth_format") != FORMAT_VERSION:
        return "written by another version of Hearth"
    for key, expected in identity.metadata().items():
        if key != "model" and metadata.get(META + key) != expected:
            return f"made by another model or version ({key} differs)"
    try:
        ids = json.loads(metadata[META + "token_ids"])
    except (KeyError, ValueError) as exc:
        return f"damaged (token ids unreadable: {exc})"
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids) or \
            metadata.get(META + "ids_digest") != _ids_digest(ids):
        return "damaged (token ids do not match their digest)"
    return None


def _check_loaded(cache: list[Any], metadata: dict[str, str], identity: ModelIdentity,
                  ids: tuple[int, ...], num_layers: int) -> None:
    if metadata.get("identity") != identity.key or metadata.get("ids_digest") != _ids_digest(ids):
        raise ValueError("its label changed while it was read")
    if len(cache) != num_layers:
        raise ValueError(f"{len(cache)} layers, the model has {num_layers}")
    if any(int(getattr(layer, "offset", -1)) != len(ids) or layer.keys.shape[-2] < len(ids)
           for layer in cache):
        raise ValueError("its keys and values do not cover its token ids")


def _cache_length(cache: list[Any]) -> int:
    return int(getattr(cache[0], "offset", 0)) if cache else 0


def _trimmed(cache: list[Any]) -> list[Any]:
    """Copies of the layers holding only the first `offset` positions.

    mlx-lm's KVCache keeps room for up to 255 more positions (and whatever a trim left behind) and
    saves all of it; only the positions in use are worth disk space."""
    from mlx_lm.models.cache import KVCache

    out = []
    for layer in cache:
        if not isinstance(layer, KVCache) or layer.keys is None:
            out.append(layer)
            continue
        copy = KVCache()
        copy.keys = layer.keys[..., : layer.offset, :]
        copy.values = layer.values[..., : layer.offset, :]
        copy.offset = layer.offset
        out.append(copy)
    return out


def _layer_bytes(layer: Any) -> int:
    keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
    return sum(getattr(a, "nbytes", 0) for a in (keys, values) if a is not None)


def _fault_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "the disk is full"
    if exc.errno == errno.EROFS:
        return "the cache folder is on a read-only disk"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied on the cache folder"
    return exc.strerror or str(exc)


def _as_os_error(exc: RuntimeError, tmp: str) -> OSError:
    """mlx reports a failed write as RuntimeError; a full disk is the usual reason."""
    try:
        free = os.statvfs(os.path.dirname(tmp)).f_bavail
    except OSError:
        free = 1
    code = errno.ENOSPC if free == 0 else errno.EIO
    return OSError(code, str(exc))
