"""Prompt-lookup speculative decoding: drafts, identical greedy output, the switch, the figures."""

from __future__ import annotations

import json

import pytest

from engine.engine import Engine
from engine.generation import GenerationRequest
from engine.sampling import SamplingSettings, make_logits_processors, make_sampler
from engine.speculative import (
    DraftCounts,
    DraftStats,
    PromptLookup,
    _judge,
    lookup_generate_step,
    wants_lookup,
)

CODE = "\n".join(f"def step_{i}(x):\n    return x * {i} + {i % 3}\n" for i in range(8))
EDIT = [{"role": "user", "content": f"Rename x to value in this code and repeat it:\n{CODE}"}]


def test_a_draft_is_what_followed_the_last_ngram_most_recently():
    lookup = PromptLookup([5, 6, 7, 8, 9, 1, 5, 6, 7, 4, 2, 5, 6])
    assert lookup.draft(3) == [7, 4, 2]  # "5 6" last came before "7 4 2", not "7 8 9"
    lookup.append(7)
    assert lookup.draft(2) == [4, 2]  # now "5 6 7" matches, its latest occurrence
    assert PromptLookup([1, 2, 3]).draft(3) == []  # nothing repeats
    assert PromptLookup([4, 4, 4]).draft(3) == [4]  # a run: the match overlaps the tail


def _run_direct(engine, messages, settings, switch: bool):
    """Generate on the engine thread with lookup_generate_step (switch as given) and without."""

    def work(loaded):
        import mlx.core as mx
        from mlx_lm.generate import generate_step
        from mlx_lm.models.cache import make_prompt_cache

        from engine.prompts import build_prompt

        prompt = build_prompt(loaded.tokenizer, messages, loaded.prompt_format, loaded.context_length,
                              settings.max_tokens)
        sampler = make_sampler(settings, loaded.info.vocab_size)
        mx.random.seed(0)
        plain = [t for t, _ in generate_step(
            mx.array(prompt.ids), loaded.model, max_tokens=settings.max_tokens, sampler=sampler,
            logits_processors=make_logits_processors(settings, []),
            prompt_cache=make_prompt_cache(loaded.model), prefill_step_size=64)]
        counts = DraftCounts()
        drafted = [t for t, _ in lookup_generate_step(
            prompt.ids, loaded.model, cache=make_prompt_cache(loaded.model), context=prompt.ids,
            max_tokens=settings.max_tokens, sampler=sampler,
            processors_for=lambda earlier: make_logits_processors(settings, earlier),
            prefill_step_size=64, progress=lambda *_: None, counts=counts, stats=DraftStats(),
            switch=switch)]
        return plain, drafted, counts

    return engine.run(work).result(120)


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_output_is_identical_with_drafts_kept_on(engine_llama2, penalty):
    settings = SamplingSettings(temperature=0.0, max_tokens=120, repetition_penalty=penalty)
    plain, drafted, counts = _run_direct(engine_llama2, EDIT, settings, switch=False)
    assert drafted == plain
    assert counts.proposed > 20 and counts.accepted > 0  # drafts were checked, and some kept
    assert counts.switched_off == ""


def test_with_the_switch_on_output_stays_identical(engine_llama2):
    settings = SamplingSettings(temperature=0.0, max_tokens=120)
    plain, drafted, _counts = _run_direct(engine_llama2, EDIT, settings, switch=True)
    assert drafted == plain


def _judged(plain_s: list[float], drafted: list[tuple[float, int, int]]) -> tuple[DraftCounts, DraftStats]:
    counts, stats = DraftCounts(plain_s=plain_s), DraftStats()
    for sample in drafted:
        counts.drafted.append(sample)
        _judge(counts, stats)
        if counts.switched_off:
            break
    return counts, stats


def test_the_switch_turns_drafting_off_where_a_pass_over_k_ids_costs_k_passes():
    # MLX's CPU backend: 2 ids cost 2 passes (10 ms each), even with the draft accepted.
    counts, stats = _judged([0.010, 0.011], [(0.020, 2, 2)])
    assert "costs" in counts.switched_off and len(counts.drafted) == 1
    assert stats.never_pays and not wants_lookup("auto", stats)
    assert wants_lookup("lookup", stats) and not wants_lookup("off", DraftStats())


def test_the_switch_keeps_cheap_drafts_that_are_accepted_and_drops_those_that_are_not():
    # Metal-like: a pass over 4 ids costs 1.2 passes over one.
    accepted = [(0.012, 4, 4)] * 5
    counts, stats = _judged([0.010, 0.010], accepted)
    assert counts.switched_off == "" and not stats.never_pays
    rejected = [(0.012, 4, 1)] * 5  # every draft rejected: 1 id per 1.2 passes
    counts, stats = _judged([0.010, 0.010], rejected)
    assert counts.switched_off and len(counts.drafted) == 3 and not stats.never_pays


def test_sampled_answers_keep_drafted_ids_only_where_the_model_picks_them(engine_llama2):
    settings = SamplingSettings(temperature=0.8, top_p=1.0, max_tokens=60, seed=3)
    _plain, drafted, counts = _run_direct(engine_llama2, EDIT, settings, switch=False)
    assert len(drafted) == 60 or drafted[-1] in engine_llama2.loaded.tokenizer.eos_ids
    assert 0 <= counts.accepted <= counts.proposed


