"""`hearth serve`: the OpenAI and Ollama endpoints through the real `openai` and `ollama` clients
and raw HTTP, on a tiny Llama 2 style model served by uvicorn on a free loopback port.

Answers are compared with `hearth generate --temp 0` (a real subprocess) and with bare mlx-lm
greedy decoding from Meta's reference prompt ids. Every request loop is bounded by max_tokens, and
every wait by a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import ollama
import openai
import pytest
import tiny_models

from app.server.backend import ServedEngine
from app.server.http_io import MAX_BODY_BYTES
from app.server.running import Server
from engine.errors import HearthError
from engine.events import Finished
from engine.generation import GenerationRequest
from engine.sampling import SamplingSettings

HEARTH_SCRIPT = Path(sys.executable).with_name("hearth")
HEARTH = [str(HEARTH_SCRIPT)] if HEARTH_SCRIPT.is_file() else [sys.executable, "-m", "app.cli"]
REPO = Path(__file__).resolve().parents[1]
MODEL = "spm_legacy"  # the served model's id: its folder's name
MAX_TOKENS = 40
LONG = 3000  # tokens a greedy HELLO answer runs to without stopping (it runs past 1,000)
TIMEOUT_S = 120

HELLO = [{"role": "user", "content": "Hello there"}]
DIALOG = [
    {"role": "system", "content": "You are a terse assistant.\nAnswer briefly."},
    {"role": "user", "content": "What is a llama?"},
    {"role": "assistant", "content": " A camelid from South America.  "},
    {"role": "user", "content": "And café culture in 中文 🙂?"},
]
QUESTIONS = ["What is a llama?", "Name three colours.", "Why is the sky blue?", "Count to five."]
GREEDY = {"temperature": 0, "max_tokens": MAX_TOKENS}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def served(engine_llama2) -> ServedEngine:
    return ServedEngine(engine_llama2)


@pytest.fixture(scope="module")
def server(served):
    server = Server(served, "127.0.0.1", 0).start()
    yield server
    server.stop(timeout=10)


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="any", timeout=TIMEOUT_S, max_retries=0)


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("serve-cli")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(HEARTH_HOME=str(root / "hearth-home"), HF_HOME=str(root / "hf-home"), HF_HUB_OFFLINE="1")
    return env


@pytest.fixture(scope="module")
def cli_answers(llama2_chat, cli_env, tmp_path_factory) -> dict[str, dict]:
    """`hearth generate --temp 0 --json` for each dialog, run as the user would."""
    folder = tmp_path_factory.mktemp("serve-messages")
    runs = {}
    for name, messages in (("hello", HELLO), ("dialog", DIALOG)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(messages), encoding="utf-8")
        runs[name] = subprocess.Popen(
            [*HEARTH, "generate", str(llama2_chat), "--messages", str(path), "--json", "--temp", "0",
             "--max-tokens", str(MAX_TOKENS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env, cwd=REPO)
    answers = {}
    for name, proc in runs.items():
        out, err = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 0, err.decode()
        answers[name] = json.loads(out)
    return answers


def _greedy_from_ids(engine, prompt_ids: list[int], max_tokens: int) -> str:
    """Bare mlx-lm greedy decoding from exactly these ids, on the engine thread, as text."""

    def run(loaded) -> str:
        import mlx.core as mx
        from mlx_lm.generate import generate_step

        tokens: list[int] = []
        steps = generate_step(mx.array(prompt_ids), loaded.model, max_tokens=max_tokens,
                              sampler=lambda logits: mx.argmax(logits, axis=-1))
        try:
            for token, _logprobs in steps:
                tokens.append(int(token))
                if int(token) in loaded.tokenizer.eos_ids:
                    break
        finally:
            steps.close()
        return loaded.tokenizer.decode(tokens)

    return engine.run(run).result(timeout=TIMEOUT_S)


def _engine_answer(engine, messages, **request) -> Finished:
    settings = SamplingSettings(temperature=0, max_tokens=MAX_TOKENS)
    return engine.generate(GenerationRequest(messages, settings, **request)).wait()


def _latest(served: ServedEngine, reason: str, after: int) -> Finished:
    """The first result with this finish reason recorded after `after` results; waits up to a limit."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = [r for r in list(served.recent)[after:] if r.finish_reason == reason]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no {reason!r} result within {TIMEOUT_S} s: {list(served.recent)[after:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------------------ OpenAI answers


