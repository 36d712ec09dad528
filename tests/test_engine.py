"""The engine thread with real tiny models: streaming, cancel, errors, seeds, cache reuse, context."""

from __future__ import annotations

import sys
import threading

import pytest

from engine.engine import Engine
from engine.events import Finished, PromptProgress, PromptReady, TextChunk
from engine.generation import GenerationRequest
from engine.sampling import SamplingSettings

GREEDY = SamplingSettings(temperature=0.0, max_tokens=24)


def _collect(handle):
    events = list(handle.events())
    assert isinstance(events[-1], Finished)
    return events, events[-1]


def _ask(text: str, system: str | None = None):
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": text}]


def test_streamed_chunks_add_up_to_the_final_text(engine_llama2):
    events, done = _collect(engine_llama2.generate(GenerationRequest(_ask("Hello, café 中文 🙂"), GREEDY)))
    chunks = [e.text for e in events if isinstance(e, TextChunk)]
    assert done.finish_reason in ("stop", "length"), done.error
    assert "".join(chunks) == done.text
    assert done.generation_tokens == len(done.token_ids) > 0
    assert done.prompt_tokens > 0 and done.ttft_s > 0 and done.generation_tps > 0
    assert done.peak_memory_gb > 0
    ready = next(e for e in events if isinstance(e, PromptReady))
    assert ready.prompt_tokens == done.prompt_tokens and ready.dropped_messages == []


def test_final_text_is_the_decode_of_the_generated_ids(engine_llama2):
    tokenizer = engine_llama2.loaded.tokenizer
    for seed in range(6):
        settings = SamplingSettings(temperature=1.0, top_p=1.0, max_tokens=40, seed=seed)
        done = engine_llama2.generate(GenerationRequest(_ask(f"Tell me {seed}"), settings)).wait()
        ids = [t for t in done.token_ids if t not in tokenizer.eos_ids]
        raw = b"".join(tokenizer.token_bytes[t] for t in ids).decode("utf-8", "replace")
        expected = raw[1:] if tokenizer.strip_leading_space and raw.startswith(" ") else raw
        assert done.text == expected
        decoded = tokenizer.decode(ids)
        if "\ufffd" not in decoded:  # invalid byte runs: counts of U+FFFD differ by implementation
            assert done.text == decoded


def test_same_seed_same_answer_different_seed_different_answer(engine_llama2):
    def answer(seed):
        settings = SamplingSettings(temperature=1.0, top_p=0.95, top_k=50, min_p=0.01,
                                    repetition_penalty=1.1, max_tokens=32, seed=seed)
        return engine_llama2.generate(GenerationRequest(_ask("Pick words"), settings)).wait()

    first, again, other = answer(1234), answer(1234), answer(99)
    assert first.token_ids == again.token_ids and first.seed == 1234
    assert first.token_ids != other.token_ids


def test_unseeded_answers_report_the_seed_that_reproduces_them(engine_llama2):
    settings = SamplingSettings(temperature=1.0, max_tokens=16)
    done = engine_llama2.generate(GenerationRequest(_ask("Surprise me"), settings)).wait()
    replay = SamplingSettings(temperature=1.0, max_tokens=16, seed=done.seed)
    assert engine_llama2.generate(GenerationRequest(_ask("Surprise me"), replay)).wait().token_ids == done.token_ids


def test_stop_strings_end_the_answer_before_the_stop_text(engine_llama2):
    free = engine_llama2.generate(GenerationRequest(_ask("Say something"), GREEDY)).wait()
    assert len(free.text) > 6
    stop = free.text[3:6]
    stopped = engine_llama2.generate(
        GenerationRequest(_ask("Say something"), SamplingSettings(temperature=0.0, max_tokens=24, stop=(stop,)))
    ).wait()
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.find(stop)]


def test_length_finish_when_max_tokens_reached(engine_llama2):
    settings = SamplingSettings(temperature=0.0, max_tokens=3)
    done = engine_llama2.generate(GenerationRequest(_ask("Count"), settings)).wait()
    assert done.finish_reason == "length" and done.generation_tokens == 3


def test_cancel_during_decode_stops_within_a_token(engine_llama2):
    settings = SamplingSettings(temperature=1.0, max_tokens=2000, seed=5)
    seen = []
    holder = {}

    def on_event(event):
        seen.append(event)
        if isinstance(event, TextChunk):
            holder["handle"].cancel()

    handle = engine_llama2.generate(GenerationRequest(_ask("Write a long story"), settings), on_event)
    holder["handle"] = handle
    done = handle.wait(timeout=60)
    assert done.finish_reason == "cancelled"
    first_chunk = next(i for i, e in enumerate(seen) if isinstance(e, TextChunk))
    assert [e for e in seen[first_chunk + 1 :] if isinstance(e, TextChunk)] == []
    assert done.generation_tokens <= 2
    # The engine is ready for the next request.
    assert engine_llama2.generate(GenerationRequest(_ask("Still there?"), GREEDY)).wait().finish_reason in ("stop", "length")


