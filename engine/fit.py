"""Will a model fit? Weights (from safetensors headers) plus the KV cache at the chosen context,
against the memory this machine can give to MLX."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ModelTooLarge
from .model_folder import ModelInfo
from .platform import usable_memory_bytes

# Activations, the sampler and MLX's own buffers: measured at well under this on tiny and 7B models.
RUNTIME_OVERHEAD_BYTES = 300 * 1024**2
# Above this share of usable memory a model runs, but the Mac will swap or slow down under load.
TIGHT_FRACTION = 0.8

GiB = 1024**3


@dataclass(frozen=True)
class FitReport:
    weight_bytes: int
    kv_bytes: int
    context_length: int
    available_bytes: int

    @property
    def needed_bytes(self) -> int:
        return self.weight_bytes + self.kv_bytes + RUNTIME_OVERHEAD_BYTES

    @property
    def verdict(self) -> str:
        """'fits', 'tight' or 'too_large'."""
        if self.needed_bytes > self.available_bytes:
            return "too_large"
        if self.needed_bytes > TIGHT_FRACTION * self.available_bytes:
            return "tight"
        return "fits"

    def describe(self) -> str:
        return (
            f"needs {_gib(self.needed_bytes)} (weights {_gib(self.weight_bytes)} + KV cache "
            f"{_gib(self.kv_bytes)} at {self.context_length:,} tokens + runtime "
            f"{_gib(RUNTIME_OVERHEAD_BYTES)}) of {_gib(self.available_bytes)} available"
        )


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def fit_report(info: ModelInfo, context_length: int, available_bytes: int | None = None) -> FitReport:
    return estimate(info.weight_bytes, info.kv_bytes_per_token, context_length, available_bytes)


def estimate(weight_bytes: int, kv_bytes_per_token: int, context_length: int,
             available_bytes: int | None = None) -> FitReport:
    """The fit of a model not on disk yet (catalog and Hub search), from its sizes alone."""
    return FitReport(
        weight_bytes=weight_bytes,
        kv_bytes=kv_bytes_per_token * context_length,
        context_length=context_length,
        available_bytes=usable_memory_bytes() if available_bytes is None else available_bytes,
    )


def require_fit(info: ModelInfo, context_length: int, available_bytes: int | None = None) -> FitReport:
    report = fit_report(info, context_length, available_bytes)
    if report.verdict == "too_large":
        raise ModelTooLarge(
            f"{info.name} will not fit in memory: it {report.describe()}. Choose a smaller model "
            f"or a shorter context."
        )
    return report