@pytest.mark.parametrize("name", ["hello", "dialog"])
def test_openai_chat_equals_hearth_generate_at_temp_0(client, cli_answers, name):
    messages = {"hello": HELLO, "dialog": DIALOG}[name]
    expected = cli_answers[name]
    reply = client.chat.completions.create(model=MODEL, messages=messages, **GREEDY)
    choice = reply.choices[0]
    assert choice.message.content == expected["text"]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == expected["finish_reason"]
    assert reply.usage.prompt_tokens == expected["prompt_tokens"]
    assert reply.usage.completion_tokens == expected["generation_tokens"]
    assert reply.usage.total_tokens == expected["prompt_tokens"] + expected["generation_tokens"]
    assert reply.model == MODEL and reply.id.startswith("chatcmpl-")


@pytest.mark.parametrize("name", ["hello", "dialog"])
def test_openai_streamed_chat_equals_hearth_generate_with_usage_last(client, cli_answers, name):
    messages = {"hello": HELLO, "dialog": DIALOG}[name]
    expected = cli_answers[name]
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True,
                                                 stream_options={"include_usage": True}, **GREEDY))
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == expected["text"]
    assert with_choices[-1].choices[0].finish_reason == expected["finish_reason"]
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == expected["generation_tokens"]
    assert chunks[-1].usage.prompt_tokens == expected["prompt_tokens"]
    assert len({c.id for c in chunks}) == 1


def test_a_stream_ends_with_done_and_carries_no_usage_unless_asked(server):
    body = {"model": MODEL, "messages": HELLO, "stream": True, "max_tokens": 5, "temperature": 0}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=TIMEOUT_S) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in events[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert sum(1 for c in chunks if c["choices"][0]["delta"].get("content")) <= 5


def test_llama2_models_get_metas_reference_ids(client, engine_llama2, llama2_chat):
    reference = tiny_models.reference_llama2_ids(tiny_models.load_sentencepiece(llama2_chat), DIALOG)
    reply = client.chat.completions.create(model=MODEL, messages=DIALOG, **GREEDY)
    assert reply.usage.prompt_tokens == len(reference)
    assert reply.choices[0].message.content == _greedy_from_ids(engine_llama2, reference, MAX_TOKENS)


def test_stop_seed_and_max_completion_tokens_are_honoured(client, cli_answers):
    text = cli_answers["hello"]["text"]
    stop = text[10:14]
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, stop=[stop], **GREEDY)
    assert reply.choices[0].message.content == text[: text.index(stop)]
    assert reply.choices[0].finish_reason == "stop"
    short = client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0,
                                           max_completion_tokens=3)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"
    sampled = [client.chat.completions.create(model=MODEL, messages=HELLO, temperature=1, top_p=1,
                                              seed=seed, max_tokens=20).choices[0].message.content
               for seed in (7, 7, 8)]
    assert sampled[0] == sampled[1] != sampled[2]


def test_completions_continue_plain_text(client, engine_llama2, llama2_chat):
    prompt = "Once upon a time"
    reply = client.completions.create(model=MODEL, prompt=prompt, **GREEDY)
    sp = tiny_models.load_sentencepiece(llama2_chat)
    assert reply.usage.prompt_tokens == 1 + len(sp.encode(prompt))  # BOS, then the text
    direct = _engine_answer(engine_llama2, [{"role": "user", "content": prompt}],
                            prompt_format="plain", continue_answer=True)
    assert reply.choices[0].text == direct.text
    assert reply.choices[0].finish_reason == direct.finish_reason
    streamed = client.completions.create(model=MODEL, prompt=prompt, stream=True, **GREEDY)
    assert "".join(c.choices[0].text for c in streamed) == direct.text
    raw = ollama.Client(host=str(client.base_url).removesuffix("/v1/"), timeout=TIMEOUT_S).generate(
        model=MODEL, prompt=prompt, raw=True, options={"temperature": 0, "num_predict": MAX_TOKENS})
    assert raw.response == direct.text  # Ollama's raw mode: the same plain continuation


