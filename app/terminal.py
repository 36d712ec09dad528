"""Terminal front end over the engine: streaming chat, one-shot answers and the prompt inspector.

Chats are recorded in the same history as the desktop app (unless --no-save), so a conversation
started here can be continued there, and `--conversation ID` continues one here.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, TextIO

from engine.engine import Engine, RequestHandle
from engine.errors import HearthError
from engine.events import Finished, ModelLoaded, PromptReady, TextChunk
from engine.generation import GenerationRequest
from engine.history import HistoryStore
from engine.history.recording import (
    RecordedTurn,
    answer_figures,
    engine_messages,
    finish_turn,
    start_continuation,
    start_regeneration,
    start_turn,
)
from engine.model_folder import resolve_model
from engine.prompts import build_prompt, choose_format
from engine.sampling import SamplingSettings
from engine.tokenizer import load_tokenizer

from .history_cli import SHORT_ID, open_store

HELP = ("Type a message and press Enter. /regenerate and /continue redo or extend the last answer, "
        "/reset starts over, /bye (or Ctrl-D) quits; Ctrl-C stops an answer.")


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


def _stream(handle: RequestHandle, out: TextIO | None, on_text=None) -> Finished:
    """Show an answer as it arrives; Ctrl-C (even repeated) cancels it and waits for the engine."""
    while True:
        try:
            for event in handle.events():
                _show(event, out, on_text)
            break
        except KeyboardInterrupt:
            handle.cancel()
    assert handle.result is not None
    return handle.result


def _show(event: Any, out: TextIO | None, on_text) -> None:
    if isinstance(event, TextChunk):
        if on_text is not None:
            on_text(event.text)
        if out is not None:
            out.write(event.text)
            out.flush()
    elif isinstance(event, PromptReady) and event.dropped_messages:
        n = len(event.dropped_messages)
        print(f"[note: the {n} oldest message(s) no longer fit in the {event.context_length:,}-token "
              f"context and were left out]", file=sys.stderr)


class Transcript:
    """The conversation so far: saved in the history as it happens, or (--no-save) only in memory."""

    def __init__(self, store: HistoryStore | None, model: ModelLoaded, settings: SamplingSettings,
                 system: str | None, conversation_id: str | None, draft: str = "auto") -> None:
        self.store, self.model, self.settings, self.system = store, model, settings, system
        self.draft = draft
        self.memory: list[dict[str, str]] = []
        self.memory_prefix = ""
        self.turn: RecordedTurn | None = None
        self.created: list[str] = []  # conversations this run started
        self.conversation_id = conversation_id or self._new_conversation()

    def _new_conversation(self) -> str:
        if self.store is None:
            self.memory = [{"role": "system", "content": self.system}] if self.system else []
            return "terminal-chat"
        conversation_id = self.store.create_conversation(
            model=self.model.ref, model_revision=self.model.revision, system_prompt=self.system or "",
            settings=self.settings.to_dict()).id
        self.created.append(conversation_id)
        return conversation_id

    def reset(self) -> None:
        self.discard_created(only_empty=True)
        self.conversation_id = self._new_conversation()

    def discard_created(self, only_empty: bool) -> None:
        """Delete the conversations this run started (only_empty: those still without a message),
        so a run that saved nothing leaves no empty "New chat" behind."""
        for conversation_id in self.created if self.store is not None else []:
            if not only_empty or self.store.message_count(conversation_id) == 0:
                self.store.delete_conversation(conversation_id)
        self.created = []

    def pending_question(self) -> bool:
        """A continued conversation whose last message (a user turn) was never answered."""
        if self.store is None:
            return False
        path = self.store.active_path(self.conversation_id)
        return bool(path) and path[-1].role == "user"

    def begin(self, user_text: str | None) -> list[dict[str, str]]:
        """Record the user turn (None: answer the pending one); the messages for the engine."""
        if self.store is None:
            self.memory.append({"role": "user", "content": user_text or ""})
            return list(self.memory)
        if user_text is None:
            return engine_messages(self.store, self.store.conversation(self.conversation_id))
        self.turn = start_turn(self.store, self.conversation_id, user_text, model=self.model.ref,
                               model_revision=self.model.revision, settings=self.settings)
        return self.turn.messages

    def redo(self, command: str) -> tuple[list[dict[str, str]], bool]:
        """/regenerate or /continue the last answer: the messages, and whether to continue."""
        continuing = command == "/continue"
        if self.store is None:
            if not self.memory or self.memory[-1]["role"] != "assistant":
                raise HearthError("There is no answer to regenerate or continue yet.")
            if continuing:
                self.memory[-1]["content"] = self.memory[-1]["content"].rstrip()
                self.memory_prefix = self.memory[-1]["content"]
                return list(self.memory), True
            self.memory.pop()
            return list(self.memory), False
        if continuing:
            self.turn = start_continuation(self.store, self.conversation_id)
        else:
            self.turn = start_regeneration(self.store, self.conversation_id, model=self.model.ref,
                                           model_revision=self.model.revision, settings=self.settings)
        return self.turn.messages, continuing

    def on_text(self, text: str) -> None:
        if self.turn is not None:
            self.turn.writer.append(text)

    def finish(self, result: Finished, answered_pending: bool = False, continuing: bool = False) -> None:
        if self.store is None:
            if continuing:
                self.memory[-1]["content"] = self.memory_prefix + result.text
            elif result.text:  # a stopped or cut answer stays in the conversation, as shown
                self.memory.append({"role": "assistant", "content": result.text})
            else:
                self.memory.pop()  # nothing was answered: keep roles alternating
        elif answered_pending:
            if result.text:
                self.store.add_answer(self.conversation_id, self.store.active_path(self.conversation_id)[-1].id,
                                      result.text, model=self.model.ref, model_revision=self.model.revision,
                                      settings=self.settings.to_dict(), **answer_figures(result))
        elif self.turn is not None:
            finish_turn(self.store, self.turn, result)
            if self.turn.writer.forked_from:
                print("[another Hearth window changed this answer while it was being written; this "
                      "version was saved beside it]", file=sys.stderr)
            self.turn = None


def chat(model: str, sampling: SamplingSettings, *, system: str | None, context_length: int | None,
         prompt_format: str | None, save: bool = True, conversation: str | None = None,
         draft: str = "auto") -> int:
    interactive = sys.stdin.isatty()
    store = open_store() if save else None
    transcript = None
    try:
        with Engine() as engine:
            if interactive:
                print(f"Loading {model} ...", file=sys.stderr)
            loaded = _load(engine, model, context_length, prompt_format)
            transcript = Transcript(store, loaded, sampling, system, _continue(store, conversation, system),
                                    _load_draft(engine, draft))
            if interactive:
                saved = f" Saved as {transcript.conversation_id[:SHORT_ID]}." if store else ""
                print(f"{loaded.name} is ready ({loaded.context_length:,}-token context).{saved} {HELP}",
                      file=sys.stderr)
            if transcript.pending_question():
                _answer(engine, transcript, None)
            _chat_loop(engine, transcript, interactive)
    finally:
        if store is not None:
            with contextlib.suppress(HearthError):  # tidying up must not hide why the chat ended
                if transcript is not None:
                    transcript.discard_created(only_empty=True)
            store.close()
    return 0


def _continue(store: HistoryStore | None, conversation: str | None, system: str | None) -> str | None:
    if conversation is None:
        return None
    if store is None:
        raise HearthError("--conversation needs the history; it cannot be combined with --no-save.")
    conversation_id = store.resolve_id(conversation)
    if system is not None:
        store.set_system_prompt(conversation_id, system)
    conv = store.conversation(conversation_id)
    path = store.active_path(conversation_id)
    print(f"[continuing \"{conv.title}\", {len(path)} messages]", file=sys.stderr)
    if path and path[-1].role == "assistant" and path[-1].status == "interrupted":
        print("[the last answer was interrupted: /continue goes on with it, /regenerate starts it "
              "again]", file=sys.stderr)
    return conversation_id


def _chat_loop(engine: Engine, transcript: Transcript, interactive: bool) -> None:
    while True:
        line = _read_line(interactive)
        if line is None or line.strip() in ("/bye", "/exit", "/quit"):
            return
        if not line.strip():
            continue
        if line.strip() == "/reset":
            engine.forget(transcript.conversation_id)
            transcript.reset()
            print("[new conversation]", file=sys.stderr)
            continue
        if line.strip() in ("/regenerate", "/continue"):
            _redo(engine, transcript, line.strip())
            continue
        _answer(engine, transcript, line)


def _answer(engine: Engine, transcript: Transcript, line: str | None) -> None:
    messages = transcript.begin(line)
    request = GenerationRequest(messages, transcript.settings, transcript.conversation_id,
                                draft=transcript.draft)
    result = _stream(engine.generate(request), sys.stdout, transcript.on_text)
    transcript.finish(result, answered_pending=line is None)
    _report(result)


def _redo(engine: Engine, transcript: Transcript, command: str) -> None:
    try:
        messages, continuing = transcript.redo(command)
    except HearthError as exc:
        print(f"[{exc}]", file=sys.stderr)
        return
    if continuing:
        print(messages[-1]["content"], end="", flush=True)
    request = GenerationRequest(messages, transcript.settings, transcript.conversation_id,
                                continue_answer=continuing, draft=transcript.draft)
    result = _stream(engine.generate(request), sys.stdout, transcript.on_text)
    transcript.finish(result, continuing=continuing)
    _report(result)


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


def _report(result: Finished) -> None:
    print(flush=True)
    if result.finish_reason == "error":
        print(f"[error: {result.error}]", file=sys.stderr)
    elif result.finish_reason == "cancelled":
        print("[stopped]", file=sys.stderr)
    elif result.finish_reason == "length":
        print("[answer cut: max tokens reached]", file=sys.stderr)


def generate_once(model: str, messages: list[dict[str, Any]], sampling: SamplingSettings, *,
                  as_json: bool, context_length: int | None, prompt_format: str | None,
                  save: bool = False, conversation: str | None = None, draft: str = "auto") -> int:
    store = open_store() if (save or conversation) else None
    try:
        with Engine() as engine:
            loaded = _load(engine, model, context_length, prompt_format)
            draft = _load_draft(engine, draft)
            transcript, messages = _saved_generation(store, loaded, sampling, messages, conversation)
            request = GenerationRequest(messages, sampling, transcript.conversation_id if transcript else None,
                                        draft=draft)
            on_text = transcript.on_text if transcript else None
            result = _stream(engine.generate(request), None if as_json else sys.stdout, on_text)
            if transcript is not None:
                transcript.finish(result)
                if result.finish_reason == "error" and not result.text:  # nothing to keep
                    transcript.discard_created(only_empty=False)
            if not as_json and (result.text or result.finish_reason != "error"):
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
        print(json.dumps(_result_json(result, transcript), ensure_ascii=False))
    elif transcript is not None:
        print(f"[saved as {transcript.conversation_id[:SHORT_ID]}]", file=sys.stderr)
    return 0


def _saved_generation(store: HistoryStore | None, loaded: ModelLoaded, sampling: SamplingSettings,
                      messages: list[dict[str, Any]], conversation: str | None
                      ) -> tuple[Transcript | None, list[dict[str, Any]]]:
    """With --save, record the file's messages (appended to --conversation ID when given)."""
    if store is None:
        return None, messages
    _check_saveable(messages)
    system = messages[0]["content"] if messages and messages[0].get("role") == "system" else None
    turns = messages[1:] if system is not None else messages
    conversation_id = store.resolve_id(conversation) if conversation else None
    if conversation_id and system is not None:
        store.set_system_prompt(conversation_id, system)
    transcript = Transcript(store, loaded, sampling, system, conversation_id)
    try:
        for earlier in turns[:-1]:
            _record(store, transcript, earlier, loaded)
        return transcript, transcript.begin(turns[-1]["content"])
    except BaseException:  # a refused message: the conversation this run started goes too
        transcript.discard_created(only_empty=False)
        raise


def _check_saveable(messages: list[dict[str, Any]]) -> None:
    ok = messages and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
    if not ok or messages[-1].get("role") != "user":
        raise HearthError("To save, the messages must end with a user message to answer.")


def _record(store: HistoryStore, transcript: Transcript, message: dict[str, Any], loaded: ModelLoaded) -> None:
    if message.get("role") == "user":
        store.add_user_message(transcript.conversation_id, message["content"])
    elif message.get("role") == "assistant":
        parent = store.active_path(transcript.conversation_id)
        if not parent or parent[-1].role != "user":
            raise HearthError("Roles must alternate user, assistant, ... to be saved.")
        store.add_answer(transcript.conversation_id, parent[-1].id, message["content"])
    else:
        raise HearthError(f"Only the first message can be a system prompt, not {message.get('role')!r}.")


def _result_json(result: Finished, transcript: Transcript | None = None) -> dict[str, Any]:
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
    if transcript is not None:
        data["conversation_id"] = transcript.conversation_id
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
