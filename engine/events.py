"""Plain-data events the engine thread sends to its callers. No MLX arrays ever cross threads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    request_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class ModelLoading(Event):
    name: str


@dataclass(frozen=True)
class ModelLoaded(Event):
    name: str
    source: str  # what history records: "org/name@revision" or a folder path
    ref: str  # what `hearth chat` takes to load it again: repo id or folder path
    revision: str | None
    context_length: int
    weight_bytes: int
    kv_bytes_per_token: int
    load_s: float
    prompt_format: str


@dataclass(frozen=True)
class ModelUnloaded(Event):
    name: str
    active_memory_bytes: int


@dataclass(frozen=True)
class PromptReady(Event):
    """Sent before processing: how big the prompt is and which messages did not fit."""

    prompt_tokens: int
    reused_tokens: int
    context_length: int
    max_tokens: int
    dropped_messages: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PromptProgress(Event):
    processed: int
    total: int


@dataclass(frozen=True)
class TextChunk(Event):
    text: str


@dataclass(frozen=True)
class Finished(Event):
    """The last event of every request. finish_reason: stop, length, cancelled or error."""

    finish_reason: str
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    reused_tokens: int = 0
    cache_source: str = "none"  # where the reused tokens' keys and values came from: memory, disk, none
    draft_accepted: int = 0  # speculative decoding: drafted tokens the model confirmed
    draft_proposed: int = 0
    generation_tokens: int = 0
    ttft_s: float = 0.0
    prompt_tps: float = 0.0
    generation_tps: float = 0.0
    peak_memory_gb: float = 0.0
    dropped_messages: list[int] = field(default_factory=list)
    seed: int | None = None
    error: str | None = None
    error_kind: str | None = None

