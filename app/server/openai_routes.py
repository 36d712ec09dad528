"""OpenAI-compatible endpoints: /v1/models, /v1/chat/completions (SSE streaming), /v1/completions."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
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

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def error_body(error: ApiError) -> dict[str, Any]:
    kind = "server_error" if error.status >= 500 else "invalid_request_error"
    if error.status == 401:
        kind = "authentication_error"
    return {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code}}


def routes(served: ServedEngine) -> list[Route]:
    endpoints = OpenAIEndpoints(served)
    return [
        Route("/v1/models", endpoints.models, methods=["GET"]),
        Route("/v1/models/{model:path}", endpoints.model, methods=["GET"]),
        Route("/v1/chat/completions", endpoints.chat_completions, methods=["POST"]),
        Route("/v1/completions", endpoints.completions, methods=["POST"]),
    ]


class OpenAIEndpoints:
    def __init__(self, served: ServedEngine) -> None:
        self.served = served

    async def models(self, request: Request) -> Response:
        model_id = self.served.model_id()
        return json_response({"object": "list", "data": [_model_card(model_id)] if model_id else []})

    async def model(self, request: Request) -> Response:
        model_id = self.served.check_model(request.path_params["model"])
        return json_response(_model_card(model_id))

    async def chat_completions(self, request: Request) -> Response:
        body = await read_json_object(request)
        model = self.served.check_model(body.get("model"))
        _refuse_unsupported(body)
        job = Job(_messages(body.get("messages")), _sampling(body), keep_whole=True)
        return await self._reply(request, body, job, _ChatShape(model))

    async def completions(self, request: Request) -> Response:
        body = await read_json_object(request)
        model = self.served.check_model(body.get("model"))
        prompt = _prompt(body.get("prompt"))
        whole(body, "n", 1, 1)
        job = Job([{"role": "user", "content": prompt}], _sampling(body), prompt_format="plain",
                  continue_answer=True, keep_whole=True)
        return await self._reply(request, body, job, _CompletionShape(model))

    async def _reply(self, request: Request, body: dict[str, Any], job: Job, shape: _Shape) -> Response:
        stream = flag(body, "stream", False)
        include_usage = stream and _include_usage(body)
        generation = await self.served.start(job, request.receive)
        if stream:
            return GenerationStream(_events(generation, shape, include_usage), generation,
                                    "text/event-stream")
        try:
            result = await generation.finish()
        finally:
            generation.close()
        if result.finish_reason not in ("stop", "length"):
            raise ApiError(500, result.error or "The generation was cancelled.", code="server_error")
        return json_response(shape.whole(result))


class _Shape:
    """The ids and field names one endpoint's replies use."""

    object_name = chunk_name = prefix = ""

    def __init__(self, model: str) -> None:
        self.model = model
        self.created = int(time.time())
        self.id = f"{self.prefix}-{secrets.token_hex(12)}"
        self._text_event: tuple[str, str] | None = None

    def text_event(self, text: str, usage_field: dict[str, Any]) -> str:
        """The SSE event for a piece of text: a template made once, so each token costs one
        small json.dumps (it is the server's per-token work)."""
        if self._text_event is None:
            mark = "\ue000hearth-text\ue001"
            rendered = _sse({**self.chunk(mark, None), **usage_field})
            head, _mark, tail = rendered.rpartition(json.dumps(mark, ensure_ascii=False))
            self._text_event = (head, tail)
        head, tail = self._text_event
        return head + json.dumps(text, ensure_ascii=False) + tail

    def base(self, object_name: str) -> dict[str, Any]:
        return {"id": self.id, "object": object_name, "created": self.created, "model": self.model}

    def whole(self, result: Finished) -> dict[str, Any]:
        choice = {"index": 0, **self.full_text(result.text), "logprobs": None,
                  "finish_reason": result.finish_reason}
        return {**self.base(self.object_name), "choices": [choice], "usage": _usage(result)}

    def chunk(self, text: str | None, finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, **self.delta(text), "logprobs": None, "finish_reason": finish}
        return {**self.base(self.chunk_name), "choices": [choice]}

    def full_text(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    def delta(self, text: str | None) -> dict[str, Any]:
        raise NotImplementedError


class _ChatShape(_Shape):
    object_name, chunk_name, prefix = "chat.completion", "chat.completion.chunk", "chatcmpl"

    def full_text(self, text: str) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": text}}

    def delta(self, text: str | None) -> dict[str, Any]:
        # The first chunk names the role; the closing one carries no content.
        if text is None:
            return {"delta": {}}
        return {"delta": {"content": text}}


class _CompletionShape(_Shape):
    object_name, chunk_name, prefix = "text_completion", "text_completion", "cmpl"

    def full_text(self, text: str) -> dict[str, Any]:
        return {"text": text}

    def delta(self, text: str | None) -> dict[str, Any]:
        return {"text": text or ""}


async def _events(generation: Generation, shape: _Shape, include_usage: bool) -> AsyncIterator[str]:
    usage_field = {"usage": None} if include_usage else {}
    if isinstance(shape, _ChatShape):
        first = shape.chunk(None, None)
        first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
        yield _sse({**first, **usage_field})
    async for text in generation.text():
        yield shape.text_event(text, usage_field)
    result = generation.result
    if result is None or result.finish_reason == "cancelled":
        return  # the client left
    if result.finish_reason == "error":
        yield _sse(error_body(ApiError(500, result.error or "Generation failed.", code="server_error")))
    else:
        yield _sse({**shape.chunk(None, result.finish_reason), **usage_field})
        if include_usage:
            yield _sse({**shape.base(shape.chunk_name), "choices": [], "usage": _usage(result)})
    yield "data: [DONE]\n\n"


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _usage(result: Finished) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.generation_tokens,
            "total_tokens": result.prompt_tokens + result.generation_tokens}


