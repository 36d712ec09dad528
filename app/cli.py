"""The `hearth` command: terminal chat, one-shot generation and the prompt inspector.

These commands import no Qt. User mistakes print one line to stderr and exit non-zero; unexpected
failures also leave a traceback in the log file rather than on the terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from engine import paths
from engine.errors import HearthError
from engine.sampling import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, SamplingSettings

from .history_cli import add_history_parser
from .import_cli import add_import_parsers
from .models_cli import add_model_parsers
from .server.serve_cli import add_serve_parser

log = logging.getLogger("hearth")

GET_A_MODEL = """\
Hearth needs a local model. Any of these works:
  - download one: `hearth catalog` lists models that work (with whether they fit this Mac), then
    `hearth download REPO`, then `make run MODEL=REPO` (or `hearth default REPO` once, then `make run`)
  - a model folder in the mlx-lm format:  make run MODEL=path/to/model
  - a Hugging Face repo id already in your Hugging Face cache (mlx-lm and the Hugging Face CLI put
    models there):  make run MODEL=ORG/NAME   (`hearth models` lists what is there)
Hearth never goes online unless you ask it to download or search.
"""


class UsageError(HearthError):
    """A mistake in how the command was called (exit status 2, as for argparse's own)."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that a mistake on the command line is one line on stderr, like every error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"hearth: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging()
    if args.self_test:
        from .gui.selftest import run as self_test

        return self_test(args.model)
    if not getattr(args, "handler", None):
        if _has_screen():
            return _app(args)
        parser.print_help()
        print("\n" + GET_A_MODEL, end="")
        return 0
    _check_text_options(parser, args)
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"hearth: error: {exc}", file=sys.stderr)
        return 2
    except HearthError as exc:
        print(f"hearth: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `hearth models | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - last resort: one line here, the traceback in the log
        log.exception("unexpected error")
        try:
            details = f" (details in {_log_file()})"
        except OSError:  # no log folder either (a read-only HEARTH_HOME): still one line
            details = ""
        print(f"hearth: internal error: {exc}{details}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hearth", description="Chat privately with local Llama models.")
    parser.add_argument("--version", action="version", version=f"hearth {_version()}")
    parser.add_argument("--self-test", action="store_true",
                        help="start the app headless, answer one message, print a JSON report")
    parser.add_argument("--model", help="with --self-test: the model to use (default: the default model)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    app = commands.add_parser("app", help="open the desktop app (what `hearth` alone does on a Mac)")
    app.set_defaults(handler=_app)

    run = commands.add_parser("run", help="chat in the terminal with MODEL (or the default model)")
    run.add_argument("model", nargs="?", help="model folder or cached repo id")
    _add_model_options(run)
    _add_sampling_options(run)
    _add_chat_options(run)
    _add_draft_option(run)
    _add_kv_bits_option(run)
    run.set_defaults(handler=_run)

    chat = commands.add_parser("chat", help="interactive streaming chat in the terminal")
    chat.add_argument("model", help="model folder or cached repo id")
    _add_chat_options(chat)
    _add_model_options(chat)
    _add_sampling_options(chat)
    _add_draft_option(chat)
    _add_kv_bits_option(chat)
    chat.set_defaults(handler=_chat)

    generate = commands.add_parser("generate", help="answer a JSON list of messages")
    generate.add_argument("model", help="model folder or cached repo id")
    _add_messages_option(generate)
    generate.add_argument("--json", action="store_true", help="print one JSON object at the end")
    generate.add_argument("--save", action="store_true", help="record the exchange in the history")
    generate.add_argument("--conversation", metavar="ID",
                          help="append to this saved conversation (implies --save)")
    _add_model_options(generate)
    _add_sampling_options(generate)
    _add_draft_option(generate)
    _add_kv_bits_option(generate)
    generate.set_defaults(handler=_generate)

    prompt = commands.add_parser("prompt", help="show the exact prompt (text and token ids)")
    prompt.add_argument("model", help="model folder or cached repo id")
    _add_messages_option(prompt)
    prompt.add_argument("--json", action="store_true", help="print one JSON object")
    _add_model_options(prompt)
    # The same options as generate, so its command line works here too; only --max-tokens (the
    # answer room kept when fitting the context) changes the prompt.
    _add_sampling_options(prompt)
    prompt.set_defaults(handler=_prompt)

    add_history_parser(commands)
    add_model_parsers(commands)
    add_import_parsers(commands)
    add_serve_parser(commands)
    return parser


def _add_chat_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--conversation", metavar="ID", help="continue a saved conversation")
    parser.add_argument("--no-save", action="store_true", help="do not record this chat in the history")


def _add_draft_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--draft", default="auto", metavar="lookup|MODEL|off|auto",
                        help="speculative decoding: lookup drafts from the conversation, MODEL drafts "
                             "with a small model sharing the tokenizer; either turns itself off when it "
                             "does not pay. auto (default): lookup where batched passes are cheap "
                             "(Metal, not MLX's CPU backend)")


def _add_kv_bits_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kv-bits", type=int, choices=[8], default=None,
                        help="keep a long conversation's KV cache (from 4,096 tokens) in memory at 8 bits: "
                             "about half the memory of 16-bit keys and values, at a small cost in "
                             "accuracy (saved caches follow Settings > Data)")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context", type=_positive_int,
                        help="context window in tokens (default: the model's, at most 8192)")
    parser.add_argument("--prompt-format", choices=["llama2", "template", "plain"],
                        help="override how messages become a prompt")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of tokens, not {value}")
    return value