def test_cancel_during_prefill_stops_within_a_chunk(engine_llama2):
    long_text = "many words to read " * 300  # well over 10 prefill chunks of 64 tokens
    progress = []
    holder = {}

    def on_event(event):
        if isinstance(event, PromptProgress):
            progress.append(event)
            if event.processed > 0:
                holder["handle"].cancel()

    handle = engine_llama2.generate(
        GenerationRequest(_ask(long_text), GREEDY, conversation_id="prefill-cancel"), on_event
    )
    holder["handle"] = handle
    done = handle.wait(timeout=60)
    assert done.finish_reason == "cancelled"
    assert done.generation_tokens == 0
    total = progress[-1].total
    assert progress[-1].processed <= 2 * 64 < total
    # The partly filled cache must not corrupt the next turn: same answer as a fresh engine's.
    again = engine_llama2.generate(GenerationRequest(_ask(long_text), GREEDY, conversation_id="prefill-cancel")).wait()
    fresh = engine_llama2.generate(GenerationRequest(_ask(long_text), GREEDY)).wait()
    assert again.reused_tokens > 0
    assert again.token_ids == fresh.token_ids


def test_cancel_before_start_is_reported(engine_llama2):
    blocker = engine_llama2.run(lambda loaded: threading.Event().wait(0.3))
    handle = engine_llama2.generate(GenerationRequest(_ask("queued"), GREEDY))
    handle.cancel()
    blocker.result(timeout=10)
    assert handle.wait().finish_reason == "cancelled"


def _chat_turns():
    """A conversation with follow-ups, an edited earlier turn and regenerations."""
    sys_msg = {"role": "system", "content": "You are helpful."}
    turns = [
        [sys_msg, {"role": "user", "content": "First question about llamas"}],
        None,  # follow-up appended after the first answer
        None,
        "edit",  # the second user message rewritten
        "regenerate",  # the same prompt again
        None,
    ]
    return sys_msg, turns


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_cache_reuse_never_changes_the_answer(engine_llama2, penalty):
    settings = SamplingSettings(temperature=0.0, max_tokens=12, repetition_penalty=penalty)
    sys_msg = {"role": "system", "content": "You are helpful."}
    history = [sys_msg]
    conversation = f"reuse-{penalty}"
    reused = []

    def turn(messages):
        cached = engine_llama2.generate(GenerationRequest(messages, settings, conversation)).wait()
        plain = engine_llama2.generate(GenerationRequest(messages, settings)).wait()
        assert cached.token_ids == plain.token_ids
        assert cached.text == plain.text
        reused.append(cached.reused_tokens)
        return cached.text

    for i in range(4):
        history.append({"role": "user", "content": f"Question {i}: tell me about llamas and alpacas"})
        history.append({"role": "assistant", "content": turn(history)})
    # Edit the second user message: a branch sharing only the first exchange.
    edited = history[:3] + [{"role": "user", "content": "A different second question"}]
    turn(edited)
    # Regenerate the last answer of the original branch, then continue it.
    turn(history[:-1])
    turn(history + [{"role": "user", "content": "And one more"}])
    assert reused[0] == 0
    assert all(n > 0 for n in reused[1:])


def test_multi_turn_reuse_feeds_only_the_new_part(engine_llama2):
    settings = SamplingSettings(temperature=0.0, max_tokens=8)
    history = [{"role": "user", "content": "Hello there"}]
    first = engine_llama2.generate(GenerationRequest(history, settings, "grow")).wait()
    history += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "More please"}]
    second = engine_llama2.generate(GenerationRequest(history, settings, "grow")).wait()
    # All of the first prompt is reused; at most the re-encoded answer tail and the new turn are fed.
    assert second.reused_tokens >= first.prompt_tokens
    assert second.prompt_tokens - second.reused_tokens < second.prompt_tokens - first.prompt_tokens + 4


def test_context_overflow_is_reported_and_generation_goes_on(llama2_chat):
    with Engine(prefill_step_size=64) as engine:
        assert engine.load(llama2_chat, context_length=160).wait().finish_reason == "done"
        history = [{"role": "system", "content": "Stay."}]
        for i in range(6):
            history += [{"role": "user", "content": f"question {i} with some words"},
                        {"role": "assistant", "content": f"answer {i} with some more words"}]
        history.append({"role": "user", "content": "newest"})
        events, done = _collect(engine.generate(GenerationRequest(history, SamplingSettings(temperature=0, max_tokens=30))))
        ready = next(e for e in events if isinstance(e, PromptReady))
        assert done.finish_reason in ("stop", "length")
        assert ready.dropped_messages and ready.dropped_messages == done.dropped_messages
        assert ready.dropped_messages[0] == 1  # the system prompt (index 0) is kept
        assert done.prompt_tokens + done.generation_tokens <= 160
        too_long = engine.generate(GenerationRequest(_ask("word " * 400), GREEDY)).wait()
        assert too_long.finish_reason == "error" and "does not fit" in too_long.error


