"""Terminal front end over the engine: streaming chat, one-shot answers and the prompt inspector."""

from __future__ import annotations

import json
import logging
import queue
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from engine.engine import Engine, RequestHandle
from engine.errors import HearthError
from engine.events import Finished, ModelLoaded, PromptReady, TextChunk
from engine.generation import GenerationRequest
from engine.model_folder import resolve_model
from engine.prompts import build_prompt, choose_format
from engine.sampling import SamplingSettings
from engine.tokenizer import load_tokenizer

HELP = "Type a message and press Enter. /reset starts over, /bye (or Ctrl-D) quits; Ctrl-C stops an answer."

log = logging.getLogger(__name__)

# How long to wait for the engine thread to release MLX's streams before shutting it down anyway.
STREAM_RELEASE_TIMEOUT_S = 30.0


@contextmanager
def _running_engine() -> Iterator[Engine]:
    """An engine that frees the model and MLX's per-thread streams on its own thread before it stops.

    Streams made on a thread (mlx-lm makes one when it is imported, on the engine thread) must be
    destroyed by that thread: when the thread ends with them alive, the process can abort on exit
    ("terminate called without an active exception", exit status 134) after a correct answer.
    Callers cancel their requests before leaving the block, so the engine is idle here.
    """
    engine = Engine().start()
    try:
        yield engine
    finally:
        try:
            if "mlx.core" in sys.modules:  # nothing to release when no MLX was ever used
                engine.unload(on_event=lambda _event: None).wait(timeout=STREAM_RELEASE_TIMEOUT_S)
                engine.run(_clear_streams).result(timeout=STREAM_RELEASE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - shutting down regardless
            log.exception("could not release MLX streams before shutdown")
        finally:
            engine.shutdown()


def _clear_streams(_loaded: Any) -> None:
    import mlx.core as mx

    clear_streams = getattr(mx, "clear_streams", None)  # mlx >= 0.32
    if clear_streams is not None:
        clear_streams()


def _load(engine: Engine, model: str, context_length: int | None, prompt_format: str | None) -> ModelLoaded:
    loaded = None
    handle = engine.load(model, context_length=context_length, prompt_format=prompt_format)
    try:
        for event in handle.events():
            if isinstance(event, ModelLoaded):
                loaded = event
            elif isinstance(event, Finished) and event.finish_reason == "error":
                raise HearthError(event.error or "the model could not be loaded")
    except KeyboardInterrupt:
        handle.cancel()
        raise
    assert loaded is not None
    return loaded


def _ask(engine: Engine, request: GenerationRequest, out: TextIO) -> Finished:
    """Generate and print the answer as it arrives. Ctrl-C (even repeated) stops the answer only."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    handle = engine.generate(request, on_event=events.put)
    return _stream(handle, events, out)


def _stream(handle: RequestHandle, events: queue.SimpleQueue, out: TextIO) -> Finished:
    """Show the request's events until it has finished; Ctrl-C cancels it and waits for the engine.

    The engine queues Finished before it sets `done`, so a done request with an empty queue has
    nothing left to show, even when a Ctrl-C interrupted the loop right after taking an event.
    """
    while True:
        try:
            while not (handle.done.is_set() and events.empty()):
                try:
                    event = events.get(timeout=0.1)  # a timeout, so Ctrl-C reaches this thread
                except queue.Empty:
                    continue
                _show(event, out)
            break
        except KeyboardInterrupt:
            handle.cancel()
    assert handle.result is not None
    return handle.result


def _show(event: Any, out: TextIO) -> None:
    if isinstance(event, TextChunk):
        out.write(event.text)
        out.flush()
    elif isinstance(event, PromptReady) and event.dropped_messages:
        n = len(event.dropped_messages)
        print(f"[note: the {n} oldest message(s) no longer fit in the {event.context_length:,}-token "
              f"context and were left out]", file=sys.stderr)


def chat(model: str, sampling: SamplingSettings, *, system: str | None, context_length: int | None,
         prompt_format: str | None) -> int:
    interactive = sys.stdin.isatty()
    with _running_engine() as engine:
        if interactive:
            print(f"Loading {model} ...", file=sys.stderr)
        loaded = _load(engine, model, context_length, prompt_format)
        if interactive:
            print(f"{loaded.name} is ready ({loaded.context_length:,}-token context). {HELP}", file=sys.stderr)
        _chat_loop(engine, sampling, system, interactive)
    return 0


def _chat_loop(engine: Engine, sampling: SamplingSettings, system: str | None, interactive: bool) -> None:
    messages = [{"role": "system", "content": system}] if system else []
    conversation = uuid.uuid4().hex
    while True:
        line = _read_line(interactive)
        if line is None or line.strip() in ("/bye", "/exit", "/quit"):
            return
        if not line.strip():
            continue
        if line.strip() == "/reset":
            messages = messages[:1] if system else []
            engine.forget(conversation)
            print("[conversation cleared]", file=sys.stderr)
            continue
        messages.append({"role": "user", "content": line})
        result = _ask(engine, GenerationRequest(list(messages), sampling, conversation), sys.stdout)
        _after_answer(messages, result)


def _read_line(interactive: bool) -> str | None:
    while True:
        try:
            if interactive:
                return input(">>> ")
            line = sys.stdin.readline()
            return line.rstrip("\n") if line else None
        except EOFError:
            return None
        except KeyboardInterrupt:
            print("\n(use /bye or Ctrl-D to quit)", file=sys.stderr)


def _after_answer(messages: list[dict[str, str]], result: Finished) -> None:
    print(flush=True)
    if result.finish_reason == "error":
        print(f"[error: {result.error}]", file=sys.stderr)
    elif result.finish_reason == "cancelled":
        print("[stopped]", file=sys.stderr)
    elif result.finish_reason == "length":
        print("[answer cut: max tokens reached]", file=sys.stderr)
    if result.text:  # a stopped or cut answer stays in the conversation, as shown
        messages.append({"role": "assistant", "content": result.text})
    else:
        messages.pop()  # nothing was answered: keep roles alternating


def generate_once(model: str, messages: list[dict[str, Any]], sampling: SamplingSettings, *,
                  as_json: bool, context_length: int | None, prompt_format: str | None) -> int:
    with _running_engine() as engine:
        _load(engine, model, context_length, prompt_format)
        if as_json:
            handle = engine.generate(GenerationRequest(messages, sampling))
            try:
                result = handle.wait()
            except KeyboardInterrupt:
                handle.cancel()
                raise
        else:
            result = _ask(engine, GenerationRequest(messages, sampling), sys.stdout)
            if result.text or result.finish_reason != "error":  # an error alone prints nothing here
                print(flush=True)
    if result.finish_reason == "error":
        raise HearthError(result.error or "generation failed")
    if result.finish_reason == "cancelled":  # Ctrl-C: what was shown is all there is
        print("[stopped]", file=sys.stderr)
        return 130
    if as_json:
        print(json.dumps(_result_json(result), ensure_ascii=False))
    return 0


def _result_json(result: Finished) -> dict[str, Any]:
    return {
        "text": result.text,
        "token_ids": result.token_ids,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "generation_tokens": result.generation_tokens,
        "ttft_s": result.ttft_s,
        "prompt_tps": result.prompt_tps,
        "generation_tps": result.generation_tps,
        "peak_memory_gb": result.peak_memory_gb,
        "dropped_messages": result.dropped_messages,
        "reused_tokens": result.reused_tokens,
        "seed": result.seed,
    }


def show_prompt(model: str, messages: list[dict[str, Any]], *, as_json: bool,
                context_length: int | None, prompt_format: str | None, max_tokens: int) -> int:
    """The exact prompt, built from the tokenizer alone: no weights are loaded."""
    info = resolve_model(model)
    fmt = choose_format(info, prompt_format)
    tokenizer = load_tokenizer(info)
    prompt = build_prompt(tokenizer, messages, fmt, context_length or info.default_context, max_tokens)
    text = tokenizer.render(prompt.ids)
    if as_json:
        print(json.dumps({"text": text, "token_ids": prompt.ids, "format": fmt.value,
                          "dropped_messages": prompt.dropped_messages}, ensure_ascii=False))
    else:
        print(text)
        print(f"\n[{len(prompt.ids)} tokens, {fmt.value} format] {prompt.ids}")
        if prompt.dropped_messages:
            print(f"[left out to fit the context: messages {prompt.dropped_messages}]")
    return 0