def _add_messages_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", required=True, metavar="FILE",
                        help='JSON list of {"role", "content"} messages; - reads stdin')


def _add_sampling_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--temp", type=_number("the temperature", at_least=0.0), default=DEFAULT_TEMPERATURE,
                       help="temperature; 0 is greedy")
    group.add_argument("--top-p", type=_number("top-p", above=0.0, at_most=1.0), default=DEFAULT_TOP_P,
                       help="in (0, 1]; 1 is off")
    group.add_argument("--top-k", type=_whole("top-k", at_least=0), default=0,
                       help="0 is off; at most the model's vocabulary")
    group.add_argument("--min-p", type=_number("min-p", at_least=0.0, at_most=1.0), default=0.0)
    group.add_argument("--repetition-penalty", type=_number("the repetition penalty", above=0.0),
                       default=1.0, help="1 is off")
    group.add_argument("--max-tokens", type=_whole("max tokens", at_least=1), default=DEFAULT_MAX_TOKENS)
    group.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    group.add_argument("--seed", type=_whole("the seed", at_least=0, below=2**63),
                       help="same seed and settings give the same answer")


def _number(what: str, *, at_least: float | None = None, above: float | None = None,
            at_most: float | None = None):
    """An argparse type: a finite number in range; the message names the setting and the value."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{what} must be a finite number, not {text}")
        if (at_least is not None and value < at_least) or (above is not None and value <= above) or \
                (at_most is not None and value > at_most):
            raise argparse.ArgumentTypeError(f"{what} must be {_range(at_least, above, at_most)}, not {text}")
        return value

    return parse


def _whole(what: str, *, at_least: int, below: int | None = None):
    """An argparse type: a whole number in range; the message names the setting and the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}") from None
        if value < at_least or (below is not None and value >= below):
            bound = f"from {at_least} to {below - 1}" if below is not None else f"at least {at_least}"
            raise argparse.ArgumentTypeError(f"{what} must be {bound}, not {text}")
        return value

    return parse


def _range(at_least: float | None, above: float | None, at_most: float | None) -> str:
    low = f"at least {at_least:g}" if at_least is not None else f"above {above:g}" if above is not None else ""
    high = f"at most {at_most:g}" if at_most is not None else ""
    return " and ".join(part for part in (low, high) if part)


def _check_text_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Text options must be text: bytes that are not UTF-8 reach Python as lone surrogates."""
    for name in ("system", "stop"):
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and _SURROGATE.search(value):
                parser.error(f"argument --{name}: not UTF-8 text")


def _check_draft(args: argparse.Namespace) -> None:
    """--draft is a mode or a model that can be found (before any weights load)."""
    if args.draft in ("auto", "lookup", "off"):
        return
    from engine.model_folder import resolve_model

    try:
        resolve_model(args.draft)
    except HearthError as exc:
        raise UsageError(f"--draft {args.draft}: not auto, lookup or off, nor a model: {exc}") from exc


def _check_top_k(args: argparse.Namespace) -> None:
    """--top-k above the model's vocabulary, refused from its config before any weights load."""
    if not args.top_k:
        return
    from engine.model_folder import resolve_model

    vocab = resolve_model(args.model).vocab_size
    if args.top_k > vocab:
        raise UsageError(f"--top-k {args.top_k} is more than the {vocab:,} tokens in the model's "
                         f"vocabulary")


