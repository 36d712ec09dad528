"""Terminal front end over the engine: streaming chat, one-shot answers and the prompt inspector.

Chats go through the same chat session as the desktop app (engine/chat_session.py) and are recorded
in the same history (--no-save: a history in memory only), so a conversation started here can be
continued there, and `--conversation ID` continues one here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from engine.chat_session import ChatSession, Outcome, SessionListener, Turn, TurnRefused
from engine.engine import Engine, RequestHandle
from engine.errors import HearthError
from engine.events import Finished, ModelLoaded, PromptReady, TextChunk
from engine.generation import GenerationRequest
from engine.history import HistoryStore
from engine.model_folder import resolve_model
from engine.prompts import build_prompt, choose_format
from engine.sampling import SamplingSettings
from engine.tokenizer import load_tokenizer

from .history_cli import SHORT_ID, open_store

HELP = ("Type a message and press Enter. /regenerate and /continue redo or extend the last answer, "
        "/retry answers a message left unanswered, /reset starts over, /bye (or Ctrl-D) quits; Ctrl-C "
        "stops an answer.")


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
    _mark_used(loaded.ref)
    return loaded


def _load_draft(engine: Engine, draft: str) -> str:
    """Load --draft MODEL beside the model; the request's draft mode."""
    if draft in ("auto", "lookup", "off"):
        return draft
    result = engine.load_draft(draft).wait()
    if result.finish_reason == "error":
        raise HearthError(result.error or "the draft model could not be loaded")
    return "model"


def _mark_used(ref: str) -> None:
    from engine.library import library

    try:
        library.mark_used(ref)
    except OSError:  # a read-only data folder must not stop a chat
        pass


def _stream(handle: RequestHandle, out: TextIO | None, on_event=None) -> Finished:
    """Show an answer as it arrives; Ctrl-C (even repeated) cancels it and waits for the engine."""
    while True:
        try:
            for event in handle.events():
                if on_event is not None:
                    on_event(event)
                elif isinstance(event, TextChunk) and out is not None:
                    out.write(event.text)
                    out.flush()
                elif isinstance(event, PromptReady):
                    _note_dropped(event.dropped_messages, event.context_length)
            break
        except KeyboardInterrupt:
            handle.cancel()
    assert handle.result is not None
    return handle.result


def _note_dropped(dropped: list[int], context_length: int) -> None:
    if dropped:
        print(f"[note: the {len(dropped)} oldest message(s) no longer fit in the {context_length:,}-token "
              f"context and were left out]", file=sys.stderr)


class EngineLink:
    """The engine as a chat session asks for it. The terminal streams the request it started."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.handle: RequestHandle | None = None

    def generate(self, request: GenerationRequest) -> int:
        self.handle = self.engine.generate(request)
        return self.handle.id

    def cancel(self, request_id: int) -> None:
        if self.handle is not None and self.handle.id == request_id:
            self.handle.cancel()

    def leave(self, conversation_id: str) -> None:
        self.engine.leave(conversation_id)

    def forget(self, conversation_id: str, deleted: bool = False) -> None:
        self.engine.forget(conversation_id, deleted=deleted)


class Printer(SessionListener):
    """Shows a chat session's turns: the answer on `out` as it streams, notes on stderr."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.outcome: Outcome | None = None

    def turn_started(self, turn: Turn) -> None:
        if turn.recorded.continuing:
            self.write(turn.recorded.prefix)  # the answer being continued, then what follows

    def text_streamed(self, turn: Turn, text: str) -> None:
        self.write(text)

    def write(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text)
            self.out.flush()

    def prompt_ready(self, turn: Turn) -> None:
        _note_dropped(turn.dropped, turn.context_length)

    def turn_finished(self, outcome: Outcome) -> None:
        self.outcome = outcome
        if outcome.forked_from:
            print("[another Hearth window changed this answer while it was being written; this "
                  "version was saved beside it]", file=sys.stderr)


def _run_turn(session: ChatSession, start: Callable[[], Turn]) -> Outcome | None:
    """Start a turn and stream it to its end; None (with the reason shown) if it was refused."""
    try:
        start()
    except TurnRefused as exc:
        print(f"[{exc}]", file=sys.stderr)
        return None
    link: EngineLink = session.link
    _stream(link.handle, None, session.on_event)
    return session.listener.outcome