def test_the_answer_reports_drafted_and_accepted_ids(llama2_chat):
    settings = SamplingSettings(temperature=0.0, max_tokens=60)
    with Engine(prefill_step_size=64, save_caches=False) as engine:
        engine.load(llama2_chat).wait()
        off = engine.generate(GenerationRequest(EDIT, settings, draft="off")).wait()
        lookup = engine.generate(GenerationRequest(EDIT, settings, draft="lookup")).wait()
        auto = engine.generate(GenerationRequest(EDIT, settings)).wait()
    assert off.token_ids == lookup.token_ids == auto.token_ids
    assert (off.draft_proposed, off.draft_accepted) == (0, 0)
    assert lookup.draft_proposed > 0 and 0 <= lookup.draft_accepted <= lookup.draft_proposed


def test_generate_takes_draft_and_reports_it_in_json(llama2_chat, small_draft, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    messages = tmp_path / "edit.json"
    messages.write_text(json.dumps(EDIT), encoding="utf-8")
    repo = Path(__file__).resolve().parents[1]
    results = {}
    for mode in ("lookup", "off", str(small_draft)):
        proc = subprocess.run([sys.executable, "-m", "app.cli", "generate", str(llama2_chat), "--messages",
                               str(messages), "--json", "--temp", "0", "--max-tokens", "40",
                               "--draft", mode], cwd=repo, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        results[mode] = json.loads(proc.stdout)
    assert results["lookup"]["token_ids"] == results["off"]["token_ids"]
    assert results["lookup"]["draft_proposed"] > 0
    assert results[str(small_draft)]["token_ids"] == results["off"]["token_ids"]
    assert results[str(small_draft)]["draft_proposed"] > 0
    assert results["off"]["draft_proposed"] == results["off"]["draft_accepted"] == 0
    bad = subprocess.run([sys.executable, "-m", "app.cli", "generate", str(llama2_chat), "--messages",
                          str(messages), "--draft", "turbo"], cwd=repo, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "--draft turbo" in bad.stderr


@pytest.fixture(scope="module")
def small_draft(tmp_path_factory):
    """A smaller random model with the Llama 2 style model's tokenizer."""
    import tiny_models

    return tiny_models.build_model(tmp_path_factory.mktemp("draft") / "draft", "spm_legacy", seed=7,
                                   hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                   intermediate_size=64)


def test_a_draft_model_gives_identical_greedy_output(llama2_chat, small_draft, tiny):
    settings = SamplingSettings(temperature=0.0, max_tokens=60)
    with Engine(prefill_step_size=64, save_caches=False) as engine:
        engine.load(llama2_chat).wait()
        off = engine.generate(GenerationRequest(EDIT, settings, "c", draft="off")).wait()
        refused = engine.generate(GenerationRequest(EDIT, settings, draft="model")).wait()
        assert refused.finish_reason == "error" and "No draft model" in refused.error
        mismatch = engine.load_draft(tiny["bpe_llama3"]).wait()
        assert mismatch.finish_reason == "error" and "tokenizers differ" in mismatch.error
        for draft in (small_draft, llama2_chat):  # a small model; the model itself (all accepted)
            assert engine.load_draft(draft).wait().finish_reason == "done"
            result = engine.generate(GenerationRequest(EDIT, settings, "c", draft="model")).wait()
            assert result.token_ids == off.token_ids
            assert result.draft_proposed > 0
        # Drafting with the model itself: every drafted id is the model's own choice.
        assert result.draft_accepted == result.draft_proposed


def test_a_draft_model_with_drafts_kept_on_across_a_turn(engine_llama2, small_draft):
    def work(loaded):
        import mlx.core as mx
        from mlx_lm.generate import generate_step
        from mlx_lm.models.cache import make_prompt_cache
        from mlx_lm.utils import load_model

        from engine.prompts import build_prompt

        draft, _ = load_model(small_draft)
        settings = SamplingSettings(temperature=0.0, max_tokens=80, repetition_penalty=1.2)
        prompt = build_prompt(loaded.tokenizer, EDIT, loaded.prompt_format, loaded.context_length, 80)
        sampler = make_sampler(settings, loaded.info.vocab_size)
        plain = [t for t, _ in generate_step(
            mx.array(prompt.ids), loaded.model, max_tokens=80, sampler=sampler,
            logits_processors=make_logits_processors(settings, []),
            prompt_cache=make_prompt_cache(loaded.model))]
        counts = DraftCounts()
        drafted = [t for t, _ in lookup_generate_step(
            prompt.ids, loaded.model, cache=make_prompt_cache(loaded.model), context=prompt.ids,
            max_tokens=80, sampler=sampler,
            processors_for=lambda earlier: make_logits_processors(settings, earlier),
            prefill_step_size=64, progress=lambda *_: None, counts=counts, stats=DraftStats(),
            switch=False, draft_model=draft)]
        return plain, drafted, counts

    plain, drafted, counts = engine_llama2.run(work).result(120)
    assert drafted == plain and counts.proposed > 40


def test_drafts_grow_while_accepted_whole_and_shrink_after_a_miss():
    from engine.speculative import MAX_DRAFT_TOKENS, _next_size

    assert _next_size(3, 3, 3) == 5 and _next_size(7, 7, 7) == MAX_DRAFT_TOKENS
    assert _next_size(3, 1, 1) == 5  # after the one-id trial, the usual length and more
    assert _next_size(8, 8, 2) == 3 and _next_size(5, 5, 0) == 1
