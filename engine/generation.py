"""One request's generation, run on the engine thread: prompt, cache reuse, sampling, streaming.

Everything here touches MLX and so must only ever run on the engine thread (see engine.engine).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .disk_cache import DiskCaches
from .errors import HearthError
from .events import Event, Finished, PromptProgress, PromptReady, TextChunk
from .kv_cache import (
    CachedConversation,
    ConversationCaches,
    cache_length,
    common_prefix_length,
    quant_group_size,
    quantize_long,
    reuse_cache,
)
from .model_folder import ModelInfo
from .prompts import Prompt, PromptFormat, build_prompt
from .sampling import SamplingSettings, make_logits_processors, make_sampler
from .speculative import DraftCounts, DraftStats, lookup_generate_step, wants_lookup
from .tokenizer import Tokenizer


@dataclass
class LoadedModel:
    info: ModelInfo
    model: Any = field(repr=False)
    tokenizer: Tokenizer
    context_length: int
    prompt_format: PromptFormat
    draft_stats: DraftStats = field(default_factory=DraftStats)
    draft_model: Any = field(default=None, repr=False)  # a small model with the same tokenizer
    draft_name: str = ""
    kv_bits: int | None = None  # keep caches of at least kv_start positions at this many bits
    kv_start: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict[str, Any]]
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    conversation_id: str | None = None
    prompt_format: str | None = None  # overrides the model's format for this request
    continue_answer: bool = False  # the last message is a partial answer to go on with
    draft: str = "auto"  # speculative decoding: auto, lookup (prompt lookup), model (the draft model) or off


class Cancelled(Exception):
    """Raised inside generation when the caller's cancel flag is set."""


class StopStrings:
    """Finds stop strings across chunk boundaries and holds back text that may start one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to show now, and whether a stop string was reached."""
        if not self.stops:
            return text, False
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[: min(hits)], ""
            return out, True
        hold = self._partial_suffix()
        cut = len(self.pending) - hold
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out

    def _partial_suffix(self) -> int:
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), longest, -1):
                if self.pending.endswith(stop[:n]):
                    longest = n
                    break
        return longest


class _Run:
    """The state of one generation, so the loop below stays short."""

    def __init__(self, request_id: int, emit: Callable[[Event], None], cancel) -> None:
        self.request_id = request_id
        self.emit = emit
        self.cancel = cancel
        self.text_parts: list[str] = []
        self.generated: list[int] = []
        self.start = time.perf_counter()
        self.first_token_at: float | None = None
        self.end: float | None = None
        self.cache_source = "none"
        self.draft = DraftCounts()

    def send_text(self, text: str) -> None:
        if text:
            self.text_parts.append(text)
            self.emit(TextChunk(self.request_id, text))

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()


def generate(
    loaded: LoadedModel,
    request: GenerationRequest,
    request_id: int,
    caches: ConversationCaches,
    cancel,
    emit: Callable[[Event], None],
    prefill_step_size: int,
    disk: DiskCaches | None = None,
) -> Finished:
    import mlx.core as mx
    from mlx_lm.generate import generate_step, wired_limit

    settings = request.sampling
    fmt = PromptFormat(request.prompt_format) if request.prompt_format else loaded.prompt_format
    if request.draft == "model" and loaded.draft_model is None:
        raise HearthError("No draft model is loaded; load one with the model (--draft MODEL).")
    prompt = build_prompt(
        loaded.tokenizer, request.messages, fmt, loaded.context_length, settings.max_tokens,
        continuing=request.continue_answer,
    )
    run = _Run(request_id, emit, cancel)  # time to first token includes reading a saved cache
    key = request.conversation_id
    cache, reused, run.cache_source = _acquire_cache(loaded, caches.take(key) if key else None, disk,
                                                     prompt.ids)
    quantize_long(cache, loaded.kv_bits, loaded.kv_start)
    emit(PromptReady(request_id, len(prompt.ids), reused, prompt.context_length, prompt.max_tokens,
                     list(prompt.dropped_messages)))
    seed = settings.seed if settings.seed is not None else random.randrange(2**31)
    mx.random.seed(seed)
    mx.reset_peak_memory()

    def on_prefill(processed: int, total: int) -> None:
        emit(PromptProgress(request_id, reused + processed, reused + total))
        run.check_cancel()

    sampler = make_sampler(settings, loaded.info.vocab_size)
    draft_model = loaded.draft_model if request.draft == "model" else None
    if draft_model is not None or wants_lookup(request.draft, loaded.draft_stats):
        steps = lookup_generate_step(
            prompt.ids[reused:], loaded.model, cache=cache, context=prompt.ids,
            max_tokens=prompt.max_tokens, sampler=sampler,
            processors_for=lambda earlier: make_logits_processors(settings, earlier),
            prefill_step_size=prefill_step_size, progress=on_prefill, counts=run.draft,
            stats=loaded.draft_stats, draft_model=draft_model,
        )
    else:
        steps = generate_step(
            mx.array(prompt.ids[reused:]),
            loaded.model,
            max_tokens=prompt.max_tokens,
            sampler=sampler,
            logits_processors=make_logits_processors(settings, prompt.ids[:reused]),
            prompt_cache=cache,
            prompt_progress_callback=on_prefill,
            prefill_step_size=prefill_step_size,
            **_kv_quantization(loaded),
        )
    reason, error = "error", None
    try:
        with wired_limit(loaded.model):
            reason = _stream(run, steps, loaded.tokenizer, settings, request.continue_answer)
    except Cancelled:
        reason = "cancelled"
    except Exception as exc:  # reported with the text so far; the engine thread carries on
        error = exc
    finally:
        steps.close()  # on this thread, the one that made the generator
        run.end = time.perf_counter()
        _keep_cache(caches, key, cache, prompt.ids + run.generated, keep=reason != "error")
        quantize_long(cache, loaded.kv_bits, loaded.kv_start)
    finished = _finished(run, reason, prompt, reused, seed, mx.get_peak_memory())
    if error is not None:
        finished = replace(finished, error=f"Generation failed: {error}", error_kind=type(error).__name__)
    return finished