def test_models_lists_the_loaded_model(client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL


# ------------------------------------------------------------------------------ Ollama answers


def test_ollama_chat_streamed_and_not_equals_hearth_generate(server, cli_answers):
    expected = cli_answers["dialog"]
    client = ollama.Client(host=server.url, timeout=TIMEOUT_S)
    options = {"temperature": 0, "num_predict": MAX_TOKENS}
    reply = client.chat(model=MODEL, messages=DIALOG, options=options, stream=False)
    assert reply.message.content == expected["text"]
    assert reply.done and reply.done_reason == expected["finish_reason"]
    assert reply.prompt_eval_count == expected["prompt_tokens"]
    assert reply.eval_count == expected["generation_tokens"]
    parts = list(client.chat(model=f"{MODEL}:latest", messages=DIALOG, options=options, stream=True))
    assert "".join(p.message.content for p in parts) == expected["text"]
    assert parts[-1].done and not any(p.done for p in parts[:-1])


def test_ollama_generate_answers_the_prompt_as_a_user_message(server, cli_answers):
    client = ollama.Client(host=server.url, timeout=TIMEOUT_S)
    options = {"temperature": 0, "num_predict": MAX_TOKENS}
    reply = client.generate(model=MODEL, prompt=HELLO[0]["content"], options=options, stream=False)
    assert reply.response == cli_answers["hello"]["text"]
    parts = list(client.generate(model=MODEL, prompt=HELLO[0]["content"], options=options, stream=True))
    assert "".join(p.response for p in parts) == cli_answers["hello"]["text"]


def test_ollama_tags_show_ps_and_version(server):
    client = ollama.Client(host=server.url, timeout=TIMEOUT_S)
    assert [m.model for m in client.list().models] == [f"{MODEL}:latest"]
    assert [m.model for m in client.ps().models] == [f"{MODEL}:latest"]
    shown = client.show(f"{MODEL}:latest")
    assert shown.details.family == "llama" and shown.modelinfo["llama.context_length"] == 4096
    version = httpx.get(f"{server.url}/api/version", timeout=TIMEOUT_S).json()["version"]
    assert all(part.isdigit() for part in version.split("."))


# ------------------------------------------------------------ queueing, cancelling, cache reuse


def test_four_concurrent_clients_all_get_their_own_answers(server, engine_llama2):
    expected = {q: _engine_answer(engine_llama2, [{"role": "user", "content": q}]).text for q in QUESTIONS}
    answers: dict[str, str] = {}

    def ask(index: int, question: str) -> None:
        messages = [{"role": "user", "content": question}]
        if index % 2:
            client = ollama.Client(host=server.url, timeout=TIMEOUT_S)
            answers[question] = "".join(
                p.message.content for p in client.chat(model=MODEL, messages=messages, stream=True,
                                                       options={"temperature": 0, "num_predict": MAX_TOKENS}))
        else:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="any", timeout=TIMEOUT_S,
                                   max_retries=0)
            answers[question] = "".join(
                c.choices[0].delta.content or "" for c in client.chat.completions.create(
                    model=MODEL, messages=messages, stream=True, **GREEDY))

    threads = [threading.Thread(target=ask, args=pair) for pair in enumerate(QUESTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert answers == expected


def test_a_streaming_client_that_leaves_cancels_its_generation(server, served, client):
    before = len(served.recent)
    body = {"model": MODEL, "messages": HELLO, "stream": True, "max_tokens": LONG, "temperature": 0}
    with httpx.Client(timeout=TIMEOUT_S) as http, \
            http.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # one token arrived; the client closes the connection here
    cancelled = _latest(served, "cancelled", before)
    assert 0 < cancelled.generation_tokens < LONG
    # The engine is free: the next request is answered.
    assert client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0,
                                          max_tokens=3).choices[0].finish_reason == "length"
    assert served.active == 0


def test_a_waiting_client_that_gives_up_cancels_its_generation(server, served):
    before = len(served.recent)
    body = {"model": MODEL, "messages": HELLO, "max_tokens": LONG, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=httpx.Timeout(TIMEOUT_S, read=0.2))
    assert _latest(served, "cancelled", before).generation_tokens < LONG


def test_a_resent_conversation_reuses_the_kv_cache(client, served):
    first = [{"role": "user", "content": "Tell me about hearths."}]
    answer = client.chat.completions.create(model=MODEL, messages=first, **GREEDY)
    turn_one = served.recent[-1]
    assert turn_one.reused_tokens == 0
    second = [*first, {"role": "assistant", "content": answer.choices[0].message.content},
              {"role": "user", "content": "And chimneys?"}]
    client.chat.completions.create(model=MODEL, messages=second, **GREEDY)
    turn_two = served.recent[-1]
    assert turn_two.reused_tokens >= turn_one.prompt_tokens
    # Other chats do not take over (and trim) this one's cache, nor one another's when they share
    # only a system prompt.
    system = {"role": "system", "content": "Be brief."}
    for messages in ([{"role": "user", "content": "Other."}], [system, *first],
                     [system, {"role": "user", "content": "Something else."}]):
        client.chat.completions.create(model=MODEL, messages=messages, **GREEDY)
        assert served.recent[-1].reused_tokens == 0
    third = [*second, {"role": "assistant", "content": "Fine."}, {"role": "user", "content": "Bye."}]
    client.chat.completions.create(model=MODEL, messages=third, **GREEDY)
    assert served.recent[-1].reused_tokens >= turn_two.prompt_tokens


# ------------------------------------------------------------------------------- bad input


def _post(server, path: str, content: bytes | str, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", content=content, timeout=TIMEOUT_S,
                      headers={"Content-Type": "application/json", **(headers or {})})


def _openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def _ollama_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    return response.json()["error"]


def _long_dialog(turns: int) -> list[dict]:
    padding = " ".join(f"word{i}" for i in range(300))
    dialog = []
    for turn in range(turns):
        dialog += [{"role": "user", "content": f"Turn {turn}: {padding}"},
                   {"role": "assistant", "content": padding}]
    return [*dialog, {"role": "user", "content": "And now?"}]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_malformed_json_is_400_in_openais_shape(server, path):
    error = _openai_error(_post(server, path, b'{"model": "x", "messages": ['), 400)
    assert "not valid JSON" in error["message"] and error["type"] == "invalid_request_error"
    assert "JSON object" in _openai_error(_post(server, path, b"[1, 2]"), 400)["message"]


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_malformed_json_is_400_in_ollamas_shape(server, path):
    assert "not valid JSON" in _ollama_error(_post(server, path, b"{nope"), 400)
    assert "not valid JSON" in _ollama_error(_post(server, path, b"\xff\xfe{"), 400)


def test_unknown_model_is_404_in_both_shapes(server, client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=2)
    assert raised.value.body["code"] == "model_not_found" and "spm_legacy" in raised.value.message
    with pytest.raises(ollama.ResponseError) as ollama_raised:
        ollama.Client(host=server.url).chat(model="llama3:8b", messages=HELLO)
    assert ollama_raised.value.status_code == 404 and "llama3:8b" in ollama_raised.value.error
    assert "gpt-4o" in _openai_error(httpx.get(f"{server.url}/v1/models/gpt-4o"), 404)["message"]


def test_a_prompt_longer_than_the_context_is_400_with_the_token_counts(client, served):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 6000}],
                                       max_tokens=5)
    assert raised.value.body["code"] == "context_length_exceeded"
    assert "4,096" in raised.value.message and "tokens" in raised.value.message
    # A conversation that would need its oldest turns left out is refused too, with the counts.
    with pytest.raises(openai.BadRequestError) as dropped:
        client.chat.completions.create(model=MODEL, messages=_long_dialog(8), max_tokens=5)
    message = dropped.value.message
    assert dropped.value.body["code"] == "context_length_exceeded"
    assert "4,096" in message and "need" in message
    needed = int(message.split("need ")[1].split(" tokens")[0].replace(",", ""))
    assert needed > 4096
    assert served.active == 0