def _session(store: HistoryStore, engine: Engine, loaded: ModelLoaded, sampling: SamplingSettings,
             system: str | None, out: TextIO | None) -> ChatSession:
    session = ChatSession(store, EngineLink(engine), lambda: (system or "", sampling), Printer(out))
    session.model_ref, session.model_revision = loaded.ref, loaded.revision
    return session


def chat(model: str, sampling: SamplingSettings, *, system: str | None, context_length: int | None,
         prompt_format: str | None, save: bool = True, conversation: str | None = None,
         draft: str = "auto", kv_bits: int | None = None) -> int:
    """A chat in the terminal, through the same chat session as the app. --no-save keeps it in a
    history in memory, and no cache of it is written to disk."""
    if conversation is not None and not save:
        raise HearthError("--conversation needs the history; it cannot be combined with --no-save.")
    interactive = sys.stdin.isatty()
    store = open_store() if save else HistoryStore.in_memory()
    try:
        with Engine(save_caches=save, kv_bits=kv_bits) as engine:
            if interactive:
                print(f"Loading {model} ...", file=sys.stderr)
            loaded = _load(engine, model, context_length, prompt_format)
            session = _session(store, engine, loaded, sampling, system, sys.stdout)
            session.draft = _load_draft(engine, draft)
            if conversation is not None:
                _continue(session, conversation, system, sampling)
            if interactive:
                print(f"{loaded.name} is ready ({loaded.context_length:,}-token context). {HELP}", file=sys.stderr)
            if session.pending_question() is not None:
                _report(_run_turn(session, session.retry))
            _chat_loop(session, interactive and save)
    finally:
        store.close()
    return 0


def _continue(session: ChatSession, conversation: str, system: str | None, sampling: SamplingSettings) -> None:
    store = session.store
    conversation_id = store.resolve_id(conversation)
    session.open(conversation_id)
    session.sampling = sampling  # this run's options, as given (or their defaults)
    if system is not None:
        session.set_system_prompt(system)
    path = store.active_path(conversation_id)
    print(f"[continuing \"{store.conversation(conversation_id).title}\", {len(path)} messages]", file=sys.stderr)
    if path and path[-1].role == "assistant" and path[-1].status == "interrupted":
        print("[the last answer was interrupted: /continue goes on with it, /regenerate starts it "
              "again]", file=sys.stderr)


def _chat_loop(session: ChatSession, tell_saved: bool) -> None:
    commands = {"/regenerate": session.regenerate, "/continue": session.continue_answer, "/retry": session.retry}
    while True:
        line = _read_line(sys.stdin.isatty())
        if line is None or line.strip() in ("/bye", "/exit", "/quit"):
            return
        command = line.strip()
        if not command:
            continue
        if command == "/reset":
            session.open(None)
            print("[new conversation]", file=sys.stderr)
            continue
        new = session.conversation_id is None
        outcome = _run_turn(session, commands.get(command, lambda text=line: session.send(text)))
        _report(outcome)
        if new and tell_saved and session.conversation_id:
            print(f"[saved as {session.conversation_id[:SHORT_ID]}]", file=sys.stderr)


def _read_line(interactive: bool) -> str | None:
    """The next line typed or piped in; one that is not UTF-8 text is refused and skipped."""
    while True:
        try:
            if interactive:
                line = input(">>> ")
            else:
                data = sys.stdin.buffer.readline()
                if not data:
                    return None
                line = data.decode("utf-8").rstrip("\n")
        except EOFError:
            return None
        except KeyboardInterrupt:
            print("\n(use /bye or Ctrl-D to quit)", file=sys.stderr)
            continue
        except UnicodeDecodeError as exc:
            print(f"[that line is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); it was not sent]",
                  file=sys.stderr)
            continue
        if not _is_text(line):  # a terminal that is not UTF-8 hands Python lone surrogates
            print("[that line is not UTF-8 text; it was not sent]", file=sys.stderr)
            continue
        return line


def _is_text(line: str) -> bool:
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _report(outcome: Outcome | None) -> None:
    if outcome is None:
        return
    result = outcome.result
    print(flush=True)
    if result.finish_reason == "error":
        print(f"[error: {result.error}]", file=sys.stderr)
    elif result.finish_reason == "cancelled":
        print("[stopped]", file=sys.stderr)
    elif result.finish_reason == "length":
        print("[answer cut: max tokens reached]", file=sys.stderr)
    if not outcome.answered:
        print("[your message is kept, unanswered: /retry answers it]", file=sys.stderr)