def sampling_from_args(args: argparse.Namespace) -> SamplingSettings:
    return SamplingSettings(
        temperature=args.temp,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        max_tokens=args.max_tokens,
        stop=tuple(args.stop),
        seed=args.seed,
    )


_SURROGATE = re.compile("[\ud800-\udfff]")
# Messages beyond this are not a chat (a million-token context is a few MiB of text); the cap also
# stops `--messages /dev/zero` from filling the memory.
MESSAGES_CAP = 64 * 2**20


def read_messages(source: str) -> list[dict[str, Any]]:
    name = "the standard input" if source == "-" else source
    try:
        if source == "-":
            data = sys.stdin.buffer.read(MESSAGES_CAP + 1)
        else:
            with Path(source).open("rb") as file:
                data = file.read(MESSAGES_CAP + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from exc
    if len(data) > MESSAGES_CAP:
        raise UsageError(f"{name} holds more than {MESSAGES_CAP // 2**20} MiB, far more than any "
                         f"context window; it is not read further")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start:,})") from exc
    try:
        messages = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno})") from exc
    except RecursionError as exc:
        raise UsageError(f"{name} nests JSON too deeply to be a list of messages") from exc
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise UsageError(f'{name} must hold a JSON list of {{"role", "content"}} objects')
    for number, message in enumerate(messages, start=1):
        for key, value in message.items():
            if isinstance(value, str) and (found := _SURROGATE.search(value)):
                raise UsageError(f"message {number} in {name} is not text: its {key!r} holds a lone "
                                 f"surrogate (\\u{ord(found.group()):04x})")
    return messages


def _has_screen() -> bool:
    """Whether `hearth` alone should open the window: always on a Mac, elsewhere with a display."""
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _app(args: argparse.Namespace) -> int:
    from .gui.app import main as gui_main

    return gui_main([sys.argv[0]])


def _run(args: argparse.Namespace) -> int:
    if not args.model:
        from engine.library.library import default_model

        args.model = default_model()
    if not args.model:
        print(GET_A_MODEL, end="")
        return 0
    return _chat(args)


def _chat(args: argparse.Namespace) -> int:
    from .terminal import chat

    _check_top_k(args)
    _check_draft(args)
    return chat(args.model, sampling_from_args(args), system=args.system,
                context_length=args.context, prompt_format=args.prompt_format,
                save=not args.no_save, conversation=args.conversation, draft=args.draft,
                kv_bits=args.kv_bits)


def _generate(args: argparse.Namespace) -> int:
    from .terminal import generate_once

    messages = read_messages(args.messages)
    _check_top_k(args)
    _check_draft(args)
    return generate_once(args.model, messages, sampling_from_args(args),
                         as_json=args.json, context_length=args.context,
                         prompt_format=args.prompt_format, save=args.save,
                         conversation=args.conversation, draft=args.draft, kv_bits=args.kv_bits)


def _prompt(args: argparse.Namespace) -> int:
    from .terminal import show_prompt

    messages = read_messages(args.messages)
    _check_top_k(args)
    sampling = sampling_from_args(args)  # rejects the same mistakes generate would
    return show_prompt(args.model, messages, as_json=args.json, context_length=args.context,
                       prompt_format=args.prompt_format, max_tokens=sampling.max_tokens)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hearth")
    except Exception:  # noqa: BLE001 - running from a source tree without metadata
        return "dev"


def _log_file() -> Path:
    return paths.logs_dir() / "hearth.log"


def _setup_logging() -> None:
    try:
        handler: logging.Handler = logging.FileHandler(_log_file(), encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.raiseExceptions = False  # a log file on a full disk loses lines, never prints tracebacks
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
