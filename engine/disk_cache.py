"""Conversation KV caches saved to disk, so a long chat continues after a restart or in another process.

Each file is one cache in mlx-lm's prompt-cache format (safetensors), labelled in its metadata with the
model's identity (a digest of the weights' headers and sizes and of config.json, the quantization, the
context length, the mlx-lm version), the exact token ids whose keys and values it holds, the
conversation it was saved for ("" for a one-off request) and the precision of its keys and values
("full", or "8" when saved compressed to 8 bits). A new prompt loads the file that shares the longest
prefix with it. Files live in Hearth's cache folder, within a disk budget; the least recently used go
first.

Deleting a conversation deletes every file labelled with it, whatever model made it, from any
process, with no model loaded (forget_conversation), and records its id beside the files so that no
process still holding it in memory (the terminal, say) saves it again. A file that another conversation saved is kept
even where it shares a prefix with the deleted one: every token in it belongs to that other
conversation, which still exists. Files whose conversation cannot be told (an older Hearth's, a
damaged one) are deleted too.

An 8-bit file is an approximation of the computed keys and values, so a process that keeps full
precision (compression off and no in-memory quantization) never loads one: its greedy answers stay
exactly those a full re-read gives. A process that compresses loads both kinds (a full-precision
file only helps it).

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
FORMAT_VERSION = "2"  # 2: files name their conversation and the precision of their keys and values
SUFFIX = ".safetensors"
TMP_PREFIX = ".tmp-"
# A temporary file older than this was left by a process that died while writing.
STALE_TMP_S = 3600
# Metadata keys: mlx-lm stores the caller's metadata dict as the first item of a flattened tree.
META = "0."
FULL = "full"  # the kv_bits label of a file holding keys and values as the model computed them
MAX_HEADER_BYTES = 64 * 2**20
# Ids of deleted conversations, whose caches no process may save again (see forget_conversation).
DELETED_FILE = "deleted-conversations.json"
MAX_DELETED = 10_000


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
        # The bytes of a key or value too: float32 where the CPU backend widens 16-bit floats.
        quantization=f"{quant.get('bits', 'none')}/{quant.get('group_size', '-')}/kv{info.kv_bytes_per_value}",
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

def _read_settings() -> dict[str, Any]:
    try:
        data = json.loads((paths.config_dir() / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_budget() -> int:
    """The disk budget in bytes, from Hearth's settings; the default when unset or unreadable."""
    try:
        value = int(_read_settings()["budget_bytes"])
    except (ValueError, KeyError, TypeError):
        return DEFAULT_BUDGET_BYTES
    return max(0, value)


def write_budget(budget_bytes: int) -> None:
    _write_setting("budget_bytes", int(budget_bytes))


def read_kv_bits() -> int | None:
    """8 when saved caches are compressed to 8 bits (Settings > Data), else None (full precision)."""
    return 8 if _read_settings().get("kv_bits") == 8 else None


def write_kv_bits(bits: int | None) -> None:
    if bits not in (None, 8):
        raise ValueError("saved caches are kept at full precision or 8 bits")
    _write_setting("kv_bits", bits)


def _write_setting(key: str, value: Any) -> None:
    """Change one setting, keeping the others; the file is replaced whole, so a reader in another
    process sees the old settings or the new ones."""
    target = paths.config_dir() / SETTINGS_FILE
    data = {**_read_settings(), key: value}
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TMP_PREFIX, suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
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


def forget_conversation(conversation_id: str, deleted: bool = False) -> int:
    """Delete a conversation's saved caches: every file labelled with it (every model's), and every
    file whose conversation cannot be told (an older Hearth's, or one whose label cannot be read),
    since it may hold the conversation's keys and values. Returns how many files went. Plain file
    work: any thread, any process, no model loaded.

    deleted: the conversation itself was deleted, so no process may save a cache of it again (one
    that still has it in memory, such as the terminal, would when it leaves it or quits). Its id
    is recorded beside the files; without it (the conversation goes on, its cache was only stale)
    a later save is welcome."""
    if not conversation_id:
        raise ValueError("no conversation to forget")
    where = folder()
    count = 0
    with _locked(where):  # a save publishes its file under this lock too: it sees the record
        if deleted:
            _record_deleted(where, conversation_id)
        for path in _cache_files(where):
            try:
                label = _read_metadata(path).get(META + "conversation")
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                label = None
            if label is None or label == conversation_id:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    count += 1
    return count


