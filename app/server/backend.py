"""The server's side of the engine: which model it serves, and one generation per HTTP request.

Requests go to the engine's one thread like the window's do, and queue with them in order. Events
come back on the server's event loop (call_soon_threadsafe from the engine thread), so no handler
ever blocks the loop. A client that goes away cancels its generation through the handle's
thread-safe flag, which the engine checks after every token and prefill chunk.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from engine.engine import Engine
from engine.errors import EngineStopped
from engine.events import Event, Finished, PromptReady, TextChunk
from engine.generation import GenerationRequest, LoadedModel
from engine.kv_cache import common_prefix_length
from engine.prompts import PromptFormat, build_prompt
from engine.sampling import SamplingSettings

# Engine errors that are the request's fault (answered 400), by Finished.error_kind.
REQUEST_ERRORS = frozenset({"PromptError", "ContextOverflow"})
PLAIN_CACHE_KEY = "server-plain"
NOT_LOADED = "Hearth has no model loaded right now; load one in Hearth first."


class ApiError(Exception):
    """A request the server refuses: an HTTP status and one clear line, in each protocol's shape."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


@dataclass(frozen=True)
class Job:
    """What a route asks the engine for."""

    messages: list[dict[str, Any]]
    sampling: SamplingSettings
    prompt_format: str | None = None  # "plain" for completions; None: the model's own format
    continue_answer: bool = False  # plain completions keep the space their first word carries
    keep_whole: bool = False  # refuse an over-long prompt (OpenAI) instead of leaving old turns out


