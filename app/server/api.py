"""The ASGI app: both protocols' routes, their error shapes, and the guard in front of them.

The guard refuses, before any route runs: a Host that is not this machine while the server listens
on loopback (a web page's DNS rebinding), any browser Origin not configured for CORS (a web page
posting to localhost), and a missing or wrong API key when one is set.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import ollama_routes, openai_routes
from .backend import ApiError, ServedEngine
from .http_io import json_response

log = logging.getLogger(__name__)
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def create_app(served: ServedEngine, *, api_key: str | None = None, loopback: bool = True,
               cors_origins: Iterable[str] = ()) -> Starlette:
    """loopback: the server listens on this machine only, so requests must name it as Host."""
    origins = list(cors_origins)
    middleware = [Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                             allow_headers=["Authorization", "Content-Type"])] if origins else []
    middleware.append(Middleware(Guard, api_key=api_key, loopback=loopback, origins=origins))
    routes = [Route("/", _running, methods=["GET", "HEAD"]),
              *openai_routes.routes(served), *ollama_routes.routes(served)]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={
        ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected,
    })


async def _running(request: Request) -> Response:
    return PlainTextResponse("Hearth is running")  # what Ollama's clients probe


def error_response(path: str, error: ApiError) -> Response:
    body = ollama_routes.error_body(error) if path.startswith("/api/") else openai_routes.error_body(error)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    response = json_response(body, error.status)
    if headers:
        response.headers.update(headers)
    return response


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request.url.path, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: f"There is no endpoint {request.url.path!r} here.",
               405: f"{request.method} is not allowed on {request.url.path!r}."}.get(exc.status_code, exc.detail)
    return error_response(request.url.path, ApiError(exc.status_code, message))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("server request %s failed", request.url.path)
    return error_response(request.url.path, ApiError(500, f"Internal error: {exc}", code="server_error"))


class Guard:
    """Pure ASGI (no body buffering), so streaming and disconnects pass straight through."""

    def __init__(self, app: ASGIApp, api_key: str | None, loopback: bool, origins: list[str]) -> None:
        self.app, self.api_key, self.loopback, self.origins = app, api_key, loopback, set(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(Headers(scope=scope))
            if refusal is not None:
                await error_response(scope["path"], refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, headers: Headers) -> ApiError | None:
        if self.loopback and _host_name(headers.get("host", "")) not in LOCAL_HOSTS and \
                not _host_name(headers.get("host", "")).startswith("127."):
            return ApiError(403, "This server answers requests addressed to this machine only "
                                 "(localhost or 127.0.0.1).")
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return ApiError(403, f"Requests from web pages ({origin}) are refused; start the server "
                                 f"with --cors-origin {origin} to allow that page.")
        if self.api_key is not None and not self._key_matches(headers.get("authorization", "")):
            return ApiError(401, "A wrong or missing API key: send 'Authorization: Bearer KEY' with "
                                 "the key the server was started with.", code="invalid_api_key")
        return None

    def _key_matches(self, authorization: str) -> bool:
        scheme, _, given = authorization.partition(" ")
        expected = self.api_key.encode("utf-8")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8"), expected)


def _host_name(host: str) -> str:
    """The Host header without its port: 'localhost:8470' -> 'localhost', '[::1]:80' -> '[::1]'."""
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