def test_ollama_leaves_the_oldest_turns_out_as_ollama_does(server, served):
    reply = ollama.Client(host=server.url, timeout=TIMEOUT_S).chat(
        model=MODEL, messages=_long_dialog(8), options={"temperature": 0, "num_predict": 5})
    assert reply.done_reason == "length" and reply.prompt_eval_count < 4096
    assert served.recent[-1].dropped_messages


def test_a_body_over_the_limit_is_413(server):
    # Declared too large: answered from the headers, before the body is read.
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n{{"
                     .encode())
        head, _, body = _read_response(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "larger than" in json.loads(body)["error"]["message"]

    # Sent without a length (chunked): read up to the limit, then refused.
    def chunks():
        piece = b" " * 2**20
        for _ in range(MAX_BODY_BYTES // len(piece) + 2):
            yield piece

    try:
        streamed = httpx.post(f"{server.url}/api/chat", content=chunks(), timeout=TIMEOUT_S)
    except httpx.WriteError:  # the server answered and closed before the client finished sending
        return
    assert "larger than" in _ollama_error(streamed, 413)


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data


@pytest.mark.parametrize("body, fragment", [
    ({"model": MODEL, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
     "alternate"),
    ({"model": MODEL, "messages": []}, "non-empty list"),
    ({"model": MODEL}, "non-empty list"),
    ({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}, "'tool'"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "text only"),
    ({"model": MODEL, "messages": HELLO, "n": 2}, "'n'"),
    ({"model": MODEL, "messages": HELLO, "temperature": "hot"}, "'temperature'"),
    ({"model": MODEL, "messages": HELLO, "max_tokens": 0}, "'max_tokens'"),
    ({"model": MODEL, "messages": HELLO, "seed": -1}, "'seed'"),
    ({"model": MODEL, "messages": HELLO, "stop": 5}, "'stop'"),
    ({"model": MODEL, "messages": HELLO, "tools": [{"type": "function"}]}, "tools"),
    ({"messages": HELLO}, "'model'"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "\ud800"}]}, "surrogate"),
])
def test_bad_fields_are_400_with_one_clear_line(server, body, fragment):
    error = _openai_error(_post(server, "/v1/chat/completions", json.dumps(body)), 400)
    assert fragment in error["message"] and "\n" not in error["message"]


def test_unknown_paths_and_methods_answer_in_the_protocols_shape(server):
    assert "/v1/nothing" in _openai_error(httpx.get(f"{server.url}/v1/nothing"), 404)["message"]
    assert "GET" in _openai_error(httpx.get(f"{server.url}/v1/chat/completions"), 405)["message"]
    assert "/api/pull" in _ollama_error(httpx.post(f"{server.url}/api/pull", json={}), 404)


def test_a_model_unloaded_while_a_request_waits_is_503_and_then_none_is_listed(llama2_chat):
    from engine.engine import Engine

    with Engine(prefill_step_size=64) as engine:
        assert engine.load(llama2_chat).wait().finish_reason == "done"
        served = ServedEngine(engine)
        server = Server(served, "127.0.0.1", 0).start()
        try:
            url = f"{server.url}/v1/chat/completions"
            body = {"model": MODEL, "messages": HELLO, "stream": True, "max_tokens": LONG, "temperature": 0}
            with httpx.Client(timeout=TIMEOUT_S) as http, http.stream("POST", url, json=body) as first:
                next(first.iter_lines())  # the first request holds the engine thread
                unloading = engine.unload()  # queued after it; the next request queues after that
                waiting = httpx.post(url, json={**body, "stream": False}, timeout=TIMEOUT_S)
            assert unloading.wait().finish_reason == "done"
            assert _openai_error(waiting, 503)["code"] == "model_not_loaded"
            assert httpx.get(f"{server.url}/v1/models").json()["data"] == []
            assert "no model" in _ollama_error(httpx.post(f"{server.url}/api/chat", json={
                "model": MODEL, "messages": HELLO}), 503)
        finally:
            server.stop(timeout=10)


# ---------------------------------------------------------------- keys, addresses, CORS


@pytest.fixture(scope="module")
def keyed_server(served):
    server = Server(served, "127.0.0.1", 0, api_key="s3cret").start()
    yield server
    server.stop(timeout=10)


def test_a_wrong_or_missing_key_is_401(keyed_server):
    for key in ("wrong", ""):
        client = openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    assert _openai_error(httpx.get(f"{keyed_server.url}/v1/models"), 401)["code"] == "invalid_api_key"
    assert "API key" in _ollama_error(httpx.get(f"{keyed_server.url}/api/tags"), 401)
    right = openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key="s3cret", max_retries=0)
    assert [m.id for m in right.models.list().data] == [MODEL]
    tags = ollama.Client(host=keyed_server.url, headers={"Authorization": "Bearer s3cret"}).list()
    assert [m.model for m in tags.models] == [f"{MODEL}:latest"]


