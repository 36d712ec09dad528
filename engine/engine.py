"""The engine: one long-lived thread that owns every MLX call.

MLX streams belong to the thread that created them, so loading, generating, cache handling and
unloading all happen on this one thread. Callers submit requests and get plain-data events back (on
the handle's queue, or through a callback they pass, which runs on the engine thread). Cancelling
sets a thread-safe flag that the generation loop checks after every token and every prefill chunk;
a queued message would not reach a thread busy generating.
"""

from __future__ import annotations

import gc
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from . import disk_cache, fit
from .errors import EngineStopped, HearthError, ModelFolderError, WeightsMismatch
from .events import Event, Finished, ModelLoaded, ModelLoading, ModelUnloaded
from .generation import GenerationRequest, LoadedModel, generate
from .kv_cache import ConversationCaches
from .model_folder import ModelInfo, resolve_model
from .platform import (
    computes_in_float32,
    default_prefill_step,
    release_thread_streams,
    usable_memory_bytes,
)
from .prompts import choose_format
from .speculative import can_draft_for
from .tokenizer import load_tokenizer

log = logging.getLogger(__name__)

# Share of usable memory that idle conversations' KV caches may keep.
DEFAULT_CACHE_BUDGET_FRACTION = 0.2
# With kv_bits, caches holding at least this many positions are kept quantized in memory: shorter
# ones are small, and stay exact.
DEFAULT_QUANTIZED_KV_START = 4096

EventSink = Callable[[Event], None]


class RequestHandle:
    """A submitted request: its events, and a cancel that works from any thread."""

    def __init__(self, request_id: int, on_event: EventSink | None) -> None:
        self.id = request_id
        self._cancel = threading.Event()
        self._queue: queue.Queue[Event] = queue.Queue()
        self._on_event = on_event
        self.done = threading.Event()
        self.result: Finished | None = None

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def emit(self, event: Event) -> None:
        if isinstance(event, Finished):
            self.result = event
        if self._on_event is not None:
            self._on_event(event)
        else:
            self._queue.put(event)
        if isinstance(event, Finished):
            self.done.set()

    def events(self, poll_s: float = 0.1) -> Iterator[Event]:
        """Events until (and including) Finished. Polls so Ctrl-C reaches the main thread.

        Safe to call again after an interruption: emit() queues Finished before setting `done`, so
        a done request with an empty queue has nothing left, even if Finished was taken by a loop
        that a Ctrl-C broke off."""
        while not (self.done.is_set() and self._queue.empty()):
            try:
                event = self._queue.get(timeout=poll_s)
            except queue.Empty:
                continue
            yield event

    def wait(self, timeout: float | None = None) -> Finished:
        if self._on_event is None:
            for _event in self.events():
                pass
        elif not self.done.wait(timeout):
            raise TimeoutError("The engine did not finish the request in time.")
        assert self.result is not None
        return self.result


