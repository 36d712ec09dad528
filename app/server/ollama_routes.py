"""Ollama-compatible endpoints: /api/tags, /api/chat and /api/generate (NDJSON streaming), /api/version.

Ollama streams unless a request says "stream": false, counts durations in nanoseconds, and, unlike
the OpenAI endpoints, leaves the oldest turns out when a conversation outgrows the context.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.events import Finished

from .backend import ApiError, Generation, Job, ServedEngine
from .http_io import (
    GenerationStream,
    flag,
    json_response,
    number,
    read_json_object,
    sampling,
    stop_strings,
    whole,
)

# The Ollama API release these endpoints follow; clients check it before using newer features.
OLLAMA_API_VERSION = "0.6.0"
TAG = ":latest"  # Ollama names carry a tag; the one model Hearth serves answers to this one
ROLES = ("system", "user", "assistant")


def error_body(error: ApiError) -> dict[str, Any]:
    return {"error": error.message}


def routes(served: ServedEngine) -> list[Route]:
    endpoints = OllamaEndpoints(served)
    return [
        Route("/api/version", endpoints.version, methods=["GET"]),
        Route("/api/tags", endpoints.tags, methods=["GET"]),
        Route("/api/ps", endpoints.running, methods=["GET"]),
        Route("/api/show", endpoints.show, methods=["POST"]),
        Route("/api/chat", endpoints.chat, methods=["POST"]),
        Route("/api/generate", endpoints.generate, methods=["POST"]),
    ]


class OllamaEndpoints:
    def __init__(self, served: ServedEngine) -> None:
        self.served = served

    async def version(self, request: Request) -> Response:
        return json_response({"version": OLLAMA_API_VERSION})

    async def tags(self, request: Request) -> Response:
        loaded = self.served.loaded
        return json_response({"models": [_tag(loaded)] if loaded is not None else []})

    async def running(self, request: Request) -> Response:
        loaded = self.served.loaded
        if loaded is None:
            return json_response({"models": []})
        size = loaded.info.weight_bytes  # unified memory: all of it is the GPU's too
        return json_response({"models": [{**_tag(loaded), "size_vram": size,
                                          "expires_at": "9999-12-31T23:59:59Z"}]})

    async def show(self, request: Request) -> Response:
        body = await read_json_object(request)
        self.served.check_model(body.get("model") or body.get("name"), TAG)
        loaded = self.served.loaded
        info = loaded.info
        return json_response({
            "modelfile": "", "parameters": "", "template": "",
            "details": _tag(loaded)["details"],
            "model_info": {"general.architecture": info.model_type,
                           "general.parameter_count": info.parameters,
                           f"{info.model_type}.context_length": loaded.context_length},
            "capabilities": ["completion"],
            "modified_at": _modified(info.path),
        })

    async def chat(self, request: Request) -> Response:
        body = await read_json_object(request)
        model = self.served.check_model(body.get("model"), TAG)
        _refuse_unsupported(body, ("format", "tools"))
        messages = _messages(body.get("messages"))
        if not messages:  # Ollama's way to load a model: nothing to answer
            return json_response({**_head(model), "message": {"role": "assistant", "content": ""},
                                  "done": True, "done_reason": "load"})
        job = Job(messages, _sampling(body.get("options"), self.served))
        return await self._reply(request, body, job, model, "message")

    async def generate(self, request: Request) -> Response:
        body = await read_json_object(request)
        model = self.served.check_model(body.get("model"), TAG)
        _refuse_unsupported(body, ("format", "suffix", "images"))
        prompt, system = _text(body, "prompt"), _text(body, "system")
        if not prompt:
            return json_response({**_head(model), "response": "", "done": True, "done_reason": "load"})
        settings = _sampling(body.get("options"), self.served)
        if flag(body, "raw", False):
            job = Job([{"role": "user", "content": prompt}], settings, prompt_format="plain",
                      continue_answer=True)
        else:
            system_turn = [{"role": "system", "content": system}] if system else []
            job = Job([*system_turn, {"role": "user", "content": prompt}], settings)
        return await self._reply(request, body, job, model, "response")

    async def _reply(self, request: Request, body: dict[str, Any], job: Job, model: str,
                     field: str) -> Response:
        stream = flag(body, "stream", True)
        generation = await self.served.start(job, request.receive)
        if stream:
            return GenerationStream(_lines(generation, model, field), generation, "application/x-ndjson")
        try:
            result = await generation.finish()
        finally:
            generation.close()
        if result.finish_reason not in ("stop", "length"):
            raise ApiError(500, result.error or "The generation was cancelled.")
        return json_response({**_head(model), **_piece(field, result.text), **_done(result)})


async def _lines(generation: Generation, model: str, field: str) -> AsyncIterator[str]:
    async for text in generation.text():
        yield _line({**_head(model), **_piece(field, text), "done": False})
    result = generation.result
    if result is None or result.finish_reason == "cancelled":
        return  # the client left
    if result.finish_reason == "error":
        yield _line({"error": result.error or "Generation failed."})
    else:
        yield _line({**_head(model), **_piece(field, ""), **_done(result)})


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False) + "\n"


def _head(model: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"model": model, "created_at": now}


def _piece(field: str, text: str) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": text}} if field == "message" else {field: text}


def _done(result: Finished) -> dict[str, Any]:
    eval_s = result.generation_tokens / result.generation_tps if result.generation_tps else 0.0
    return {
        "done": True,
        "done_reason": result.finish_reason,
        "total_duration": _ns(result.ttft_s + eval_s),
        "load_duration": 0,
        "prompt_eval_count": result.prompt_tokens,
        "prompt_eval_duration": _ns(result.ttft_s),
        "eval_count": result.generation_tokens,
        "eval_duration": _ns(eval_s),
    }


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _tag(loaded) -> dict[str, Any]:
    info = loaded.info
    bits = (info.quantization or {}).get("bits")
    return {
        "name": info.name + TAG,
        "model": info.name + TAG,
        "modified_at": _modified(info.path),
        "size": info.weight_bytes,
        "digest": "",
        "details": {
            "format": "mlx",
            "family": info.model_type,
            "families": [info.model_type],
            "parameter_size": _parameter_size(info.parameters),
            "quantization_level": f"Q{bits}" if bits else "F16",
        },
    }


def _parameter_size(parameters: int) -> str:
    if parameters >= 10**9:
        return f"{parameters / 1e9:.1f}B"
    return f"{parameters / 1e6:.0f}M" if parameters else ""


def _modified(path) -> str:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        stamp = 0
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat().replace("+00:00", "Z")


def _refuse_unsupported(body: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if body.get(name):
            raise ApiError(400, f"Hearth's server does not support '{name}'.")


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"'{name}' must be a string, not {value!r}.")
    return value


def _messages(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, "'messages' must be a list of {role, content} objects.")
    messages = []
    for index, message in enumerate(value, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES or \
                not isinstance(message.get("content"), str):
            raise ApiError(400, f"Message {index} needs a role (system, user or assistant) and a "
                                f"text content.")
        if message.get("images"):
            raise ApiError(400, f"Message {index} has images; Hearth's models read text only.")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _sampling(options: Any, served: ServedEngine):
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ApiError(400, "'options' must be an object.")
    predict = whole(options, "num_predict", -2)
    if predict == 0:
        raise ApiError(400, "'num_predict' must be -1 (no limit) or at least 1, not 0.")
    if predict is not None and predict < 0:  # no limit but the context window
        loaded = served.loaded
        predict = loaded.context_length if loaded is not None else None
    seed = whole(options, "seed", -(2**63), 2**63 - 1)
    return sampling(
        temperature=number(options, "temperature", 0),
        top_p=number(options, "top_p", 0, 1),
        top_k=whole(options, "top_k", 0),
        min_p=number(options, "min_p", 0, 1),
        repetition_penalty=number(options, "repeat_penalty", 0.01, 100),
        repetition_context_size=whole(options, "repeat_last_n", 1),
        max_tokens=predict,
        stop=stop_strings(options) or None,
        seed=seed if seed is not None and seed >= 0 else None,  # Ollama's -1: a random seed
    )
