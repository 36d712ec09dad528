"""The server: what `hearth serve` adds over the engine, and cache reuse for resent conversations.

The engine and the server run in this process, as in `hearth serve`; the HTTP client (httpx,
parsing the SSE stream as an OpenAI client does) runs in a process of its own, driven over a pipe.

1. Speed: a streamed chat completion through the server over the engine directly (a RequestHandle's
   events read by a thread of this process), same model, same messages, greedy, the same MAX_TOKENS
   tokens. Two definitions: wall-clock tokens/s from the first text to the end as the consumer sees
   it, and this process's CPU time per token over the whole request (engine, plus the server on its
   path). On a machine shared with other jobs the CPU figure is the steady one. Rounds alternate
   which path goes first; ratios are taken within each round.
2. Time to first token added by the server: the client's time from sending the request to the first
   text, minus the engine's from submitting to the first text, paired within each round. Both ask
   for a conversation whose prompt is already in the KV cache (the engine by conversation id, the
   server by its own key), so prefill is one token and the difference is the server's own work.
3. A 20-turn chat resent in full each turn, as agents and editors do: the client sends the whole
   conversation, with the server's own earlier answers, every turn. Two chats are interleaved (two
   samples per turn). TTFT at turn 20 / turn 1; with full re-processing it would grow with the chat.

Goals: speed >= 0.97, added TTFT <= 10 ms, turn 20 / turn 1 <= 1.5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

from bench.common import (
    REPO,
    ModelSpec,
    engine_session,
    header,
    median,
    model_folder,
    row,
    spread,
    verdict,
)

SPEC = ModelSpec(variant="spm_legacy", hidden_size=512, num_layers=4, intermediate_size=1408)
CONTEXT = 4096
MAX_TOKENS = 256
REPEATS = 8
TURNS = 20
ANSWER_TOKENS = 32
USER_TOKENS = 60
SPEED_GOAL, TTFT_GOAL_MS, TURNS_GOAL = 0.97, 10.0, 1.5
SYSTEM = ("You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, "
          "while being safe.")
CANDIDATE_PROMPTS = (
    "Tell me a long story about a llama who keeps a fire burning in the hearth all winter.",
    "Write a detailed answer: how does a local model stream text token by token?",
    "Please explain, step by step, what the window, the prompt and the memory are for.",
    "Hello! What is the question, and what would the answer be?",
)


def _direct(engine, messages: list[dict], settings, conversation_id: str) -> dict:
    """The engine as the app uses it: submit, then read the handle's events."""
    from engine.events import TextChunk
    from engine.generation import GenerationRequest

    sent, sent_cpu = time.perf_counter(), time.process_time()
    first = None
    handle = engine.generate(GenerationRequest(messages, settings, conversation_id))
    parts = []
    for event in handle.events(poll_s=0.01):
        if isinstance(event, TextChunk):
            first = first or time.perf_counter()
            parts.append(event.text)
    end, end_cpu = time.perf_counter(), time.process_time()
    done = handle.result
    return {"ttft": first - sent, "tps": done.generation_tokens / (end - first), "text": "".join(parts),
            "tokens": done.generation_tokens, "reason": done.finish_reason,
            "cpu_per_token": (end_cpu - sent_cpu) / done.generation_tokens}


class _Client:
    """An OpenAI-style client of the server, in its own process: streamed chat completions, timed
    there as a user sees them; this process's CPU time over each request is added here."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bench.server", "--client", url], cwd=REPO,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def chat(self, messages: list[dict], max_tokens: int) -> dict:
        sent_cpu = time.process_time()
        self.process.stdin.write(json.dumps({"messages": messages, "max_tokens": max_tokens}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the client process ended")
        got = json.loads(line)
        got["cpu_per_token"] = (time.process_time() - sent_cpu) / got["tokens"]
        return got

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(60)


def _client_process(url: str) -> None:
    """The client's side: one request per line of stdin, one result per line of stdout."""
    import httpx

    with httpx.Client(timeout=600) as http:
        model = http.get(f"{url}/v1/models").json()["data"][0]["id"]
        for line in sys.stdin:
            request = json.loads(line)
            print(json.dumps(_stream_chat(http, url, model, **request)), flush=True)