def generate_once(model: str, messages: list[dict[str, Any]], sampling: SamplingSettings, *,
                  as_json: bool, context_length: int | None, prompt_format: str | None,
                  save: bool = False, conversation: str | None = None, draft: str = "auto",
                  kv_bits: int | None = None) -> int:
    """One answer to the given messages; with --save (or --conversation) recorded in the history
    through a chat session, as a chat would be."""
    store = open_store() if (save or conversation) else None
    out = None if as_json else sys.stdout
    conversation_id = None
    try:
        with Engine(kv_bits=kv_bits) as engine:
            loaded = _load(engine, model, context_length, prompt_format)
            draft = _load_draft(engine, draft)
            if store is None:
                result = _stream(engine.generate(GenerationRequest(messages, sampling, None, draft=draft)), out)
            else:
                session, created = _saved_session(store, engine, loaded, sampling, messages, conversation, out)
                session.draft = draft
                result = _answer_saved(session, messages[-1]["content"], created)
                conversation_id = session.conversation_id
            if out is not None and (result.text or result.finish_reason != "error"):
                print(flush=True)
    finally:
        if store is not None:
            store.close()
    if result.finish_reason == "error":
        raise HearthError(result.error or "generation failed")
    if result.finish_reason == "cancelled":  # Ctrl-C: what was shown (and saved) is all there is
        print("[stopped]", file=sys.stderr)
        return 130
    if as_json:
        print(json.dumps(_result_json(result, conversation_id), ensure_ascii=False))
    elif conversation_id is not None:
        print(f"[saved as {conversation_id[:SHORT_ID]}]", file=sys.stderr)
    return 0


def _saved_session(store: HistoryStore, engine: Engine, loaded: ModelLoaded, sampling: SamplingSettings,
                   messages: list[dict[str, Any]], conversation: str | None,
                   out: TextIO | None) -> tuple[ChatSession, bool]:
    """A session on the conversation the file's earlier messages are recorded in (appended to
    --conversation ID when given); whether this run created it."""
    _check_saveable(messages)
    system = messages[0]["content"] if messages and messages[0].get("role") == "system" else None
    session = _session(store, engine, loaded, sampling, system, out)
    if conversation:
        session.open(store.resolve_id(conversation))
        session.sampling = sampling
        if system is not None:
            session.set_system_prompt(system)
        created = False
    else:
        session.open(store.create_conversation(model=loaded.ref, model_revision=loaded.revision,
                                               system_prompt=system or "", settings=sampling.to_dict()).id)
        created = True
    try:
        for earlier in (messages[1:] if system is not None else messages)[:-1]:
            _record(store, session.conversation_id, earlier)
    except BaseException:  # a refused message: the conversation this run started goes too
        if created:
            store.delete_conversation(session.conversation_id)
        raise
    return session, created


def _answer_saved(session: ChatSession, text: str, created: bool) -> Finished:
    outcome = _run_turn(session, lambda: session.send(text))
    if outcome is None:
        raise HearthError("the message could not be sent")
    if created and outcome.failed and not outcome.answered:  # nothing to keep: the file still has it
        session.store.delete_conversation(outcome.turn.conversation_id)
    return outcome.result


def _check_saveable(messages: list[dict[str, Any]]) -> None:
    ok = messages and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
    if not ok or messages[-1].get("role") != "user":
        raise HearthError("To save, the messages must end with a user message to answer.")


def _record(store: HistoryStore, conversation_id: str, message: dict[str, Any]) -> None:
    if message.get("role") == "user":
        store.add_user_message(conversation_id, message["content"])
    elif message.get("role") == "assistant":
        parent = store.active_path(conversation_id)
        if not parent or parent[-1].role != "user":
            raise HearthError("Roles must alternate user, assistant, ... to be saved.")
        store.add_answer(conversation_id, parent[-1].id, message["content"])
    else:
        raise HearthError(f"Only the first message can be a system prompt, not {message.get('role')!r}.")


def _result_json(result: Finished, conversation_id: str | None = None) -> dict[str, Any]:
    data = {
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
        "cache_source": result.cache_source,
        "draft_proposed": result.draft_proposed,
        "draft_accepted": result.draft_accepted,
        "seed": result.seed,
    }
    if conversation_id is not None:
        data["conversation_id"] = conversation_id
    return data


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