class ConversationKeys:
    """Engine cache keys for clients that resend the whole conversation with every request.

    A request gets the key of the conversation it repeats: all of that conversation's messages,
    except perhaps its last exchange, which a client may edit or regenerate, and at least its first
    user message (chats that share only a system prompt are different chats). The engine matches
    tokens within the key's cache, so a wrong guess costs speed, never a wrong answer."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._known: OrderedDict[str, list[int]] = OrderedDict()
        self._numbers = itertools.count(1)

    def key_for(self, messages: list[dict[str, Any]]) -> str:
        prints = _fingerprints(messages)
        best = None
        best_shared = 1 if messages and messages[0].get("role") == "system" else 0
        for key, known in self._known.items():
            shared = common_prefix_length(known, prints)
            if shared > best_shared and shared >= len(known) - 2:
                best, best_shared = key, shared
        key = best or f"server-{next(self._numbers)}"
        self.remember(key, messages)
        return key

    def remember(self, key: str, messages: list[dict[str, Any]]) -> None:
        self._known[key] = _fingerprints(messages)
        self._known.move_to_end(key)
        while len(self._known) > self.capacity:
            self._known.popitem(last=False)


def _fingerprints(messages: list[dict[str, Any]]) -> list[int]:
    return [hash((m.get("role"), m.get("content"))) for m in messages]


class ServedEngine:
    """The engine as the server sees it: the loaded model, generations, and what was served.

    on_change() runs on the server's loop thread whenever a generation starts or ends."""

    def __init__(self, engine: Engine, on_change: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.on_change = on_change
        self.keys = ConversationKeys()
        self.served = 0  # requests answered in full
        self.active = 0  # generations queued or running
        self._generations: set[Generation] = set()
        # The last requests' results, cancelled ones included (appended on the engine thread).
        self.recent: deque[Finished] = deque(maxlen=32)

    @property
    def loaded(self) -> LoadedModel | None:
        return self.engine.loaded

    def model_id(self) -> str | None:
        loaded = self.loaded
        return loaded.info.name if loaded is not None else None

    def check_model(self, requested: Any, tag_suffix: str = "") -> str:
        """The served model's id if `requested` names it; else 400/404/503 with one line."""
        if not isinstance(requested, str) or not requested:
            raise ApiError(400, "'model' must name the model to use (GET the model list for it).",
                           param="model")
        loaded = self.loaded
        if loaded is None:
            raise ApiError(503, NOT_LOADED, code="model_not_loaded", param="model")
        names = {loaded.info.name, loaded.info.ref, str(loaded.info.path)}
        if loaded.info.repo_id:
            names.add(loaded.info.repo_id)
        name = requested.removesuffix(tag_suffix) if tag_suffix else requested
        if name not in names:
            raise ApiError(404, f"The model {requested!r} does not exist here; Hearth serves "
                                f"{loaded.info.name!r}.", code="model_not_found", param="model")
        return loaded.info.name

    async def start(self, job: Job, receive: Callable[[], Any]) -> Generation:
        """Submit `job`; returns once its prompt is ready, or raises ApiError for a bad one."""
        try:
            generation = Generation(self, job, receive)
        except EngineStopped:
            raise ApiError(503, "Hearth is shutting down.", code="server_error") from None
        try:
            await generation.open()
        except BaseException:
            generation.close()
            raise
        return generation

    def cache_key(self, job: Job) -> str:
        return PLAIN_CACHE_KEY if job.prompt_format == PromptFormat.PLAIN.value else \
            self.keys.key_for(job.messages)

    def cancel_all(self) -> None:
        """On the loop: stop every generation (the server is stopping)."""
        for generation in list(self._generations):
            generation.handle.cancel()

    def _changed(self, started: int = 0, finished: int = 0, served: int = 0) -> None:
        self.active += started - finished
        self.served += served
        if self.on_change is not None:
            self.on_change()


class Generation:
    """One request's generation on the loop: its events in order, and a cancel on disconnect."""

    def __init__(self, served: ServedEngine, job: Job, receive: Callable[[], Any]) -> None:
        self.served, self.job = served, job
        self.loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._arrived: deque[Event] = deque()  # from the engine thread, not yet on the loop
        self._delivery_scheduled = False
        self.result: Finished | None = None
        self.ready: PromptReady | None = None
        self.key = served.cache_key(job)
        request = GenerationRequest(job.messages, job.sampling, self.key, job.prompt_format,
                                    job.continue_answer)
        self._closed = False
        self.handle = served.engine.generate(request, on_event=self._from_engine)
        served._generations.add(self)
        served._changed(started=1)
        self._watcher = self.loop.create_task(_cancel_on_disconnect(receive, self.handle.cancel))

    def _from_engine(self, event: Event) -> None:
        """On the engine thread: hand the event to the loop, waking it once for all that arrive
        before it runs (each wake-up is a system call and a switch of the interpreter's lock)."""
        if isinstance(event, Finished):
            self.served.recent.append(event)
        self._arrived.append(event)
        if self._delivery_scheduled:
            return
        self._delivery_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the server's loop has closed: nobody is listening any more
            self.handle.cancel()

    def _deliver(self) -> None:
        """On the loop. The flag goes down first, so an event arriving meanwhile schedules anew."""
        self._delivery_scheduled = False
        while self._arrived:
            self._events.put_nowait(self._arrived.popleft())

    async def _next(self) -> Event:
        event = await self._events.get()
        if isinstance(event, Finished):
            self.result = event
        return event

    async def open(self) -> PromptReady:
        while self.ready is None:
            event = await self._next()
            if isinstance(event, PromptReady):
                self.ready = event
            elif isinstance(event, Finished) and self.served.loaded is None:
                raise ApiError(503, NOT_LOADED, code="model_not_loaded")
            elif isinstance(event, Finished):
                raise _refusal(event)
        if self.job.keep_whole and self.ready.dropped_messages:
            self.handle.cancel()
            raise await self._too_long(self.ready)
        return self.ready

    async def text(self) -> AsyncIterator[str]:
        """The answer's text as it comes; self.result holds Finished afterwards.

        Chunks that queued up while the client was being written to go out as one."""
        while self.result is None:
            pieces = [await self._next()]
            while self.result is None and not self._events.empty():
                pieces.append(await self._next())
            text = "".join(e.text for e in pieces if isinstance(e, TextChunk))
            if text:
                yield text

    async def finish(self) -> Finished:
        async for _text in self.text():
            pass
        assert self.result is not None
        return self.result

    def close(self) -> None:
        """Stop watching the client, and stop the generation if it still runs. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._watcher.cancel()
        if self.result is None:
            self.handle.cancel()
        answered = self.result is not None and self.result.finish_reason in ("stop", "length")
        if answered and self.job.prompt_format != PromptFormat.PLAIN.value:
            answer = {"role": "assistant", "content": self.result.text}
            self.served.keys.remember(self.key, [*self.job.messages, answer])
        self.served._generations.discard(self)
        self.served._changed(finished=1, served=int(answered))

    async def _too_long(self, ready: PromptReady) -> ApiError:
        job = self.job

        def count(loaded: LoadedModel | None) -> int:
            fmt = PromptFormat(job.prompt_format) if job.prompt_format else loaded.prompt_format
            return len(build_prompt(loaded.tokenizer, job.messages, fmt, 2**62, 1,
                                    continuing=job.continue_answer).ids)

        needed = await asyncio.wrap_future(self.served.engine.run(count))
        room = max(1, min(job.sampling.max_tokens, ready.context_length // 4))
        return ApiError(
            400, f"The messages need {needed:,} tokens and the answer {room:,} more, but this "
                 f"model's context window holds {ready.context_length:,} tokens; shorten the "
                 f"messages or lower max_tokens.", code="context_length_exceeded", param="messages")


async def _cancel_on_disconnect(receive: Callable[[], Any], cancel: Callable[[], None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    cancel()


def _refusal(finished: Finished) -> ApiError:
    if finished.finish_reason == "cancelled":
        return ApiError(499, "The request was cancelled.")
    if finished.error_kind == "ContextOverflow":
        return ApiError(400, finished.error or "The prompt is too long.", code="context_length_exceeded",
                        param="messages")
    if finished.error_kind in REQUEST_ERRORS:
        return ApiError(400, finished.error or "The messages cannot be answered.", param="messages")
    return ApiError(500, finished.error or "Generation failed.", code="server_error")
