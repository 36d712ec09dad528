"""Memory: the peak while generating against weights + KV cache, and what an unloaded model leaves.

1. Peak: the engine resets MLX's peak counter before each generation and reports the peak in
   Finished.peak_memory_gb (measured on the engine thread). It is compared with the model's weight
   bytes (summed from the safetensors headers, ModelInfo.weight_bytes) plus the KV cache bytes of
   the tokens in the cache (ModelInfo.kv_bytes_per_token x (prompt + generated tokens)): the two
   figures the engine's fit check is built on. The overshoot is broken down into the KV cache
   mlx-lm actually allocated (it grows in steps of 256 tokens) and the rest (activations and
   transient buffers).
   The same prompt is then regenerated in the same conversation: the cache already holds all but
   one prompt token, so that request is almost all decoding, which shows what the prompt's
   processing (prefill) adds to the peak. Last, the prompt is processed afresh in chunks of
   SMALL_PREFILL_STEP tokens instead of the engine's default 2,048, which bounds that addition.
2. Release: MLX's active memory before the model is loaded and after it is unloaded, over two
   load / generate / unload cycles.

Goals: peak within 10% of weights + KV cache; nothing measurable left after unloading.
"""

from __future__ import annotations

from bench.common import ModelSpec, header, load, model_folder, new_engine, row, verdict

# ~127 MB of 4-bit weights, so that weights dominate MLX's own small buffers. 2 KV heads (float32)
# make 10 KiB of KV cache per token: the weights weigh as much as ~12,000 tokens of KV cache, about
# the proportion of Llama 2 7B and 13B at float16 (~7,000 and ~8,700 tokens). With as many KV heads
# as heads it would be ~1,200 tokens, a model whose KV cache outweighs its weights in a short chat.
SPEC = ModelSpec(
    variant="spm_legacy", hidden_size=1280, num_layers=10, intermediate_size=3456,
    num_heads=20, num_kv_heads=2,
)
CONTEXT = 2048
PROMPT_TOKENS = 240  # prefill costs ~80 ms a token on a slow 2-core CPU
ANSWER_TOKENS = 64
SMALL_PREFILL_STEP = 64
PEAK_WITHIN = 0.10
LEFTOVER_LIMIT = 1024 * 1024  # "measurable": a mebibyte


def _prompt(count_tokens, min_tokens: int) -> str:
    import tiny_models

    words = iter(" ".join(tiny_models.training_corpus(seed=11, num_lines=2000)).split())
    parts = ["Please summarise:"]
    while count_tokens(" ".join(parts)) < min_tokens:
        parts.append(next(words))
    return " ".join(parts)


def _mib(n: float) -> str:
    return f"{n / 1024**2:,.1f} MiB"


