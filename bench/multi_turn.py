"""Multi-turn chat: time to first token at turn 12 over turn 1, with and without KV cache reuse.

A 12-turn chat grows by a sizeable user message (~80 tokens) and an answer (~32 tokens) each turn,
to about 1.5k tokens by turn 12. The model generates 32 tokens (greedy) every turn, but the history
records a scripted answer of about that length instead of the random model's degenerate text, so
that every turn does the same, deterministic amount of work. The engine keeps the ids it generated,
which never match the scripted text, so it re-feeds each answer: about 40 more tokens per turn than
a real model's chat, whose answers the next turn finds in the cache (pessimistic on purpose). Every turn is asked in two conversations that
keep their KV cache (two samples per turn); at turns 1, 4, 8 and 12 it is also asked with
conversation_id=None, which re-processes the whole prompt (every turn would triple the run time on
a slow CPU). The requests of a turn are interleaved in a rotating order, and all see exactly the same
messages (the history holds the first conversation's answers).

Time to first token is measured as a user sees it: from submitting the request to the first token,
which includes building the prompt (the engine's own Finished.ttft_s starts after that; both shown).

Goal: with reuse, TTFT at turn 12 / TTFT at turn 1 <= 1.3.
"""

from __future__ import annotations

import time

from bench.common import ModelSpec, engine_session, header, median, model_folder, row, verdict

SPEC = ModelSpec(variant="spm_legacy", hidden_size=512, num_layers=4, intermediate_size=1408)
TURNS = 12
ANSWER_TOKENS = 32
USER_TOKENS = 80
FULL_AT = (1, 4, 8, 12)  # turns also asked with full re-processing
CONTEXT = 4096
GOAL = 1.3

# The opening of Meta's default Llama 2 system prompt.
SYSTEM = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, "
    "while being safe."
)


def _texts(count_tokens, count: int, min_tokens: int, label: str, seed: int) -> list[str]:
    """Deterministic prose-and-code messages of at least min_tokens tokens each."""
    import tiny_models

    words = iter(" ".join(tiny_models.training_corpus(seed=seed, num_lines=4000)).split())
    texts = []
    for i in range(count):
        parts = [f"{label} {i + 1}:"]
        while count_tokens(" ".join(parts)) < min_tokens:
            parts.append(next(words))
        texts.append(" ".join(parts))
    return texts


class _Timing:
    """Timestamps of one request's events, taken on the engine thread as they are emitted."""

    def __init__(self) -> None:
        self.submitted = time.perf_counter()
        self.prompt_ready: float | None = None
        self.reused = 0

    def __call__(self, event) -> None:
        from engine.events import PromptReady

        if isinstance(event, PromptReady):
            self.prompt_ready = time.perf_counter()
            self.reused = event.reused_tokens