def _model_card(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "hearth"}


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects.",
                       param="messages")
    messages = []
    for index, message in enumerate(value, start=1):
        if not isinstance(message, dict):
            raise ApiError(400, f"Message {index} must be an object with a role and a content.",
                           param="messages")
        role = ROLES.get(message.get("role")) if isinstance(message.get("role"), str) else None
        if role is None:
            raise ApiError(400, f"Message {index} has role {message.get('role')!r}; Hearth answers "
                                f"system, developer, user and assistant messages.", param="messages")
        messages.append({"role": role, "content": _content(message.get("content"), index)})
    return messages


def _content(value: Any, index: int) -> str:
    """A message's text: a string, or a list of text parts (as newer clients send)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [part.get("text") for part in value if isinstance(part, dict) and part.get("type") == "text"]
        if len(texts) == len(value) and all(isinstance(t, str) for t in texts):
            return "\n".join(texts)
    raise ApiError(400, f"Message {index} needs a text content (a string or a list of text parts); "
                        f"Hearth's models read text only.", param="messages")


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value:
        raise ApiError(400, "'prompt' must be one non-empty string.", param="prompt")
    return value


def _refuse_unsupported(body: dict[str, Any]) -> None:
    """Fields whose answer Hearth cannot honour are refused, not silently ignored."""
    whole(body, "n", 1, 1)  # one answer per request
    if body.get("tools") or body.get("functions"):
        raise ApiError(400, "Hearth's server does not support tools or function calling.", param="tools")
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise ApiError(400, "Hearth's server answers in plain text only; 'response_format' is not "
                            "supported.", param="response_format")


def _sampling(body: dict[str, Any]):
    max_tokens = whole(body, "max_completion_tokens", 1) or whole(body, "max_tokens", 1)
    return sampling(
        temperature=number(body, "temperature", 0, 2),
        top_p=number(body, "top_p", 0, 1),
        top_k=whole(body, "top_k", 0),
        min_p=number(body, "min_p", 0, 1),
        repetition_penalty=number(body, "repetition_penalty", 0.01, 100),
        max_tokens=max_tokens,
        stop=stop_strings(body) or None,
        seed=whole(body, "seed", 0, 2**63 - 1),
    )


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object.", param="stream_options")
    return flag(options, "include_usage", False)
