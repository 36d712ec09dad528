"""Sampling settings, validated, and the MLX sampler and logits processors they make."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import HearthError

# Meta's example chat settings for Llama 2.
DEFAULT_TEMPERATURE = 0.6
DEFAULT_TOP_P = 0.9
DEFAULT_MAX_TOKENS = 1024
DEFAULT_REPETITION_CONTEXT = 64


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    repetition_context_size: int = DEFAULT_REPETITION_CONTEXT
    max_tokens: int = DEFAULT_MAX_TOKENS
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None

    def __post_init__(self) -> None:
        _check(math.isfinite(self.temperature) and self.temperature >= 0,
               f"temperature must be a finite number, 0 or more, not {self.temperature}")
        _check(0 <= self.top_p <= 1, f"top-p must be between 0 and 1, not {self.top_p}")
        _check(self.top_k >= 0, f"top-k must be 0 (off) or more, not {self.top_k}")
        _check(0 <= self.min_p <= 1, f"min-p must be between 0 and 1, not {self.min_p}")
        _check(math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0,
               f"repetition penalty must be a finite number above 0 (1 is off), not "
               f"{self.repetition_penalty}")
        _check(self.repetition_context_size > 0, "repetition context size must be positive")
        _check(self.max_tokens > 0, f"max tokens must be at least 1, not {self.max_tokens}")
        _check(all(isinstance(s, str) and s for s in self.stop), "stop strings must be non-empty")
        _check(self.seed is None or 0 <= self.seed < 2**63, "seed must be a non-negative integer")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "stop" in values:
            values["stop"] = tuple(values["stop"] or ())
        return cls(**values)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise HearthError(f"Invalid sampling setting: {message}.")


def make_sampler(settings: SamplingSettings, vocab_size: int):
    from mlx_lm.sample_utils import make_sampler as mlx_make_sampler

    # Keeping the top k of vocab_size tokens or fewer keeps them all: off. mlx-lm refuses such a k.
    return mlx_make_sampler(
        temp=settings.temperature,
        top_p=settings.top_p if settings.top_p < 1 else 0.0,
        min_p=settings.min_p,
        top_k=settings.top_k if settings.top_k < vocab_size else 0,
    )


def make_logits_processors(settings: SamplingSettings, earlier_ids: list[int]) -> list:
    """Logits processors that see the whole conversation, not just the tokens fed this turn.

    generate_step passes a processor only the ids fed in this call plus the generated ones. With a
    reused KV cache that is a suffix of the prompt, so the penalty would differ from a full
    re-processing; prepending the cached ids keeps the two identical.
    """
    if settings.repetition_penalty == 1.0:
        return []
    import mlx.core as mx
    from mlx_lm.sample_utils import make_repetition_penalty

    size = settings.repetition_context_size
    base = make_repetition_penalty(settings.repetition_penalty, size)
    history = mx.array(earlier_ids[-size:], dtype=mx.uint32)

    def penalty(tokens, logits):
        return base(mx.concatenate([history, tokens.astype(mx.uint32)])[-size:], logits)

    return [penalty]