def _stream_chat(http, url: str, model: str, messages: list[dict], max_tokens: int) -> dict:
    body = {"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens,
            "stream": True, "stream_options": {"include_usage": True}}
    sent = time.perf_counter()
    first = end = None
    parts, usage, reason = [], None, None
    with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    first = first or time.perf_counter()
                    parts.append(choice["delta"]["content"])
                reason = choice["finish_reason"] or reason
            end = time.perf_counter()
    tokens = usage["completion_tokens"]
    return {"ttft": first - sent, "tps": tokens / (end - first), "text": "".join(parts),
            "tokens": tokens, "reason": reason}


def _pick_prompt(engine, settings) -> list[dict]:
    """The first candidate the random model answers to MAX_TOKENS without EOS."""
    for prompt in CANDIDATE_PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        if _direct(engine, messages, settings, "bench-pick")["reason"] == "length":
            return messages
    raise RuntimeError("every candidate prompt ended early")


def _speed(engine, client: _Client, settings) -> dict:
    messages = _pick_prompt(engine, settings)
    _direct(engine, messages, settings, "bench-direct")  # both caches now hold the prompt
    client.chat(messages, MAX_TOKENS)
    rounds = []
    for i in range(REPEATS):
        order = ("direct", "server") if i % 2 == 0 else ("server", "direct")
        got = {}
        for which in order:
            got[which] = (_direct(engine, messages, settings, "bench-direct") if which == "direct"
                          else client.chat(messages, MAX_TOKENS))
        rounds.append(got)
    same = all(r["direct"]["text"] == r["server"]["text"] and r["server"]["tokens"] == MAX_TOKENS
               for r in rounds)
    ratios = [r["server"]["tps"] / r["direct"]["tps"] for r in rounds]
    cpu_ratios = [r["direct"]["cpu_per_token"] / r["server"]["cpu_per_token"] for r in rounds]
    added_ms = [(r["server"]["ttft"] - r["direct"]["ttft"]) * 1e3 for r in rounds]
    return {"same": same, "ratios": ratios, "added_ms": added_ms, "cpu_ratios": cpu_ratios,
            "direct_cpu_ms": median([r["direct"]["cpu_per_token"] * 1e3 for r in rounds]),
            "server_cpu_ms": median([r["server"]["cpu_per_token"] * 1e3 for r in rounds]),
            "direct_tps": median([r["direct"]["tps"] for r in rounds]),
            "server_tps": median([r["server"]["tps"] for r in rounds]),
            "direct_ttft_ms": median([r["direct"]["ttft"] * 1e3 for r in rounds]),
            "server_ttft_ms": median([r["server"]["ttft"] * 1e3 for r in rounds])}


def _texts(count_tokens, count: int, min_tokens: int, label: str, seed: int) -> list[str]:
    import tiny_models

    words = iter(" ".join(tiny_models.training_corpus(seed=seed, num_lines=4000)).split())
    texts = []
    for i in range(count):
        parts = [f"{label} {i + 1}:"]
        while count_tokens(" ".join(parts)) < min_tokens:
            parts.append(next(words))
        texts.append(" ".join(parts))
    return texts


def _turns(engine, served, client: _Client) -> dict:
    count = lambda text: len(engine.loaded.tokenizer.encode_plain(text))  # noqa: E731
    chats = {name: [{"role": "system", "content": f"{SYSTEM} ({name})"}] for name in ("a", "b")}
    users = {name: _texts(count, TURNS, USER_TOKENS, f"Question {name}", seed) for name, seed in
             (("a", 7), ("b", 9))}
    per_turn: dict[int, list[dict]] = {}
    for turn in range(1, TURNS + 1):
        for name in (("a", "b") if turn % 2 else ("b", "a")):
            messages = [*chats[name], {"role": "user", "content": users[name][turn - 1]}]
            got = client.chat(messages, ANSWER_TOKENS)
            done = served.recent[-1]
            per_turn.setdefault(turn, []).append(
                {"ttft": got["ttft"], "prompt": done.prompt_tokens, "reused": done.reused_tokens})
            chats[name] = [*messages, {"role": "assistant", "content": got["text"]}]
    last = [*chats["a"][:-1]]  # turn 20 of chat a, re-processed in full as a baseline
    from engine.sampling import SamplingSettings

    settings = SamplingSettings(temperature=0, max_tokens=ANSWER_TOKENS)
    full_last = _direct(engine, last, settings, "bench-full-last-turn")["ttft"]
    full_first = _direct(engine, last[:2], settings, "bench-full-first-turn")["ttft"]
    return {"per_turn": per_turn, "full_first": full_first, "full_last": full_last}


