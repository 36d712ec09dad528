"""Speculative decoding (prompt lookup, or a small draft model), with a switch that measures
whether it pays.

A draft is the few ids that followed the most recent earlier occurrence of the conversation's last
n-gram (answers that quote or edit the prompt repeat long runs of it). One forward pass over the last
id plus the draft checks them all: the model's own choice at each position is kept while it agrees
with the draft, and its choice at the first disagreement is the next id. Greedy output is therefore
the model's own; sampled output keeps its distribution, because a drafted id is accepted exactly when
the model samples it (for a draft that is one fixed id, that is the speculative-sampling rule). A
draft model (ModelDrafter) drafts greedily, so the same holds.

Whether it pays depends on the hardware: on Metal (and MLX's CUDA backend) a pass over k ids costs
little more than one; on MLX's CPU backend it costs about k times one, so drafting can only lose.
The loop times its plain and drafted passes; when drafting does not pay it hands the rest of the
answer to mlx-lm's pipelined generate_step, and remembers per model (DraftStats) when batched passes
cost too much for drafting ever to pay, so later answers skip it.

Runs on the engine thread only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

DRAFT_TOKENS = 3  # ids checked per drafted pass at first (the pass feeds one more)
MAX_DRAFT_TOKENS = 8  # after fully accepted drafts the length grows up to this; it shrinks after misses
# The first drafted pass of an answer checks one id: where a pass over two ids costs two passes (MLX's
# CPU backend) that is all the switch loses before it turns drafting off.
TRIAL_DRAFT_TOKENS = 1
NGRAM_SIZES = (3, 2, 1)  # the longest match first; one id as the last resort (after an edit)
PLAIN_SAMPLES = 2  # plain passes timed before the first drafted one
DRAFTLESS_LIMIT = 8  # plain passes in a row without a draft before giving up on drafting
MIN_DRAFTED_PASSES = 3  # drafted passes before acceptance decides
# A drafted pass over k+1 ids costing more than this share of k+1 plain passes cannot pay enough to
# cover the timing and synchronisation it needs, even if every drafted id is accepted.
TOO_COSTLY = 0.8


@dataclass
class DraftStats:
    """Per loaded model: what drafting cost in earlier answers."""

    costly_answers: int = 0  # answers whose drafted passes cost nearly k plain passes

    @property
    def never_pays(self) -> bool:
        return self.costly_answers >= 1


@dataclass
class DraftCounts:
    """One answer's drafting figures."""

    proposed: int = 0
    accepted: int = 0
    passes: int = 0  # forward passes of the model while drafting was on
    switched_off: str = ""  # why drafting stopped in this answer, if it did
    plain_s: list[float] = field(default_factory=list)
    drafted: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds, ids fed, produced)


def can_draft_for(draft: Any, target: Any) -> bool:
    """Whether a model with tokenizer `draft` can draft for one with tokenizer `target`: every id
    must mean the same bytes and end an answer alike, or its drafts would be other text."""
    return (draft.token_bytes, draft.eos_ids) == (target.token_bytes, target.eos_ids)


def wants_lookup(mode: str, stats: DraftStats) -> bool:
    """Whether an answer starts with prompt lookup. auto: where batched passes are cheap (not on
    MLX's CPU backend) and this model has not shown they cost too much."""
    if mode in ("off", "model"):
        return False
    if mode == "lookup":
        return True
    import mlx.core as mx

    return mx.default_device().type != mx.cpu and not stats.never_pays


class PromptLookup:
    """Drafts from earlier occurrences of the last n-gram, indexed as ids arrive."""

    def __init__(self, ids: list[int], sizes: tuple[int, ...] = NGRAM_SIZES) -> None:
        self.ids = list(ids)
        self.sizes = sizes
        self._last: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in sizes}
        self._indexed = 0  # n-grams ending before this position are in the index

    def append(self, token: int) -> None:
        self.ids.append(token)

    def catch_up(self) -> None:
        # The n-gram ending at the last id is left out of the index: it would find itself.
        for end in range(self._indexed, len(self.ids) - 1):
            for n in self.sizes:
                if end + 1 >= n:
                    self._last[n][tuple(self.ids[end + 1 - n: end + 1])] = end + 1
        self._indexed = max(self._indexed, len(self.ids) - 1)

    def draft(self, limit: int) -> list[int]:
        self.catch_up()
        for n in self.sizes:
            if len(self.ids) > n:
                follows = self._last[n].get(tuple(self.ids[-n:]))
                if follows is not None:
                    return self.ids[follows: follows + limit]
        return []