def run(turns: int = TURNS) -> dict:
    from engine.generation import GenerationRequest
    from engine.sampling import SamplingSettings

    header(
        "Multi-turn time to first token",
        f"TTFT at turn {turns} / turn 1 of a growing chat, with KV cache reuse and with full re-processing",
    )
    folder = model_folder(SPEC)
    settings = SamplingSettings(temperature=0.0, top_p=1.0, max_tokens=ANSWER_TOKENS, seed=0)
    full_at = sorted({1, turns} | {t for t in FULL_AT if t <= turns})
    samples: dict[str, dict[int, dict]] = {"reuse-a": {}, "reuse-b": {}, "full": {}}
    conversation = {"reuse-a": "bench-chat-a", "reuse-b": "bench-chat-b", "full": None}

    with engine_session(folder, context_length=CONTEXT) as (engine, loaded_event):
        tokenizer = engine.loaded.tokenizer  # encode_plain is pure Python (sentencepiece)

        def count(text: str) -> int:
            return len(tokenizer.encode_plain(text))

        users = _texts(count, turns, USER_TOKENS, "Question", seed=7)
        answers = _texts(count, turns, ANSWER_TOKENS, "Answer", seed=8)
        warm = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Warm up, please."}]
        engine.generate(GenerationRequest(warm, settings)).wait()

        def ask(messages: list[dict], mode: str) -> dict:
            timing = _Timing()
            done = engine.generate(
                GenerationRequest(messages, settings, conversation[mode]), on_event=timing
            ).wait()
            if done.finish_reason not in ("stop", "length"):
                raise RuntimeError(f"turn failed: {done.finish_reason} {done.error}")
            build_s = (timing.prompt_ready or timing.submitted) - timing.submitted
            return {
                "ttft": build_s + done.ttft_s,
                "build": build_s,
                "engine_ttft": done.ttft_s,
                "prompt": done.prompt_tokens,
                "reused": done.reused_tokens,
                "fed": done.prompt_tokens - done.reused_tokens,
                "answer": done.generation_tokens,
                "ids": done.token_ids,
                "text": done.text,
            }

        history: list[dict] = [{"role": "system", "content": SYSTEM}]
        for turn in range(1, turns + 1):
            messages = history + [{"role": "user", "content": users[turn - 1]}]
            modes = ["reuse-a", "reuse-b"] + (["full"] if turn in full_at else [])
            order = modes[turn % len(modes):] + modes[: turn % len(modes)]
            results = {mode: ask(messages, mode) for mode in order}
            for mode, result in results.items():
                samples[mode][turn] = result
            history = messages + [{"role": "assistant", "content": answers[turn - 1]}]

    reuse, full = samples["reuse-a"], samples["full"]
    same_answers = all(
        result["ids"] == reuse[turn]["ids"] for runs in samples.values() for turn, result in runs.items()
    )

    def reuse_ttft(turn: int, key: str = "ttft") -> float:
        return median([samples["reuse-a"][turn][key], samples["reuse-b"][turn][key]])

    reuse_ratio = reuse_ttft(turns) / reuse_ttft(1)
    full_ratio = full[turns]["ttft"] / full[1]["ttft"]
    reuse_engine_ratio = reuse_ttft(turns, "engine_ttft") / reuse_ttft(1, "engine_ttft")
    fed_first, fed_last = reuse[1]["fed"], reuse[turns]["fed"]
    ms_per_fed_first = reuse_ttft(1) / fed_first * 1e3
    ms_per_fed_last = reuse_ttft(turns) / fed_last * 1e3
    speedup = full[turns]["ttft"] / reuse_ttft(turns)
    # Turn 1 also feeds the system prompt; turn 2 feeds what every later turn feeds.
    same_fed_ratio = reuse_ttft(turns) / reuse_ttft(2) if turns >= 2 else float("nan")
    # How many ids after the previous prompt the next turn found in the cache (its answer's).
    answer_reused = [reuse[t]["reused"] - reuse[t - 1]["prompt"] for t in range(2, turns + 1)]

    row("model", f"{SPEC.describe()}; {loaded_event.weight_bytes / 1e6:.1f} MB of weights")
    row(
        "chat",
        f"{turns} turns: user >= {USER_TOKENS} tokens; {ANSWER_TOKENS} tokens generated (greedy), "
        f"a scripted answer >= {ANSWER_TOKENS} tokens kept",
    )
    row("answers identical with and without reuse", str(same_answers))
    print()
    print("   turn  prompt  reused   fed  answer   TTFT reuse (ms)   TTFT full (ms)")
    for t in range(1, turns + 1):
        a = reuse[t]
        full_ms = f"{full[t]['ttft'] * 1e3:.0f}" if t in full else "-"
        print(
            f"   {t:>4} {a['prompt']:>7} {a['reused']:>7} {a['fed']:>5} {a['answer']:>7}"
            f" {reuse_ttft(t) * 1e3:>17.0f} {full_ms:>16}"
        )
    print()
    row(f"reuse: TTFT turn {turns} / turn 1", f"{reuse_ratio:.3f}")
    row("  (engine's own ttft_s, without prompt building)", f"{reuse_engine_ratio:.3f}")
    row(f"  prompt building at turn {turns} (ms)", f"{reuse_ttft(turns, 'build') * 1e3:.1f}")
    row(f"  tokens fed at turn 1 / turn {turns}", f"{fed_first} / {fed_last}")
    row(f"  ms per fed token at turn 1 / turn {turns}", f"{ms_per_fed_first:.2f} / {ms_per_fed_last:.2f}")
    row(f"reuse: TTFT turn {turns} / turn 2 (same tokens fed)", f"{same_fed_ratio:.3f}")
    row("  previous answer's ids found in the cache", f"{min(answer_reused)}-{max(answer_reused)} (scripted)")
    row(f"full re-processing: TTFT turn {turns} / turn 1", f"{full_ratio:.3f}")
    row(f"TTFT at turn {turns}: full / reuse", f"{speedup:.1f}x")
    row(f"goal reuse ratio <= {GOAL}", verdict(reuse_ratio <= GOAL))
    return {
        "name": "multi_turn",
        "figure": f"TTFT turn {turns} / turn 1 (reuse)",
        "value": reuse_ratio,
        "goal": f"<= {GOAL}",
        "met": reuse_ratio <= GOAL,
        "full_ratio": full_ratio,
        "engine_ttft_ratio": reuse_engine_ratio,
        "same_fed_ratio": same_fed_ratio,
        "ms_per_fed_token": (ms_per_fed_first, ms_per_fed_last),
        "build_ms_last_turn": reuse_ttft(turns, "build") * 1e3,
        "speedup_at_last_turn": speedup,
        "prompt_tokens_last_turn": reuse[turns]["prompt"],
        "fed_first": fed_first,
        "fed_last": fed_last,
        "answer_ids_reused": answer_reused,
        "same_answers": same_answers,
        "turns": [
            {
                "turn": t,
                "prompt": reuse[t]["prompt"],
                "reused": reuse[t]["reused"],
                "fed": reuse[t]["fed"],
                "answer": reuse[t]["answer"],
                "ttft_reuse_ms": reuse_ttft(t) * 1e3,
                "ttft_full_ms": full[t]["ttft"] * 1e3 if t in full else None,
            }
            for t in range(1, turns + 1)
        ],
    }


if __name__ == "__main__":
    run()
