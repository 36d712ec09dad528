"""The desktop app's link to the engine: one QThread owns every MLX call for the app's lifetime.

Requests go in as plain data; engine events come back as Qt signals on the GUI thread. A stop is a
thread-safe flag set directly (a queued message would not reach a thread busy generating).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal

from engine.engine import Engine, RequestHandle
from engine.events import (
    Event,
    Finished,
    ModelLoaded,
    ModelLoading,
    ModelUnloaded,
    PromptProgress,
    PromptReady,
    TextChunk,
)
from engine.generation import GenerationRequest


class EngineThread(QThread):
    """The QThread the engine serves its requests on."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__()
        self._target = target
        self.setObjectName("hearth-engine")

    def run(self) -> None:
        self._target()

    def join(self, timeout: float | None = None) -> None:
        self.wait(int(timeout * 1000) if timeout is not None else -1)


class EngineBridge(QObject):
    """Signals (delivered on the GUI thread, carrying plain data):
        modelLoading(str): a load started (name).
        modelLoaded(dict): ModelLoaded as a dict.
        modelUnloaded(dict): ModelUnloaded as a dict.
        promptReady(int, dict): request id, PromptReady as a dict (sizes, dropped messages).
        promptProgress(int, int, int): request id, tokens processed, total.
        textChunk(int, str): request id, new text.
        finished(int, dict): request id, Finished as a dict (the last event of every request).
        event(object): every event itself, before the signal of its kind (events are frozen plain
            data, safe to hand on).
    """

    modelLoading = Signal(str)
    modelLoaded = Signal(dict)
    modelUnloaded = Signal(dict)
    promptReady = Signal(int, dict)
    promptProgress = Signal(int, int, int)
    textChunk = Signal(int, str)
    finished = Signal(int, dict)
    event = Signal(object)
    _event = Signal(object)  # from the engine thread; queued to the GUI thread

    def __init__(self, parent: QObject | None = None, **engine_options: Any) -> None:
        super().__init__(parent)
        self.engine = Engine(thread_factory=EngineThread, **engine_options)
        self._handles: dict[int, RequestHandle] = {}
        self._stopped = False
        self._event.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)

    def start(self) -> None:
        self.engine.start()

    # --- requests (GUI thread; none of them waits) ---

    def load(self, model: str, context_length: int | None = None) -> int:
        return self._track(lambda: self.engine.load(model, context_length=context_length, on_event=self._event.emit))

    def load_draft(self, model: str) -> int:
        """Load a draft model (Prefs "generation/draft" holding a model ref) after the main model;
        `finished` says "done", or "error" with why (another tokenizer, too large, not found).
        Requests with GenerationRequest(draft="model") then use it."""
        return self._track(lambda: self.engine.load_draft(model, on_event=self._event.emit))

    def generate(self, request: GenerationRequest) -> int:
        return self._track(lambda: self.engine.generate(request, on_event=self._event.emit))

    def unload(self) -> int:
        return self._track(lambda: self.engine.unload(on_event=self._event.emit))

    def leave(self, conversation_id: str) -> int:
        """The user left this conversation: the engine saves its cache to disk (off this thread)."""
        return self._track(lambda: self.engine.leave(conversation_id, on_event=self._event.emit))

    def forget(self, conversation_id: str, deleted: bool = False) -> int:
        """Drop a conversation's caches, in memory and on disk. deleted: the user deleted it, so no
        Hearth process (the terminal too) may save one of it again."""
        return self._track(lambda: self.engine.forget(conversation_id, on_event=self._event.emit,
                                                      deleted=deleted))

    def cancel(self, request_id: int) -> None:
        handle = self._handles.get(request_id)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in list(self._handles.values()):
            handle.cancel()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop generating, free the model on its thread, and end the thread (at quit)."""
        self._stopped = True
        self.cancel_all()
        self.engine.shutdown(timeout)

    def _track(self, submit) -> int:
        """Submit a request; after shutdown (a late callback at quit) nothing is sent: -1."""
        if self._stopped:
            return -1
        handle = submit()
        self._handles[handle.id] = handle
        return handle.id

    # --- events (GUI thread) ---

    def _dispatch(self, event: Event) -> None:
        self.event.emit(event)
        if isinstance(event, TextChunk):
            self.textChunk.emit(event.request_id, event.text)
        elif isinstance(event, PromptProgress):
            self.promptProgress.emit(event.request_id, event.processed, event.total)
        elif isinstance(event, PromptReady):
            self.promptReady.emit(event.request_id, event.to_dict())
        elif isinstance(event, ModelLoading):
            self.modelLoading.emit(event.name)
        elif isinstance(event, ModelLoaded):
            self.modelLoaded.emit(event.to_dict())
        elif isinstance(event, ModelUnloaded):
            self.modelUnloaded.emit(event.to_dict())
        elif isinstance(event, Finished):
            self._handles.pop(event.request_id, None)
            self.finished.emit(event.request_id, event.to_dict())