class ModelDrafter:
    """Drafts with a small model that shares the target's tokenizer (greedy: a fixed id per position,
    so the target's samples decide, as with lookup). Its own cache follows the answer: ids the
    target rejected are trimmed from it before the next draft."""

    def __init__(self, model: Any, ids: list[int], prefill_step_size: int) -> None:
        from mlx_lm.models.cache import make_prompt_cache

        self.model = model
        self.ids = list(ids)
        self.cache = make_prompt_cache(model)
        self.held: list[int] = []  # the ids in self.cache
        self.step = prefill_step_size

    def append(self, token: int) -> None:
        self.ids.append(token)

    def catch_up(self) -> None:
        """Feed the draft model everything but the last id (the conversation, at the start)."""
        from mlx_lm.models.cache import trim_prompt_cache

        from .kv_cache import common_prefix_length

        shared = min(common_prefix_length(self.held, self.ids), len(self.ids) - 1)
        trim_prompt_cache(self.cache, len(self.held) - shared)
        _prefill(self.model, self.ids[shared:-1], self.cache, self.step, lambda *_: None)
        self.held = self.ids[:-1]

    def draft(self, limit: int) -> list[int]:
        import mlx.core as mx

        if limit <= 0:
            return []
        self.catch_up()
        token, out = self.ids[-1], []
        for _ in range(limit):
            logits = self.model(mx.array([[token]]), cache=self.cache)[0, -1]
            token = int(mx.argmax(logits).item())
            out.append(token)
        self.held = self.ids + out[:-1]
        return out