def test_errors_arrive_as_events_and_the_thread_survives(llama2_chat):
    with Engine() as engine:
        no_model = engine.generate(GenerationRequest(_ask("hi"), GREEDY)).wait()
        assert no_model.finish_reason == "error" and "No model is loaded" in no_model.error
        bad = engine.load("/no/such/folder").wait()
        assert bad.finish_reason == "error" and "No model folder" in bad.error
        boom = engine.run(lambda loaded: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            boom.result(timeout=10)
        assert engine.load(llama2_chat).wait().finish_reason == "done"
        bad_roles = engine.generate(GenerationRequest([{"role": "assistant", "content": "x"}], GREEDY)).wait()
        assert bad_roles.finish_reason == "error" and bad_roles.error_kind == "PromptError"
        assert engine.generate(GenerationRequest(_ask("hi"), GREEDY)).wait().finish_reason in ("stop", "length")


def test_every_mlx_call_happens_on_the_engine_thread(llama2_chat):
    calls: dict[int, int] = {}
    lock = threading.Lock()

    def profiler(frame, event, arg):
        if event == "c_call" and (getattr(arg, "__module__", "") or "").startswith("mlx"):
            with lock:
                calls[threading.get_ident()] = calls.get(threading.get_ident(), 0) + 1
        elif event == "call" and frame.f_globals.get("__name__", "").startswith(("mlx.", "mlx_lm")):
            with lock:
                calls[threading.get_ident()] = calls.get(threading.get_ident(), 0) + 1

    threading.setprofile(profiler)
    sys.setprofile(profiler)
    try:
        engine = Engine(prefill_step_size=32).start()
        handle = engine.load(llama2_chat)
        handle.wait()
        conversation = [{"role": "user", "content": "Hello " * 40}]
        engine.generate(GenerationRequest(conversation, GREEDY, "thread-check")).wait()
        engine.generate(GenerationRequest(conversation, GREEDY, "thread-check")).wait()
        engine.unload().wait()
        engine_thread = engine.thread_id
        engine.shutdown()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    assert calls.get(engine_thread, 0) > 100
    others = {t: n for t, n in calls.items() if t != engine_thread}
    assert others == {}, f"MLX called from other threads: {others}"


def test_unload_frees_the_model(llama2_chat):
    import mlx.core as mx

    with Engine() as engine:
        # Other engines in this test session hold models too; MLX's counter is process-wide.
        before = engine.run(lambda _: mx.get_active_memory()).result(timeout=30)
        engine.load(llama2_chat).wait()
        engine.generate(GenerationRequest(_ask("hi"), GREEDY, "c")).wait()
        loaded = engine.run(lambda _: mx.get_active_memory()).result(timeout=30)
        assert loaded > before
        events, _ = _collect(engine.unload())
        # A few bytes may remain: the random generator's key, created by seeding.
        assert events[0].active_memory_bytes - before < 4096
        again = engine.generate(GenerationRequest(_ask("hi"), GREEDY)).wait()
        assert again.finish_reason == "error" and "No model is loaded" in again.error


def test_shutdown_mid_generation_ends_cleanly(llama2_chat):
    engine = Engine().start()
    engine.load(llama2_chat).wait()
    handle = engine.generate(GenerationRequest(_ask("long"), SamplingSettings(temperature=1.0, max_tokens=5000)))
    queued = engine.generate(GenerationRequest(_ask("queued"), GREEDY))
    next(e for e in handle.events() if isinstance(e, TextChunk))
    engine.shutdown()
    assert handle.wait().finish_reason in ("cancelled", "stop")
    assert queued.wait().finish_reason == "cancelled"


def test_a_context_beyond_what_the_model_was_trained_for_is_refused(llama2_chat):
    with Engine() as engine:
        refused = engine.load(llama2_chat, context_length=8192).wait()
        assert refused.finish_reason == "error" and "at most 4,096 tokens" in refused.error
        assert engine.load(llama2_chat, context_length=4096).wait().finish_reason == "done"


def test_continuing_a_cut_answer_reuses_its_cache_and_keeps_the_space(engine_llama2):
    question = _ask("Tell me about llamas")
    first = engine_llama2.generate(
        GenerationRequest(question, SamplingSettings(temperature=0.0, max_tokens=10), "cont")).wait()
    assert first.finish_reason == "length"
    partial = first.text.rstrip()
    more = engine_llama2.generate(GenerationRequest(
        question + [{"role": "assistant", "content": partial}],
        SamplingSettings(temperature=0.0, max_tokens=10), "cont", continue_answer=True)).wait()
    assert more.finish_reason == "length" and more.text
    assert more.reused_tokens >= first.prompt_tokens  # the question is not processed again
    tokenizer = engine_llama2.loaded.tokenizer
    # Nothing is stripped: the first new word keeps its space, not glued to the partial answer.
    ids = [t for t in more.token_ids if t not in tokenizer.eos_ids]
    assert more.text == b"".join(tokenizer.token_bytes[t] for t in ids).decode("utf-8", "replace")
