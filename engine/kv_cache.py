"""Per-conversation KV caches kept between turns, within a memory budget.

Each entry holds a cache and the exact token ids whose keys and values it holds. A new turn feeds
only the ids after the longest common prefix; an edited or regenerated earlier turn trims the cache
back to the shared prefix. Least recently used conversations are evicted first; evicted caches wait
in `evicted` until the engine saves them to disk (engine.disk_cache). MLX objects here are touched
only by the engine thread.

Long caches can be kept at 8 bits (mlx-lm's QuantizedKVCache, as its generate_step does with
kv_bits and quantized_kv_start): about 0.28 of float32's bytes (0.53 of float16's) per token, and an
approximation of the computed keys and values (bench/kv_quantized.py measures what it changes).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass
class CachedConversation:
    cache: list[Any]
    ids: list[int]
    conversation: str = ""  # whose cache it is ("" for a one-off request): saved files say so

    @property
    def nbytes(self) -> int:
        return sum(getattr(layer, "nbytes", 0) for layer in self.cache)


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class ConversationCaches:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, CachedConversation] = OrderedDict()
        self.evicted: list[CachedConversation] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        """Conversation ids, least recently used first."""
        return list(self._entries)

    def get(self, key: str) -> CachedConversation | None:
        return self._entries.get(key)

    def take(self, key: str) -> CachedConversation | None:
        """Remove and return a conversation's cache; it is put back after the turn succeeds."""
        return self._entries.pop(key, None)

    def put(self, key: str, entry: CachedConversation) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._evict(keep=key)

    def drop(self, key: str) -> None:
        """Forget a conversation's cache, including one evicted and not yet saved."""
        self._entries.pop(key, None)
        self.evicted = [entry for entry in self.evicted if entry.conversation != key]

    def clear(self) -> None:
        self._entries.clear()
        self.evicted = []

    def take_all(self) -> list[CachedConversation]:
        """Every cache, evicted ones first and the most recently used last; none are left."""
        entries = self.evicted + list(self._entries.values())
        self.clear()
        return entries

    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def _evict(self, keep: str) -> None:
        # The conversation just used stays even over budget: it is the one most likely to continue.
        while self.total_bytes() > self.budget_bytes and len(self._entries) > 1:
            oldest = next(iter(self._entries))
            if oldest == keep:
                break
            self.evicted.append(self._entries.pop(oldest))


def reuse_cache(model: Any, entry: CachedConversation | None, new_ids: list[int]) -> tuple[list[Any], int]:
    """A cache ready for `new_ids`, and how many leading ids it already holds."""
    from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

    if entry is None or not can_trim_prompt_cache(entry.cache):
        return make_prompt_cache(model), 0
    # At least one id must be fed to get the next token's logits.
    shared = min(common_prefix_length(entry.ids, new_ids), len(new_ids) - 1)
    excess = len(entry.ids) - shared
    if excess:
        trim_prompt_cache(entry.cache, excess)
    return entry.cache, shared


def cache_length(cache: list[Any]) -> int:
    return int(getattr(cache[0], "offset", 0)) if cache else 0


def quant_group_size(head_dim: int) -> int | None:
    """The quantization group for keys and values of this width (mx.quantize needs it to divide the
    width), or None where none fits."""
    return next((group for group in (64, 32) if head_dim % group == 0), None)


def quantized(cache: list[Any], bits: int) -> list[Any]:
    """The layers at `bits` bits; unchanged where any layer cannot be quantized, so a cache is all of
    one precision."""
    from mlx_lm.models.cache import KVCache, QuantizedKVCache

    if all(isinstance(layer, QuantizedKVCache) for layer in cache):
        return cache
    out = []
    for layer in cache:
        if isinstance(layer, QuantizedKVCache):
            out.append(layer)
            continue
        group = quant_group_size(int(layer.keys.shape[-1])) if getattr(layer, "keys", None) is not None \
            else None
        if not isinstance(layer, KVCache) or group is None:
            return cache
        out.append(layer.to_quantized(group_size=group, bits=bits))
    return out


def quantize_long(cache: list[Any], bits: int | None, start: int) -> None:
    """Replace, in place, a cache holding at least `start` positions by its `bits`-bit version."""
    if bits and cache and cache_length(cache) >= start:
        cache[:] = quantized(cache, bits)