class Engine:
    def __init__(
        self,
        *,
        prefill_step_size: int | None = None,
        cache_budget_bytes: int | None = None,
        memory_bytes: int | None = None,
        disk_cache_budget_bytes: int | None = None,
        save_caches: bool = True,
        saved_kv_bits: int | None = None,
        kv_bits: int | None = None,
        quantized_kv_start: int = DEFAULT_QUANTIZED_KV_START,
        thread_factory: Callable[[Callable[[], None]], Any] | None = None,
    ) -> None:
        """memory_bytes overrides what the fit check thinks this machine can give (for tests).

        save_caches: conversation caches go to disk when evicted, left or at shut-down, and a
        prompt's longest saved prefix is loaded (disk_cache_budget_bytes: default, the setting).
        saved_kv_bits: 8 saves them compressed to 8 bits, 0 at full precision; None (default): as
        Settings > Data says (disk_cache.read_kv_bits).

        kv_bits (8): caches holding at least quantized_kv_start positions are kept at that many bits
        in memory too (long contexts take ~0.28 of float32's memory, ~0.53 of float16's).

        thread_factory(target) makes the engine's one thread: an object with start() and
        join(timeout). The default is a threading.Thread; the desktop app passes a QThread."""
        self._thread_factory = thread_factory or _python_thread
        self.prefill_step_size = prefill_step_size or default_prefill_step()
        self.memory_bytes = memory_bytes
        self._cache_budget = cache_budget_bytes
        self._save_caches = save_caches
        self._disk_budget = disk_cache_budget_bytes
        if kv_bits not in (None, 8) or saved_kv_bits not in (None, 0, 8):
            raise ValueError("KV caches are kept at full precision or 8 bits")
        self._saved_kv_bits = saved_kv_bits
        self._kv_bits = kv_bits
        self._kv_start = quantized_kv_start
        self.disk: disk_cache.DiskCaches | None = None
        self._requests: queue.Queue[tuple[RequestHandle, Callable[[RequestHandle], None]] | None] = (
            queue.Queue()
        )
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._current: RequestHandle | None = None
        self._stopped = False
        self.loaded: LoadedModel | None = None
        self.caches: ConversationCaches | None = None
        self._running = threading.Event()
        self._thread_ident: int | None = None

    # --- lifecycle (any thread) ---

    def start(self) -> Engine:
        if self._thread is None:
            self._thread = self._thread_factory(self._serve)
            self._thread.start()
        return self

    @property
    def thread_id(self) -> int | None:
        """The engine thread's threading.get_ident(), once it runs."""
        self._running.wait(5.0)
        return self._thread_ident

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel what runs, free the model on the engine thread, and stop the thread."""
        if self._thread is None or self._stopped:
            return
        self._stopped = True
        current = self._current
        if current is not None:
            current.cancel()
        self._requests.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- requests (any thread) ---

    def load(
        self,
        model: str | Path | ModelInfo,
        *,
        context_length: int | None = None,
        prompt_format: str | None = None,
        on_event: EventSink | None = None,
    ) -> RequestHandle:
        return self._submit(lambda h: self._load(h, model, context_length, prompt_format), on_event)

    def load_draft(self, model: str | Path | ModelInfo, on_event: EventSink | None = None) -> RequestHandle:
        """Load a small model with the loaded model's tokenizer, for GenerationRequest(draft="model")."""
        return self._submit(lambda h: self._load_draft(h, model), on_event)

    def generate(self, request: GenerationRequest, on_event: EventSink | None = None) -> RequestHandle:
        return self._submit(lambda h: self._generate(h, request), on_event)

    def unload(self, on_event: EventSink | None = None) -> RequestHandle:
        return self._submit(self._unload, on_event)

    def forget(self, conversation_id: str, on_event: EventSink | None = None, *,
               deleted: bool = False) -> RequestHandle:
        """Drop a conversation's KV cache (its history was rewritten, or deleted) and delete every
        saved copy of it, whichever model made it; works with no model loaded. deleted: the
        conversation was deleted, so no Hearth process may save a cache of it again."""
        return self._submit(lambda h: self._forget(h, conversation_id, deleted), on_event)

    def leave(self, conversation_id: str, on_event: EventSink | None = None) -> RequestHandle:
        """The user left a conversation: save its cache to disk (it stays in memory too)."""
        return self._submit(lambda h: self._leave(h, conversation_id), on_event)

    def run(self, fn: Callable[[LoadedModel | None], Any]) -> Future:
        """Run fn(loaded_model) on the engine thread; for benchmarks and diagnostics."""
        future: Future = Future()

        def task(handle: RequestHandle) -> None:
            try:
                future.set_result(fn(self.loaded))
            except BaseException as exc:  # handed to the caller through the future
                future.set_exception(exc)
            handle.emit(Finished(handle.id, "done"))

        self._submit(task, None)
        return future

    def _submit(self, work: Callable[[RequestHandle], None], on_event: EventSink | None) -> RequestHandle:
        if self._stopped:
            raise EngineStopped("The engine has shut down.")
        self.start()
        handle = RequestHandle(next(self._ids), on_event)
        self._requests.put((handle, work))
        return handle

    # --- the engine thread ---

    def _serve(self) -> None:
        self._thread_ident = threading.get_ident()
        self._running.set()
        while True:
            item = self._requests.get()
            if item is None:
                break
            handle, work = item
            if self._stopped or handle.cancelled:
                handle.emit(Finished(handle.id, "cancelled"))
                continue
            self._current = handle
            try:
                work(handle)
            except HearthError as exc:
                handle.emit(_error(handle, exc))
            except Exception as exc:  # the thread must survive anything a request does
                log.exception("engine request %s failed", handle.id)
                handle.emit(_error(handle, exc))
            finally:
                self._current = None
        self._free_model()
        release_thread_streams()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                item = self._requests.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[0].emit(Finished(item[0].id, "cancelled"))

    def _load(self, handle: RequestHandle, model, context_length: int | None, prompt_format) -> None:
        source = model if isinstance(model, ModelInfo) else resolve_model(model)
        widen = _widens(source)
        info = source.widened() if widen else source  # its memory as computed here
        context = context_length or info.default_context
        if context < 16:
            raise HearthError(f"A context of {context} tokens is too small to chat in.")
        fit.require_fit(info, context, self.memory_bytes)
        if context > info.max_context:
            raise HearthError(
                f"{info.name} was trained for at most {info.max_context:,} tokens of context; "
                f"{context:,} would give garbled answers past that point."
            )
        fmt = choose_format(info, prompt_format)
        handle.emit(ModelLoading(handle.id, info.name))
        self._free_model()
        started = time.perf_counter()
        self.loaded = LoadedModel(info, _load_weights(info, widen), load_tokenizer(info), context, fmt,
                                  kv_bits=self._kv_bits, kv_start=self._kv_start)
        budget = self._cache_budget
        if budget is None:
            budget = int(DEFAULT_CACHE_BUDGET_FRACTION * (self.memory_bytes or usable_memory_bytes()))
        self.caches = ConversationCaches(budget)
        self.disk = self._open_disk_caches(info, context)
        handle.emit(
            ModelLoaded(handle.id, info.name, info.source, info.ref, info.revision, context, info.weight_bytes,
                        info.kv_bytes_per_token, time.perf_counter() - started, fmt.value)
        )
        handle.emit(Finished(handle.id, "done"))

    def _load_draft(self, handle: RequestHandle, model) -> None:
        if self.loaded is None:
            raise HearthError("Load a model before its draft model.")
        source = model if isinstance(model, ModelInfo) else resolve_model(model)
        widen = _widens(source)
        info = source.widened() if widen else source
        tokenizer = load_tokenizer(info)
        target = self.loaded.tokenizer
        if not can_draft_for(tokenizer, target):
            raise HearthError(f"{info.name} cannot draft for {self.loaded.info.name}: their tokenizers "
                              f"differ, so its ids would mean other text.")
        fit.require_fit(info, self.loaded.context_length, self.memory_bytes)
        self.loaded.draft_model = None  # the previous draft model's memory goes first
        gc.collect()
        self.loaded.draft_model, self.loaded.draft_name = _load_weights(info, widen), info.name
        handle.emit(Finished(handle.id, "done"))

    def _generate(self, handle: RequestHandle, request: GenerationRequest) -> None:
        if self.loaded is None or self.caches is None:
            raise HearthError("No model is loaded.")
        result = generate(
            self.loaded, request, handle.id, self.caches, handle._cancel, handle.emit,
            self.prefill_step_size, self.disk,
        )
        handle.emit(result)
        self._save(self.caches.evicted)  # after the answer is out, so saving never delays it
        self.caches.evicted = []

    def _unload(self, handle: RequestHandle) -> None:
        name = self.loaded.info.name if self.loaded else ""
        self._free_model()
        import mlx.core as mx

        handle.emit(ModelUnloaded(handle.id, name, int(mx.get_active_memory())))
        handle.emit(Finished(handle.id, "done"))

    def _forget(self, handle: RequestHandle, conversation_id: str, deleted: bool) -> None:
        if self.caches is not None:
            self.caches.drop(conversation_id)
        try:
            disk_cache.forget_conversation(conversation_id, deleted=deleted)
        except OSError as exc:  # a read-only or vanished cache folder: nothing more can be deleted
            log.warning("the saved caches of a deleted conversation could not be deleted: %s", exc)
        handle.emit(Finished(handle.id, "done"))

    def _leave(self, handle: RequestHandle, conversation_id: str) -> None:
        entry = self.caches.get(conversation_id) if self.caches is not None else None
        if entry is not None:
            self._save([entry])
        handle.emit(Finished(handle.id, "done"))

    def _open_disk_caches(self, info: ModelInfo, context: int) -> disk_cache.DiskCaches | None:
        if not self._save_caches:
            return None
        try:
            identity = disk_cache.model_identity(info, context)
        except (OSError, ValueError) as exc:
            log.warning("conversation caches of %s will not be saved: %s", info.name, exc)
            return None
        return disk_cache.DiskCaches(identity, info.num_layers, self._disk_budget,
                                     save_bits=self._saved_kv_bits, live_bits=self._kv_bits)

    def _save(self, entries: list) -> None:
        """Write caches to disk (engine thread); a fault is logged and costs only the saved copy."""
        if self.disk is None:
            return
        for entry in entries:
            try:
                self.disk.save(entry.cache, entry.ids, entry.conversation)
            except Exception as exc:  # noqa: BLE001 - after the answer: nothing may fail the request now
                self.disk.log_fault(exc)

    def _free_model(self) -> None:
        if self.loaded is None and self.caches is None:
            return
        self.loaded = None
        if self.caches is not None:
            self._save(self.caches.take_all())
        self.caches = None
        self.disk = None
        gc.collect()
        import mlx.core as mx

        mx.clear_cache()