def test_refuses_a_non_loopback_address_without_a_key(served):
    with pytest.raises(HearthError, match="--api-key"):
        Server(served, "0.0.0.0", 0)
    with pytest.raises(HearthError, match="--api-key"):
        Server(served, "::", 0)


def test_serve_refuses_0_0_0_0_without_a_key_in_one_line_and_listens_nowhere(llama2_chat, cli_env):
    port = _free_port()
    run = subprocess.run([*HEARTH, "serve", str(llama2_chat), "--host", "0.0.0.0", "--port", str(port)],
                         capture_output=True, text=True, env=cli_env, cwd=REPO, timeout=TIMEOUT_S)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "--api-key" in run.stderr and "Traceback" not in run.stderr
    assert not _listening(port)


def test_any_address_with_a_key_serves_requests_that_carry_it(served):
    server = Server(served, "0.0.0.0", 0, api_key="k").start()
    try:
        url = f"http://127.0.0.1:{server.port}/v1/models"
        assert httpx.get(url, headers={"Authorization": "Bearer k"}).status_code == 200
        assert httpx.get(url).status_code == 401
    finally:
        server.stop(timeout=10)


def test_requests_naming_another_host_are_refused_on_loopback(server):
    # A web page that rebinds its own name to 127.0.0.1 still sends its name as Host.
    refused = httpx.get(f"{server.url}/v1/models", headers={"Host": f"evil.example:{server.port}"})
    assert _openai_error(refused, 403)
    assert httpx.get(f"http://localhost:{server.port}/api/tags").status_code == 200


