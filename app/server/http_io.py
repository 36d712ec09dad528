"""What both protocols share on the wire: bounded JSON bodies, JSON replies, streamed replies."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from engine.errors import HearthError
from engine.sampling import SamplingSettings

from .backend import ApiError, Generation

# The CLI's cap on --messages: far more than any context window holds.
MAX_BODY_BYTES = 64 * 2**20


async def read_json_object(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request's JSON object; 413 past `limit` bytes (read no further), 400 if not JSON."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, _too_large(limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, _too_large(limit))
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return data


def _too_large(limit: int) -> str:
    return f"The request body is larger than {limit // 2**20} MiB, far more than any context window."


def json_response(data: Any, status: int = 200) -> Response:
    # ASCII escapes: a lone surrogate from the request (echoed in an error) cannot break the reply.
    return Response(json.dumps(data, ensure_ascii=True), status, media_type="application/json")


class GenerationStream(StreamingResponse):
    """A streamed reply (SSE or NDJSON) of a generation, which is closed however the reply ends."""

    def __init__(self, parts: AsyncIterator[str], generation: Generation, media_type: str) -> None:
        super().__init__(parts, media_type=media_type, headers={"Cache-Control": "no-cache"})
        self.generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The generation watches for the client leaving (it owns `receive`); a write to a client
        # that left is no error worth a traceback.
        try:
            await self.stream_response(send)
        except OSError:
            pass
        finally:
            self.generation.close()


# --- field checks shared by both protocols: each names the field and the value it got ---

def number(data: dict[str, Any], name: str, low: float, high: float = math.inf) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        bounds = f"from {low:g} to {high:g}" if math.isfinite(high) else f"at least {low:g}"
        raise ApiError(400, f"'{name}' must be a number {bounds}, not {value!r}.", param=name)
    return float(value)


def whole(data: dict[str, Any], name: str, low: int, high: int | None = None) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or \
            (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"'{name}' must be a whole number {bounds}, not {value!r}.", param=name)
    return value


def flag(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, f"'{name}' must be true or false, not {value!r}.", param=name)
    return value


def stop_strings(data: dict[str, Any], name: str = "stop") -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(s, str) for s in values):
        raise ApiError(400, f"'{name}' must be a string or a list of strings.", param=name)
    return tuple(s for s in values if s)


def sampling(**values: Any) -> SamplingSettings:
    """Sampling settings from the fields a request gave (None: Hearth's default); 400 if invalid."""
    try:
        return SamplingSettings(**{k: v for k, v in values.items() if v is not None})
    except HearthError as exc:
        raise ApiError(400, str(exc)) from None