def _stream(run: _Run, steps, tokenizer: Tokenizer, settings: SamplingSettings, continuing: bool) -> str:
    # A continued answer keeps the space its first new word carries.
    detokenizer = tokenizer.detokenizer(strip_leading_space=not continuing)
    stops = StopStrings(settings.stop)
    for token, _logprobs in steps:
        if run.first_token_at is None:
            run.first_token_at = time.perf_counter()
        run.generated.append(token)
        if token in tokenizer.eos_ids:
            run.send_text(stops.feed(detokenizer.flush())[0] + stops.flush())
            return "stop"
        text, hit = stops.feed(detokenizer.add(token))
        run.send_text(text)
        if hit:
            return "stop"
        run.check_cancel()
    run.send_text(stops.feed(detokenizer.flush())[0] + stops.flush())
    return "length"


def _acquire_cache(loaded: LoadedModel, entry: CachedConversation | None, disk: DiskCaches | None,
                   ids: list[int]) -> tuple[list, int, str]:
    """A cache ready for ids, how many of them it holds, and where it came from (memory, disk, none).

    The conversation's cache in memory is used unless a saved one shares a longer prefix (after a
    restart, an eviction, or a turn another process answered)."""
    in_memory = 0
    if entry is not None:
        in_memory = min(common_prefix_length(entry.ids, ids), len(ids) - 1)
    source = "memory"
    if disk is not None:
        try:
            saved, shared = disk.best(ids)
            if saved is not None and shared > in_memory:
                restored = disk.load(saved)
                if restored is not None:
                    entry, source = CachedConversation(restored, list(saved.ids)), "disk"
        except Exception as exc:  # noqa: BLE001 - a saved cache is only ever a shortcut: compute instead
            disk.log_fault(exc)
    cache, reused = reuse_cache(loaded.model, entry, ids)
    return cache, reused, source if reused else "none"


def _keep_cache(caches: ConversationCaches, key: str | None, cache: list, ids: list[int],
                keep: bool) -> None:
    """Put the conversation's cache back, labelled with exactly the ids it now holds. A request
    outside any conversation leaves its cache to be saved to disk, then freed."""
    held = cache_length(cache)
    if keep and 0 < held <= len(ids):
        entry = CachedConversation(cache, ids[:held], key or "")
        if key:
            caches.put(key, entry)
        else:
            caches.evicted.append(entry)


def _kv_quantization(loaded: LoadedModel) -> dict[str, Any]:
    """generate_step's arguments that quantize the cache once it holds kv_start positions, also in
    the middle of a long prompt; none where the model's key width has no quantization group."""
    head_dim = getattr(getattr(loaded.model.layers[0], "self_attn", None), "head_dim", None) \
        if loaded.kv_bits and hasattr(loaded.model, "layers") else None
    group = quant_group_size(head_dim) if isinstance(head_dim, int) else None
    if group is None:
        return {}
    return {"kv_bits": loaded.kv_bits, "kv_group_size": group, "quantized_kv_start": loaded.kv_start}


def _finished(run: _Run, reason: str, prompt: Prompt, reused: int, seed: int, peak: int) -> Finished:
    fed = len(prompt.ids) - reused
    ttft = (run.first_token_at - run.start) if run.first_token_at else 0.0
    gen_time = (run.end - run.first_token_at) if run.first_token_at else 0.0
    return Finished(
        run.request_id,
        finish_reason=reason,
        text="".join(run.text_parts),
        token_ids=list(run.generated),
        prompt_tokens=len(prompt.ids),
        reused_tokens=reused,
        cache_source=run.cache_source,
        draft_accepted=run.draft.accepted,
        draft_proposed=run.draft.proposed,
        generation_tokens=len(run.generated),
        ttft_s=ttft,
        prompt_tps=fed / ttft if ttft > 0 else 0.0,
        generation_tps=len(run.generated) / gen_time if gen_time > 0 else 0.0,
        peak_memory_gb=peak / 1e9,
        dropped_messages=list(prompt.dropped_messages),
        seed=seed,
    )
