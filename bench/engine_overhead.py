"""Engine overhead: the engine's generation speed over bare mlx_lm.stream_generate.

Same model, same prompt ids, greedy, same number of tokens, both on the engine thread (MLX arrays
belong to the thread that made them). The repetitions are interleaved (engine, stream_generate,
generate_step, then the next round in a rotated order) so that a slow patch of the machine hits all
of them alike, and the ratio is taken within each round. A bare generate_step loop (no
detokenizer, no events) is measured too, as the floor both are compared against.

Speeds use one definition throughout, the engine's own (Finished.generation_tps): tokens generated
divided by the time from the first token to the end of the generation.

Goal: engine / stream_generate >= 0.98.
"""

from __future__ import annotations

import time

from bench.common import (
    ModelSpec,
    engine_session,
    header,
    median,
    model_folder,
    row,
    spread,
    verdict,
)

# spm_json ships a tokenizer.json with an SPM decoder, as mlx-community conversions do, so
# stream_generate streams text with mlx-lm's fast SPMStreamingDetokenizer. (With only a
# tokenizer.model it would use the Naive one, which re-decodes the line on every token: a slower
# baseline that would flatter the engine.)
SPEC = ModelSpec(variant="spm_json", hidden_size=512, num_layers=4, intermediate_size=1408)
MAX_TOKENS = 256
REPEATS = 6
GOAL = 0.98

# The random model is greedy-decoded; the first prompt for which it runs to MAX_TOKENS without
# emitting EOS is used, so every run generates exactly the same MAX_TOKENS tokens.
CANDIDATE_PROMPTS = (
    "Tell me a long story about a llama who keeps a fire burning in the hearth all winter.",
    "Write a detailed answer: how does a local model stream text token by token?",
    "Please explain, step by step, what the window, the prompt and the memory are for.",
    "Describe Zürich, a café and a façade; then list 2, 3 and 5 facts about each.",
    "Write code: def add(a, b): return a + b, and explain it at length.",
    "Hello! What is the question, and what would the answer be?",
)


def _bare_stream_generate(tokenizer, prompt_ids: list[int], max_tokens: int):
    """mlx_lm.stream_generate on the engine thread; returns (token ids, tokens/s, mlx-lm's own tps)."""

    def run(loaded) -> dict:
        from mlx_lm.generate import stream_generate
        from mlx_lm.sample_utils import make_sampler

        tokens: list[int] = []
        first = None
        response = None
        for response in stream_generate(
            loaded.model, tokenizer, prompt_ids, max_tokens=max_tokens, sampler=make_sampler(temp=0.0)
        ):
            if first is None:
                first = time.perf_counter()
            tokens.append(response.token)
        end = time.perf_counter()
        return {
            "tokens": tokens,
            "tps": len(tokens) / (end - first),
            "mlx_lm_tps": response.generation_tps if response else 0.0,
        }

    return run


def _bare_generate_step(prompt_ids: list[int], max_tokens: int):
    """The floor: generate_step's tokens and nothing else (no text, no events)."""

    def run(loaded) -> dict:
        import mlx.core as mx
        from mlx_lm.generate import generate_step
        from mlx_lm.sample_utils import make_sampler

        tokens: list[int] = []
        first = None
        steps = generate_step(
            mx.array(prompt_ids), loaded.model, max_tokens=max_tokens, sampler=make_sampler(temp=0.0)
        )
        try:
            for token, _logprobs in steps:
                if first is None:
                    first = time.perf_counter()
                tokens.append(token)
        finally:
            steps.close()
        end = time.perf_counter()
        return {"tokens": tokens, "tps": len(tokens) / (end - first)}

    return run