def run() -> dict:
    header("Server", "hearth serve over the engine directly: tokens/s, added TTFT, a 20-turn resent chat")
    folder = model_folder(SPEC)
    # A fresh Hearth home: KV caches that earlier runs saved to disk would answer these same
    # deterministic chats from disk and hide what the server's own cache keys do.
    with tempfile.TemporaryDirectory(prefix="hearth-bench-server-") as home, _hearth_home(home):
        return _run(folder)


@contextmanager
def _hearth_home(path: str):
    old = os.environ.get("HEARTH_HOME")
    os.environ["HEARTH_HOME"] = path
    try:
        yield
    finally:
        if old is None:
            del os.environ["HEARTH_HOME"]
        else:
            os.environ["HEARTH_HOME"] = old


def _run(folder) -> dict:
    from app.server.backend import ServedEngine
    from app.server.running import Server
    from engine.sampling import SamplingSettings

    settings = SamplingSettings(temperature=0, max_tokens=MAX_TOKENS)
    with engine_session(folder, context_length=CONTEXT) as (engine, loaded_event):
        served = ServedEngine(engine)
        server = Server(served, "127.0.0.1", 0).start()
        client = _Client(server.url)
        try:
            speed = _speed(engine, client, settings)
            turns = _turns(engine, served, client)
        finally:
            client.close()
            server.stop(timeout=30)
    return _report(speed, turns, loaded_event)


def _report(speed: dict, turns: dict, loaded_event) -> dict:
    ratio = median(speed["ratios"])
    added = median(speed["added_ms"])
    ttft = {t: median([s["ttft"] for s in samples]) for t, samples in turns["per_turn"].items()}
    turn_ratio = ttft[TURNS] / ttft[1]
    full_ratio = turns["full_last"] / turns["full_first"]
    row("model", f"{SPEC.describe()}; {loaded_event.weight_bytes / 1e6:.1f} MB of weights")
    row("same text through the server as directly", str(speed["same"]))
    row("tokens/s: engine directly / through the server",
        f"{speed['direct_tps']:.1f} / {speed['server_tps']:.1f}")
    row(f"server / engine tokens/s (median of {REPEATS})", f"{ratio:.3f} ({spread(speed['ratios'])})")
    row("CPU ms per token (this process): engine / server path",
        f"{speed['direct_cpu_ms']:.2f} / {speed['server_cpu_ms']:.2f}")
    row("engine / server CPU per token (median)",
        f"{median(speed['cpu_ratios']):.3f} ({spread(speed['cpu_ratios'])})")
    row("TTFT, prompt cached: engine / server (ms)",
        f"{speed['direct_ttft_ms']:.1f} / {speed['server_ttft_ms']:.1f}")
    row("TTFT added by the server (ms, median)", f"{added:.2f} ({spread(speed['added_ms'])})")
    print()
    print("   turn  prompt  reused   fed   TTFT (ms, median of 2 chats)")
    for t, samples in sorted(turns["per_turn"].items()):
        s = samples[0]
        print(f"   {t:>4} {s['prompt']:>7} {s['reused']:>7} {s['prompt'] - s['reused']:>5} {ttft[t] * 1e3:>12.0f}")
    print()
    row(f"resent chat: TTFT turn {TURNS} / turn 1", f"{turn_ratio:.3f}")
    row(f"  full re-processing: turn {TURNS} / turn 1", f"{full_ratio:.3f}")
    row(f"goal speed >= {SPEED_GOAL}", verdict(ratio >= SPEED_GOAL))
    row(f"goal added TTFT <= {TTFT_GOAL_MS:g} ms", verdict(added <= TTFT_GOAL_MS))
    row(f"goal turn {TURNS} / turn 1 <= {TURNS_GOAL}", verdict(turn_ratio <= TURNS_GOAL))
    return {
        "name": "server",
        "figure": "server tokens/s / engine tokens/s",
        "value": ratio,
        "goal": f">= {SPEED_GOAL}",
        "met": ratio >= SPEED_GOAL,
        "more": [
            {"figure": "TTFT added by the server (ms)", "value": added, "goal": f"<= {TTFT_GOAL_MS:g}",
             "met": added <= TTFT_GOAL_MS},
            {"figure": f"resent chat TTFT turn {TURNS} / turn 1", "value": turn_ratio,
             "goal": f"<= {TURNS_GOAL}", "met": turn_ratio <= TURNS_GOAL},
        ],
        "speed": speed,
        "full_reprocessing_ratio": full_ratio,
        "turns": {t: s for t, s in turns["per_turn"].items()},
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        _client_process(sys.argv[2])
    else:
        run()