def _deleted_conversations(where: Path) -> list[str]:
    try:
        data = json.loads((where / DELETED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [item for item in data if isinstance(item, str)] if isinstance(data, list) else []


def _record_deleted(where: Path, conversation_id: str) -> None:
    """Add a deleted conversation's id to the record (the most recent MAX_DELETED kept); the caller
    holds the folder's lock."""
    ids = [item for item in _deleted_conversations(where) if item != conversation_id]
    ids = (ids + [conversation_id])[-MAX_DELETED:]
    fd, tmp = tempfile.mkstemp(dir=where, prefix=TMP_PREFIX, suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(ids, f)
        os.replace(tmp, where / DELETED_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
    kv_bits: int | None = None  # 8: saved compressed; None: full precision
    conversation: str = ""


class DiskCaches:
    """The saved caches of one loaded model. Used only from the engine thread.

    save_bits: 8 saves caches compressed to 8 bits, 0 at full precision, None as the setting says
    (read_kv_bits). live_bits: the engine keeps long caches in memory at that many bits; such a
    process accepts 8-bit files even when it saves at full precision."""

    def __init__(self, identity: ModelIdentity, num_layers: int, budget_bytes: int | None = None,
                 save_bits: int | None = None, live_bits: int | None = None) -> None:
        self.identity = identity
        self.num_layers = num_layers
        self._budget = budget_bytes
        self._save_bits = save_bits
        self.live_bits = live_bits
        # path name -> (mtime_ns, size, the file's label): headers are read once per version of a file.
        self._seen: dict[str, tuple[int, int, SavedCache]] = {}
        self._fault_logged = False

    @property
    def budget_bytes(self) -> int:
        return self._budget if self._budget is not None else read_budget()

    @property
    def save_bits(self) -> int | None:
        """8 when caches are saved compressed, None at full precision."""
        if self._save_bits is not None:
            return self._save_bits or None
        return read_kv_bits()

    def accepts(self, kv_bits: int | None) -> bool:
        """Whether a file of that precision may be loaded: an 8-bit one only where this process
        compresses caches itself (on disk or in memory)."""
        return kv_bits is None or bool(self.save_bits or self.live_bits)

    def saved(self) -> list[SavedCache]:
        """This model's saved caches that this process may load; damaged or foreign files met on the
        way are deleted (8-bit files a full-precision process skips are left for others)."""
        where = folder()
        found = []
        for path in _cache_files(where):
            if path.name.startswith(self.identity.key + "-"):
                saved = self._label_of(path)
                if saved is not None and self.accepts(saved.kv_bits):
                    found.append(saved)
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

    def save(self, cache: list[Any], ids: list[int], conversation: str = "") -> Path | None:
        """Write a cache holding exactly `ids`, labelled with its conversation; None when nothing was
        written (already saved, over the budget, or a fault, which is logged once).

        A file that already serves every prefix of ids is kept instead, whichever conversation it
        was saved for: then every id here is in that conversation too."""
        if not ids or _cache_length(cache) != len(ids):
            return None
        existing = self.saved()
        for saved in existing:
            if saved.ids[: len(ids)] == tuple(ids):  # a saved file already serves every prefix of ids
                with contextlib.suppress(OSError):
                    os.utime(saved.path)
                return None
        trimmed = _trimmed(cache, self.save_bits)
        budget = self.budget_bytes
        if sum(_layer_bytes(layer) for layer in trimmed) > budget:
            return None
        try:
            path = self._write(trimmed, ids, conversation)
        except OSError as exc:
            self.log_fault(exc)
            return None
        if path is None:
            return None
        for saved in existing:
            if _superseded(saved.ids, ids) and saved.path != path:
                with contextlib.suppress(OSError):
                    saved.path.unlink()
        evict(budget, keep=path)
        return path

    def _write(self, trimmed: list[Any], ids: list[int], conversation: str) -> Path | None:
        """The written file, or None where its conversation was deleted meanwhile."""
        from mlx_lm.models.cache import save_prompt_cache

        where = folder()
        target = where / f"{self.identity.key}-{_ids_digest(ids)}{SUFFIX}"
        bits = _bits_of(trimmed)
        metadata = {**self.identity.metadata(), "token_ids": json.dumps(ids, separators=(",", ":")),
                    "ids_digest": _ids_digest(ids), "conversation": conversation,
                    "kv_bits": str(bits) if bits else FULL}
        # mlx names the file itself (it adds .safetensors), so reserve a unique name and write over it.
        fd, tmp = tempfile.mkstemp(dir=where, prefix=TMP_PREFIX, suffix=SUFFIX)
        os.close(fd)
        try:
            save_prompt_cache(tmp, trimmed, metadata)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            with _locked(where):  # no forget_conversation between the check and the rename
                if conversation and conversation in _deleted_conversations(where):
                    os.unlink(tmp)
                    return None
                os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, RuntimeError) and not isinstance(exc, OSError):
                raise _as_os_error(exc, tmp) from exc
            raise
        return target

    def _label_of(self, path: Path) -> SavedCache | None:
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
        bits = metadata[META + "kv_bits"]
        saved = SavedCache(path, ids, None if bits == FULL else int(bits), metadata[META + "conversation"])
        self._seen[path.name] = (info.st_mtime_ns, info.st_size, saved)
        return saved

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
    if metadata.get(META + "kv_bits") not in (FULL, "8") or META + "conversation" not in metadata:
        return "damaged (its label lacks the precision or the conversation)"
    return None


def _check_loaded(cache: list[Any], metadata: dict[str, str], identity: ModelIdentity,
                  ids: tuple[int, ...], num_layers: int) -> None:
    if metadata.get("identity") != identity.key or metadata.get("ids_digest") != _ids_digest(ids):
        raise ValueError("its label changed while it was read")
    if len(cache) != num_layers:
        raise ValueError(f"{len(cache)} layers, the model has {num_layers}")
    if any(int(getattr(layer, "offset", -1)) != len(ids) or _positions(layer) < len(ids)
           for layer in cache):
        raise ValueError("its keys and values do not cover its token ids")
    if str(_bits_of(cache) or FULL) != metadata.get("kv_bits"):
        raise ValueError("its keys and values are not of the precision its label says")


def _positions(layer: Any) -> int:
    """How many positions a layer's buffers hold (a quantized layer keeps its keys as three arrays: a list once loaded)."""
    keys = layer.keys[0] if isinstance(layer.keys, (list, tuple)) else layer.keys
    return int(keys.shape[-2])


def _bits_of(cache: list[Any]) -> int | None:
    """8 when the layers are quantized (mlx-lm's QuantizedKVCache), None at full precision."""
    bits = {getattr(layer, "bits", None) for layer in cache}
    if len(bits) > 1:
        raise ValueError("its layers are of mixed precision")
    return bits.pop() if bits else None


def _cache_length(cache: list[Any]) -> int:
    return int(getattr(cache[0], "offset", 0)) if cache else 0


def _trimmed(cache: list[Any], bits: int | None = None) -> list[Any]:
    """Copies of the layers holding only the first `offset` positions, quantized to `bits` if given
    (layers already quantized in memory stay as they are).

    mlx-lm's KVCache keeps room for up to 255 more positions (and whatever a trim left behind) and
    saves all of it; only the positions in use are worth disk space."""
    from mlx_lm.models.cache import KVCache, QuantizedKVCache

    from .kv_cache import quantized

    out = []
    for layer in cache:
        if layer.keys is None or not isinstance(layer, (KVCache, QuantizedKVCache)):
            out.append(layer)
            continue
        n = layer.offset
        if isinstance(layer, QuantizedKVCache):
            copy = QuantizedKVCache(group_size=layer.group_size, bits=layer.bits)
            copy.keys = tuple(a[..., :n, :] for a in layer.keys)
            copy.values = tuple(a[..., :n, :] for a in layer.values)
        else:
            copy = KVCache()
            copy.keys, copy.values = layer.keys[..., :n, :], layer.values[..., :n, :]
        copy.offset = n
        out.append(copy)
    return quantized(out, bits) if bits else out


def _layer_bytes(layer: Any) -> int:
    total = 0
    for part in (getattr(layer, "keys", None), getattr(layer, "values", None)):
        for array in part if isinstance(part, (list, tuple)) else (part,):
            total += getattr(array, "nbytes", 0)
    return total


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