def run(repeats: int = REPEATS, max_tokens: int = MAX_TOKENS) -> dict:
    from mlx_lm.utils import load_tokenizer

    from engine.generation import GenerationRequest
    from engine.prompts import build_prompt
    from engine.sampling import SamplingSettings

    header(
        "Engine overhead",
        "generation tokens/s: engine vs bare mlx_lm.stream_generate, same model, prompt and tokens",
    )
    folder = model_folder(SPEC)
    mlx_tokenizer = load_tokenizer(folder)
    settings = SamplingSettings(temperature=0.0, top_p=1.0, max_tokens=max_tokens, seed=0)

    with engine_session(folder, context_length=2048) as (engine, loaded_event):
        messages = None
        for text in CANDIDATE_PROMPTS:  # the first of these runs is also the engine's warm-up
            candidate = [{"role": "user", "content": text}]
            done = engine.generate(GenerationRequest(candidate, settings)).wait()
            if done.finish_reason == "length" and done.generation_tokens == max_tokens:
                messages = candidate
                break
        if messages is None:
            raise RuntimeError("every candidate prompt made the random model stop early")

        def prompt_ids_of(loaded) -> list[int]:
            return build_prompt(
                loaded.tokenizer, messages, loaded.prompt_format, loaded.context_length, max_tokens
            ).ids

        prompt_ids = engine.run(prompt_ids_of).result()
        bare = _bare_stream_generate(mlx_tokenizer, prompt_ids, max_tokens)
        floor = _bare_generate_step(prompt_ids, max_tokens)
        engine.run(bare).result()  # warm-up of the baselines
        engine.run(floor).result()

        def engine_run() -> dict:
            done = engine.generate(GenerationRequest(messages, settings)).wait()
            return {"tokens": done.token_ids, "tps": done.generation_tps}

        runners = {
            "engine": engine_run,
            "stream_generate": lambda: engine.run(bare).result(),
            "generate_step": lambda: engine.run(floor).result(),
        }
        names = list(runners)
        rounds: list[dict[str, dict]] = []
        for i in range(repeats):
            order = names[i % len(names):] + names[: i % len(names)]
            rounds.append({name: runners[name]() for name in order})

    reference = rounds[0]["engine"]["tokens"]
    same = all(r[name]["tokens"] == reference for r in rounds for name in names)
    lengths = {len(r[name]["tokens"]) for r in rounds for name in names}
    tps = {name: [r[name]["tps"] for r in rounds] for name in names}
    over_bare = [r["engine"]["tps"] / r["stream_generate"]["tps"] for r in rounds]
    over_floor = [r["engine"]["tps"] / r["generate_step"]["tps"] for r in rounds]
    bare_over_floor = [r["stream_generate"]["tps"] / r["generate_step"]["tps"] for r in rounds]
    ratio = median(over_bare)
    mlx_lm_tps = median([r["stream_generate"]["mlx_lm_tps"] for r in rounds])

    row("model", f"{SPEC.describe()}; {loaded_event.weight_bytes / 1e6:.1f} MB of weights")
    row("prompt", f"{len(prompt_ids)} tokens; {max_tokens} tokens generated per run, greedy")
    row("streaming detokenizer in stream_generate", type(mlx_tokenizer.detokenizer).__name__)
    row("same tokens in every run", f"{same} ({sorted(lengths)} tokens, no EOS)")
    row("rounds (interleaved, rotated order)", str(repeats))
    for name in names:
        row(f"{name} tokens/s (median, range)", f"{median(tps[name]):.1f} ({min(tps[name]):.1f}-{max(tps[name]):.1f})")
    row("  (stream_generate's own generation_tps)", f"{mlx_lm_tps:.1f}")
    row("engine / stream_generate (median, range)", f"{ratio:.3f} ({spread(over_bare)})")
    row("engine / generate_step (median, range)", f"{median(over_floor):.3f} ({spread(over_floor)})")
    row("stream_generate / generate_step", f"{median(bare_over_floor):.3f} ({spread(bare_over_floor)})")
    row(f"goal engine / stream_generate >= {GOAL}", verdict(ratio >= GOAL))
    if not same:
        print("   WARNING: the runs did not all generate the same tokens; the ratio compares unlike runs")
    return {
        "name": "engine_overhead",
        "figure": "engine / stream_generate tokens/s",
        "value": ratio,
        "spread": spread(over_bare),
        "goal": f">= {GOAL}",
        "met": ratio >= GOAL,
        "same_tokens": same,
        "tokens": max_tokens,
        "prompt_tokens": len(prompt_ids),
        "tps": {name: median(v) for name, v in tps.items()},
        "engine_over_generate_step": median(over_floor),
        "stream_generate_over_generate_step": median(bare_over_floor),
        "rounds": repeats,
    }


if __name__ == "__main__":
    run()