def test_cors_is_off_unless_an_origin_is_configured(server, served):
    origin = {"Origin": "http://page.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    refused = httpx.options(f"{server.url}/v1/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in refused.headers
    posted = httpx.post(f"{server.url}/v1/chat/completions", headers=origin, timeout=TIMEOUT_S,
                        json={"model": MODEL, "messages": HELLO, "max_tokens": 1})
    assert "--cors-origin" in _openai_error(posted, 403)["message"]
    allowed = Server(served, "127.0.0.1", 0, cors_origins=["http://page.example"]).start()
    try:
        ok = httpx.options(f"{allowed.url}/v1/chat/completions", headers=preflight)
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://page.example"
        listed = httpx.get(f"{allowed.url}/v1/models", headers=origin)
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == "http://page.example"
    finally:
        allowed.stop(timeout=10)


def test_a_port_in_use_is_one_clear_line(served, server):
    with pytest.raises(HearthError, match=f"port {server.port} .* in use"):
        Server(served, "127.0.0.1", server.port)


# ---------------------------------------------------------------------- `hearth serve` itself


def test_hearth_serve_answers_the_openai_client_and_stops_on_ctrl_c(llama2_chat, cli_env, cli_answers):
    proc = subprocess.Popen([*HEARTH, "serve", str(llama2_chat), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env, cwd=REPO)
    try:
        lines = []
        deadline = time.monotonic() + TIMEOUT_S
        while not any(line.startswith("Serving") for line in lines) and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
        serving = lines[-1]
        assert serving.startswith(f"Serving {MODEL} at http://127.0.0.1:"), lines
        base = serving.split(" at ")[1].split(" ")[0]
        client = openai.OpenAI(base_url=base, api_key="any", timeout=TIMEOUT_S, max_retries=0)
        reply = client.chat.completions.create(model=MODEL, messages=DIALOG, **GREEDY)
        assert reply.choices[0].message.content == cli_answers["dialog"]["text"]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIMEOUT_S)
        assert proc.returncode == 130
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args, fragment", [
    (["--port", "0"], "no MODEL given"),
    (["{missing}", "--port", "0"], "no-such-model"),
    (["{model}", "--port", "70000"], "--port"),
    (["{model}", "--port", "0", "--host", "no.such.host.invalid", "--api-key", "k"], "no.such.host.invalid"),
])
def test_serve_mistakes_are_one_line(llama2_chat, cli_env, tmp_path, args, fragment):
    args = [a.format(model=llama2_chat, missing=tmp_path / "no-such-model") for a in args]
    run = subprocess.run([*HEARTH, "serve", *args], capture_output=True, text=True, env=cli_env,
                         cwd=REPO, timeout=TIMEOUT_S)
    assert run.returncode in (1, 2) and "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("hearth: error")]
    assert len(errors) == 1 and fragment in errors[0], run.stderr


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stderr
    return {name.split(".")[0] for name in run.stdout.split()}


def test_the_server_is_a_front_end_without_qt_and_the_cli_loads_no_http_stack():
    server = _modules_after_import("app.server.api")
    assert "starlette" in server and "PySide6" not in server
    assert not {"starlette", "uvicorn"} & _modules_after_import("app.cli")
    engine_sources = "".join(p.read_text(encoding="utf-8") for p in (REPO / "engine").rglob("*.py"))
    assert "starlette" not in engine_sources and "uvicorn" not in engine_sources