def run() -> dict:
    import mlx.core as mx

    from engine.generation import GenerationRequest
    from engine.sampling import SamplingSettings

    header("Memory", "peak while generating vs weights + KV cache; active memory after unloading")
    folder = model_folder(SPEC)
    engine = new_engine()

    try:
        def active() -> int:
            return engine.run(lambda _loaded: int(mx.get_active_memory())).result()

        # Whatever earlier work in this process left in MLX's buffer cache is not counted as active.
        before = active()
        loaded = load(engine, folder, CONTEXT)
        resident = active() - before
        tokenizer = engine.loaded.tokenizer  # pure Python
        text = _prompt(lambda s: len(tokenizer.encode_plain(s)), PROMPT_TOKENS)
        settings = SamplingSettings(temperature=0.0, top_p=1.0, max_tokens=ANSWER_TOKENS, seed=0)
        done = engine.generate(GenerationRequest([{"role": "user", "content": text}], settings, "mem")).wait()
        if done.finish_reason not in ("stop", "length"):
            raise RuntimeError(f"generation failed: {done.error}")
        kv_allocated = engine.run(lambda _loaded: engine.caches.total_bytes()).result()
        regen = engine.generate(GenerationRequest([{"role": "user", "content": text}], settings, "mem")).wait()
        default_step = engine.prefill_step_size
        engine.prefill_step_size = SMALL_PREFILL_STEP  # read by the engine thread per request
        brief = SamplingSettings(temperature=0.0, top_p=1.0, max_tokens=8, seed=0)
        small = engine.generate(GenerationRequest([{"role": "user", "content": text}], brief)).wait()
        engine.prefill_step_size = default_step
        engine.unload().wait()
        after_first = active()

        # A second cycle: does anything pile up?
        load(engine, folder, CONTEXT)
        short = SamplingSettings(temperature=0.0, max_tokens=8, seed=0)
        engine.generate(GenerationRequest([{"role": "user", "content": "Hello"}], short, "mem")).wait()
        engine.unload().wait()
        after_second = active()
        cache_left = engine.run(lambda _loaded: int(mx.get_cache_memory())).result()
    finally:
        engine.shutdown()

    tokens = done.prompt_tokens + done.generation_tokens
    peak = done.peak_memory_gb * 1e9
    kv_used = loaded.kv_bytes_per_token * tokens
    expected = loaded.weight_bytes + kv_used
    ratio = peak / expected
    decode_peak = regen.peak_memory_gb * 1e9
    decode_tokens = regen.prompt_tokens + regen.generation_tokens
    decode_ratio = decode_peak / (loaded.weight_bytes + loaded.kv_bytes_per_token * decode_tokens)
    small_tokens = small.prompt_tokens + small.generation_tokens
    small_ratio = small.peak_memory_gb * 1e9 / (loaded.weight_bytes + loaded.kv_bytes_per_token * small_tokens)
    leftover = max(after_first, after_second) - before
    peak_ok = abs(ratio - 1) <= PEAK_WITHIN
    release_ok = leftover < LEFTOVER_LIMIT

    row("model", SPEC.describe())
    row("tokens in the cache", f"{tokens} ({done.prompt_tokens} prompt + {done.generation_tokens} generated)")
    row("weights (safetensors headers)", _mib(loaded.weight_bytes))
    row("  resident after load (active memory delta)", _mib(resident))
    row("KV cache for the tokens in it", f"{_mib(kv_used)} ({loaded.kv_bytes_per_token:,} bytes/token)")
    row("  KV cache mlx-lm allocated (256-token steps)", _mib(kv_allocated))
    row("expected: weights + KV", _mib(expected))
    row("peak while generating (Finished.peak_memory_gb)", _mib(peak))
    row("peak / expected", f"{ratio:.3f}")
    row("  peak - weights - KV allocated (activations)", _mib(peak - resident - kv_allocated))
    fed = regen.prompt_tokens - regen.reused_tokens
    row(f"regenerated (reused {regen.reused_tokens}, fed {fed}): peak", _mib(decode_peak))
    row("  decode-only peak / expected", f"{decode_ratio:.3f}")
    row("  decode-only peak - weights - KV allocated", _mib(decode_peak - resident - kv_allocated))
    row(f"prefill in {SMALL_PREFILL_STEP}-token chunks: peak / expected", f"{small_ratio:.3f}")
    row(f"goal peak within {PEAK_WITHIN:.0%} of expected (first figure)", verdict(peak_ok))
    print()
    row("active memory before load", f"{before:,} bytes")
    row("active memory after unload (1st, 2nd cycle)", f"{after_first:,} / {after_second:,} bytes")
    row("MLX buffer cache after unload", f"{cache_left:,} bytes")
    row("left behind", f"{leftover:,} bytes")
    row("goal nothing measurable (< 1 MiB) left", verdict(release_ok))
    return {
        "name": "memory",
        "figure": "peak / (weights + KV)",
        "value": ratio,
        "goal": f"within {PEAK_WITHIN:.0%}",
        "met": peak_ok,
        "tokens": tokens,
        "weight_bytes": loaded.weight_bytes,
        "resident_weight_bytes": resident,
        "kv_used_bytes": kv_used,
        "kv_allocated_bytes": kv_allocated,
        "peak_bytes": peak,
        "activation_bytes": peak - resident - kv_allocated,
        "decode_only_peak_bytes": decode_peak,
        "decode_only_ratio": decode_ratio,
        "small_prefill_step_ratio": small_ratio,
        "release": {
            "figure": "active memory left after unload",
            "value": leftover,
            "goal": "nothing measurable (< 1 MiB)",
            "met": release_ok,
            "before": before,
            "after": [after_first, after_second],
            "cache_after": cache_left,
        },
    }


if __name__ == "__main__":
    run()