def _python_thread(target: Callable[[], None]) -> threading.Thread:
    return threading.Thread(target=target, name="hearth-engine", daemon=True)


def _widens(info: ModelInfo) -> bool:
    """Whether this model's 16-bit floats are widened to float32 after loading: a quantized model's
    (scales, biases, norms: a small part of it) on MLX's CPU backend, where 16-bit arithmetic is
    very slow (platform.computes_in_float32). An unquantized 16-bit model would double in size, so
    it stays as it is."""
    return bool(info.quantization) and info.half_float_bytes > 0 and computes_in_float32()


def _load_weights(info: ModelInfo, widen: bool = False) -> Any:
    from mlx_lm.utils import load_model

    try:
        model, _config = load_model(info.path, lazy=False, strict=True)
    except ValueError as exc:
        # mlx-lm raises ValueError for missing, extra or misshapen parameters.
        raise WeightsMismatch(f"The weights of {info.name} do not match config.json: {exc}") from exc
    except FileNotFoundError as exc:
        raise ModelFolderError(f"{info.name} changed while loading: {exc}") from exc
    if widen:
        _widen_half_floats(model)
    return model


def _widen_half_floats(model: Any) -> None:
    """float16 and bfloat16 parameters to float32 (activations, keys and values follow)."""
    import mlx.core as mx
    from mlx.utils import tree_map

    halves = (mx.float16, mx.bfloat16)
    model.update(tree_map(lambda a: a.astype(mx.float32) if a.dtype in halves else a, model.parameters()))
    mx.eval(model.parameters())


def _error(handle: RequestHandle, exc: Exception) -> Finished:
    kind = type(exc).__name__
    message = str(exc) if isinstance(exc, HearthError) else f"Internal error ({kind}): {exc}"
    return Finished(handle.id, "error", error=message, error_kind=kind)