def lookup_generate_step(
    prompt: list[int],
    model: Any,
    *,
    cache: list[Any],
    context: list[int],
    max_tokens: int,
    sampler: Callable,
    processors_for: Callable[[list[int]], list],
    prefill_step_size: int,
    progress: Callable[[int, int], None],
    counts: DraftCounts,
    stats: DraftStats,
    switch: bool = True,
    draft_model: Any = None,
) -> Iterator[tuple[int, None]]:
    """Like mlx-lm's generate_step, yielding (id, None), with prompt-lookup drafts (or, given
    draft_model, a small model's).

    prompt: the ids to feed (after what the cache holds); context: every id before the answer,
    for drafts. processors_for(earlier_ids) makes logits processors that see earlier_ids before the
    ids they are given. switch=False keeps drafting on whatever it costs (for tests)."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step, generation_stream
    from mlx_lm.models.cache import trim_prompt_cache

    earlier = context[: len(context) - len(prompt)]
    processors = processors_for(earlier)
    drafter = ModelDrafter(draft_model, context, prefill_step_size) if draft_model else PromptLookup(context)
    with mx.stream(generation_stream):
        _prefill(model, prompt[:-1], cache, prefill_step_size, progress)
        drafter.catch_up()
    fed = list(prompt[:-1])  # the ids processors see, as generate_step gives them
    last, produced = prompt[-1], 0
    draftless, size = 0, DRAFT_TOKENS
    while produced < max_tokens and not counts.switched_off:
        timed = produced > 0  # the first pass also finishes the prompt: not a decoding sample
        draft: list[int] = []
        tic = time.perf_counter()  # a drafted pass's time includes making the draft
        with mx.stream(generation_stream):
            if _drafting(counts, switch, draftless):
                trial = switch and not counts.drafted
                draft = drafter.draft(min(TRIAL_DRAFT_TOKENS if trial else size, max_tokens - produced - 1))
                draftless = 0 if draft else draftless + 1
            out = _verify(model, cache, last, draft, fed, processors, sampler)
        elapsed = time.perf_counter() - tic
        counts.passes += 1
        rejected = len(draft) - (len(out) - 1)
        if rejected:
            trim_prompt_cache(cache, rejected)
        fed.append(last)
        fed.extend(out[:-1])
        if draft:
            counts.proposed += len(draft)
            counts.accepted += len(out) - 1
            size = _next_size(size, len(draft), len(out) - 1)
            counts.drafted.append((elapsed, len(draft) + 1, len(out)))
        elif timed:
            counts.plain_s.append(elapsed)
        if produced == 0:
            progress(len(prompt), len(prompt))
        for token in out:
            yield token, None
            drafter.append(token)
            produced += 1
            if produced >= max_tokens:
                return
        last = out[-1]
        if switch and draft:
            _judge(counts, stats)
    # Drafting stopped: the rest is plain, pipelined decoding, exactly as without drafts.
    rest = generate_step(mx.array([last]), model, max_tokens=max_tokens - produced, sampler=sampler,
                         logits_processors=processors_for(earlier + fed), prompt_cache=cache,
                         prefill_step_size=prefill_step_size)
    try:
        for token, _ in rest:
            yield token, None
    finally:
        rest.close()


def _next_size(size: int, proposed: int, accepted: int) -> int:
    """Longer drafts while they are accepted whole (quoted passages), shorter after misses."""
    if accepted == proposed:
        return min(max(size, proposed) + 2, MAX_DRAFT_TOKENS)
    return max(1, min(size, accepted + 1))


def _drafting(counts: DraftCounts, switch: bool, draftless: int) -> bool:
    if not switch:
        return True
    if len(counts.plain_s) < PLAIN_SAMPLES and not counts.drafted:
        return False  # time plain passes first, to have something to compare with
    if draftless >= DRAFTLESS_LIMIT and not counts.drafted:
        counts.switched_off = "no drafts found"
        return False
    return not counts.switched_off


def _judge(counts: DraftCounts, stats: DraftStats) -> None:
    """Turn drafting off for the rest of the answer when it does not pay."""
    plain = statistics.median(counts.plain_s) if counts.plain_s else None
    if plain is None or plain <= 0:
        return
    # Cost: a drafted pass over n ids against n plain passes (medians: other work on the machine
    # makes single passes slow at random).
    cost = statistics.median(seconds / (fed * plain) for seconds, fed, _ in counts.drafted)
    if cost > TOO_COSTLY:
        counts.switched_off = f"a pass over k ids costs {cost:.2f} x k passes over one"
        stats.costly_answers += 1
        return
    if len(counts.drafted) < MIN_DRAFTED_PASSES:
        return
    recent = counts.drafted[-MIN_DRAFTED_PASSES:]
    drafted_rate = sum(p for _, _, p in recent) / sum(s for s, _, _ in recent)
    if drafted_rate < 1.0 / plain:
        counts.switched_off = f"{drafted_rate * plain:.2f} x the plain rate"


def _prefill(model, ids: list[int], cache, step: int, progress) -> None:
    """Feed ids into the cache in chunks, as mlx-lm's generate_step does."""
    import mlx.core as mx

    total = len(ids) + 1
    progress(0, total)
    done = 0
    while done < len(ids):
        chunk = ids[done: done + step]
        model(mx.array(chunk)[None], cache=cache)
        mx.eval([c.state for c in cache])
        done += len(chunk)
        progress(done, total)
        mx.clear_cache()


def _verify(model, cache, last: int, draft: list[int], fed: list[int], processors, sampler) -> list[int]:
    """One pass over [last, *draft]: the model's ids, up to and including its first disagreement."""
    import mlx.core as mx

    inputs = [last, *draft]
    logits = model(mx.array(inputs)[None], cache=cache)[0]
    picks = []
    for i in range(len(inputs)):
        row = logits[i: i + 1]
        if processors:
            history = mx.array(fed + inputs[: i + 1])
            for processor in processors:
                row = processor(history, row)
        picks.append(sampler(row - mx.logsumexp(row, keepdims=True)))
    values = [int(v) for v in mx.concatenate([p.reshape(-1) for p in picks]).tolist()]
    out = []
    for i, token in enumerate(values):
        out.append(token)
        if i >= len(draft) or token != draft[i]:
            break
    return out
