"""`hearth serve [MODEL] [--host H] [--port P] [--api-key KEY]`: the server in the foreground.

This module is imported by every `hearth` command to register the subcommand, so it imports
nothing heavy; the HTTP stack and the engine are imported when `serve` runs.
"""

from __future__ import annotations

import argparse
import os
import sys

API_KEY_VARIABLE = "HEARTH_API_KEY"


def add_serve_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve", help="serve MODEL (or the default model) over HTTP: OpenAI- and Ollama-compatible")
    serve.add_argument("model", nargs="?", help="model folder, cached repo id or installed name")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only; any other "
                            "needs --api-key)")
    serve.add_argument("--port", type=_port, default=None, help="port (default 8470; 0 picks a free one)")
    serve.add_argument("--api-key", help=f"require 'Authorization: Bearer KEY' (or set {API_KEY_VARIABLE}, "
                                         f"which other users cannot read in the process list)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="let web pages from ORIGIN call the server (repeatable; default none)")
    serve.add_argument("--context", type=_tokens,
                       help="context window in tokens (default: the model's, at most 8192)")
    serve.add_argument("--prompt-format", choices=["llama2", "template", "plain"],
                       help="override how messages become a prompt")
    serve.set_defaults(handler=_serve)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 0 to 65535, not {text!r}")
    return int(text)


def _tokens(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of tokens, not {text!r}")
    return int(text)


def _serve(args: argparse.Namespace) -> int:
    from engine.engine import Engine

    from ..terminal import _load
    from .backend import ServedEngine
    from .running import DEFAULT_PORT, Server, check_address

    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE) or None
    check_address(args.host, api_key)  # before the model loads: a refusal is instant
    model = args.model or _default_model()
    with Engine() as engine:
        served = ServedEngine(engine)
        server = Server(served, args.host, DEFAULT_PORT if args.port is None else args.port,
                        api_key=api_key, cors_origins=args.cors_origin)
        print(f"Loading {model}…", file=sys.stderr, flush=True)
        try:
            loaded = _load(engine, model, args.context, args.prompt_format)
        except BaseException:
            server.socket.close()
            raise
        print(f"Serving {loaded.name} at {server.url}/v1 (OpenAI) and {server.url}/api (Ollama)"
              f"{', key required' if api_key else ''}. Ctrl-C stops.", file=sys.stderr, flush=True)
        server.run()
    return 0


def _default_model() -> str:
    from engine.errors import HearthError
    from engine.library.library import default_model

    model = default_model()
    if not model:
        raise HearthError("no MODEL given and no default model set; name one (`hearth models` lists "
                          "them) or set one with `hearth default NAME`")
    return model
