"""Streaming detokenization: cost per token at 100 and at 2,000 tokens of output.

The engine's StreamingDetokenizer (a byte table plus an incremental UTF-8 decoder) against mlx-lm's
NaiveStreamingDetokenizer, which is what mlx-lm streams with for a folder that has only
tokenizer.model (many Llama 2 conversions): it re-decodes the whole current line on every token.
mlx-lm's SPMStreamingDetokenizer (used when tokenizer.json has an SPM decoder) is shown for
reference. All three stream the same token ids: a long multilingual text (English, French, German,
Spanish, Chinese, Japanese, emoji, code, numbers) with a paragraph break every ~850 tokens,
encoded with a Llama-2-style sentencepiece tokenizer (byte fallback for rare characters). Where
the stream has its newlines matters to the Naive detokenizer, whose cost grows with the length of
the current line: at token 2,000 here that line is about 330 tokens long.

"Cost per token at N tokens" is the mean time of one add-and-read step over the 100 tokens that
end at token N of the stream (the stream is replayed, untimed, up to there). Flat is 1.0.

Goal: ours flat, 2000 / 100 about 1.0.
"""

from __future__ import annotations

import time

from bench.common import ModelSpec, header, median, model_folder, row, verdict

# Only the tokenizer is used; this is the same folder multi_turn builds.
SPEC = ModelSpec(variant="spm_legacy")
POSITIONS = (100, 2000)
WINDOW = 100
MIN_REPEATS = 5
BUDGET_S = 1.5
FLAT_WITHIN = 0.25  # "about 1.0": 2000 / 100 <= 1.25

PARAGRAPH = (
    "The hearth keeps the room warm while the model answers questions about llamas, alpacas and "
    "the weather. In 2024 we sold 12,345 units at $6.78 each (about 15% more than last year). "
    "Le café est prêt : une crème brûlée, un croissant et déjà la façade du musée. "
    "Über den Zürichsee fährt ein Schiff; die Straße ist naß und grün. "
    "El señor come jalapeños en la cafetería, ¿verdad? ¡Sí! "
    "你好，中文的文本也可以流式输出。日本語の漢字も東京で使います。 "
    "Emoji work too 😀🎉🔥, and code: def add(a, b): return a + b; x = [1, 2, 3]. "
)


def _text(count_tokens, min_tokens: int) -> str:
    """Paragraphs of the sample text, a blank line after every second (~850 tokens)."""
    parts: list[str] = []
    i = 0
    while count_tokens("".join(parts)) < min_tokens:
        parts.append(PARAGRAPH)
        i += 1
        if i % 2 == 0:
            parts.append("\n\n")
    return "".join(parts)


def _cost_per_token(make, step, ids: list[int], end: int) -> float:
    """Median microseconds per token over ids[end - WINDOW:end]."""
    samples = []
    started = time.perf_counter()
    while len(samples) < MIN_REPEATS or time.perf_counter() - started < BUDGET_S:
        detokenizer = make()
        for t in ids[: end - WINDOW]:
            step(detokenizer, t)
        tic = time.perf_counter()
        for t in ids[end - WINDOW:end]:
            step(detokenizer, t)
        samples.append((time.perf_counter() - tic) / WINDOW * 1e6)
        if len(samples) >= 200:
            break
    return median(samples)


def _streamed(make, step, finish, ids: list[int]) -> str:
    detokenizer = make()
    return "".join(step(detokenizer, t) for t in ids) + finish(detokenizer)


def run() -> dict:
    from mlx_lm.tokenizer_utils import NaiveStreamingDetokenizer, SPMStreamingDetokenizer

    from engine.model_folder import resolve_model
    from engine.tokenizer import load_tokenizer

    header(
        "Streaming detokenization",
        "microseconds per token at 100 and 2,000 tokens of output: ours vs mlx-lm's Naive detokenizer",
    )
    tokenizer = load_tokenizer(resolve_model(model_folder(SPEC)))
    text = _text(lambda s: len(tokenizer.encode_plain(s)), max(POSITIONS) + WINDOW)
    ids = tokenizer.encode_plain(text)[: max(POSITIONS)]
    newlines = [i for i, t in enumerate(ids) if b"\n" in tokenizer.token_bytes[t]]
    byte_tokens = sum(1 for t in ids if tokenizer.sp is not None and tokenizer.sp.is_byte(t))

    def ours_step(detokenizer, token: int) -> str:
        return detokenizer.add(token)

    def ours_finish(detokenizer) -> str:
        return detokenizer.flush()

    def mlx_step(detokenizer, token: int) -> str:
        detokenizer.add_token(token)
        return detokenizer.last_segment

    def mlx_finish(detokenizer) -> str:
        detokenizer.finalize()
        return detokenizer.last_segment

    contenders = {
        "ours (engine.detokenize)": (tokenizer.detokenizer, ours_step, ours_finish),
        "mlx-lm Naive (baseline)": (
            lambda: NaiveStreamingDetokenizer(tokenizer.hf), mlx_step, mlx_finish
        ),
        "mlx-lm SPM (reference)": (lambda: SPMStreamingDetokenizer(tokenizer.hf), mlx_step, mlx_finish),
    }
    reference = tokenizer.decode(ids)
    costs: dict[str, dict[int, float]] = {}
    exact: dict[str, bool] = {}
    for name, (make, step, finish) in contenders.items():
        costs[name] = {end: _cost_per_token(make, step, ids, end) for end in POSITIONS}
        exact[name] = _streamed(make, step, finish, ids) == reference

    first, last = POSITIONS
    growth = {name: c[last] / c[first] for name, c in costs.items()}
    ours, naive = "ours (engine.detokenize)", "mlx-lm Naive (baseline)"
    flat = growth[ours] <= 1 + FLAT_WITHIN

    row("tokenizer", f"sentencepiece BPE, {len(tokenizer.token_bytes)} pieces, byte fallback")
    row("token stream", f"{len(ids)} ids, {byte_tokens} byte-fallback tokens, newlines at {newlines}")
    print()
    print(f"   {'us per token at':<28} {first:>10} {last:>10}   {last}/{first}   text == decode()")
    for name in contenders:
        c = costs[name]
        print(f"   {name:<28} {c[first]:>10.2f} {c[last]:>10.2f} {growth[name]:>8.2f}   {exact[name]}")
    print()
    row(f"ours / Naive at {first} tokens", f"{costs[ours][first] / costs[naive][first]:.3f}")
    row(f"ours / Naive at {last} tokens", f"{costs[ours][last] / costs[naive][last]:.4f}")
    if not exact[naive]:
        print(
            "   (Naive's text differs from decode(): it repeats characters after a run of byte-fallback\n"
            "    tokens, because the tokenizer decodes a run ending in an incomplete character as all\n"
            "    U+FFFD, and Naive trims those, shrinking the text it has already streamed)"
        )
    row(f"goal: ours flat ({last}/{first} <= {1 + FLAT_WITHIN:.2f})", verdict(flat))
    return {
        "name": "detokenize",
        "figure": f"ours us/token {last}/{first}",
        "value": growth[ours],
        "goal": f"~1.0 (<= {1 + FLAT_WITHIN:.2f})",
        "met": flat,
        "us_per_token": {name: dict(c) for name, c in costs.items()},
        "growth": growth,
        "exact": exact,
        "newlines_at": newlines,
    }


if __name__ == "__main__":
    run()
