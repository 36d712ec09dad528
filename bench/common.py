"""What the benchmarks share: paths, cached random models, an engine session, and small statistics.

Models are random Llama networks built with tests/tiny_models.py (no downloads), cached under
bench/.cache/ in a folder named after every parameter that shapes them, plus a digest of
tiny_models.py and the mlx / mlx-lm versions, so a change to any of them builds a fresh one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
CACHE = REPO / "bench" / ".cache"

# `python bench/x.py` puts bench/ first on sys.path, not the repo root; tiny_models lives in tests/.
for _path in (str(REPO), str(TESTS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# Nothing here may reach the network; transformers' advisories only add noise to the figures.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@dataclass(frozen=True)
class ModelSpec:
    """The parameters of a random Llama model (float32 activations; 4-bit group-32 weights)."""

    variant: str = "spm_legacy"
    hidden_size: int = 512
    num_layers: int = 4
    intermediate_size: int = 1408
    num_heads: int = 8
    num_kv_heads: int = 8
    max_position_embeddings: int = 4096
    quantize: bool = True
    seed: int = 0

    def key(self) -> str:
        quant = "q4g32" if self.quantize else "f32"
        return (
            f"{self.variant}-h{self.hidden_size}-l{self.num_layers}-i{self.intermediate_size}"
            f"-a{self.num_heads}-kv{self.num_kv_heads}-p{self.max_position_embeddings}-{quant}"
            f"-s{self.seed}-{_builder_digest()}"
        )

    def describe(self) -> str:
        quant = "4-bit (group 32)" if self.quantize else "float32"
        return (
            f"random Llama ({self.variant}), hidden {self.hidden_size}, {self.num_layers} layers, "
            f"MLP {self.intermediate_size}, {self.num_heads} heads / {self.num_kv_heads} KV heads, "
            f"{quant} weights, float32 activations"
        )


def _builder_digest() -> str:
    import mlx.core as mx
    import mlx_lm

    digest = hashlib.sha256((TESTS / "tiny_models.py").read_bytes())
    digest.update(f"mlx {mx.__version__} mlx-lm {mlx_lm.__version__}".encode())
    return digest.hexdigest()[:10]


def model_folder(spec: ModelSpec) -> Path:
    """The cached model folder for `spec`, built (in a scratch folder, then renamed) if absent."""
    import tiny_models

    folder = CACHE / spec.key()
    if (folder / "config.json").is_file():
        return folder
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = CACHE / f".building-{os.getpid()}-{spec.key()}"
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.perf_counter()
    tiny_models.build_model(
        scratch,
        spec.variant,
        max_position_embeddings=spec.max_position_embeddings,
        quantize=spec.quantize,
        seed=spec.seed,
        hidden_size=spec.hidden_size,
        num_layers=spec.num_layers,
        num_heads=spec.num_heads,
        num_kv_heads=spec.num_kv_heads,
        intermediate_size=spec.intermediate_size,
    )
    try:
        scratch.rename(folder)
    except OSError:  # another run built it meanwhile
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"  (built {folder.name} in {time.perf_counter() - started:.1f} s)")
    return folder


# --------------------------------------------------------------------------- the engine


def new_engine(**engine_kwargs):
    """A started engine; shut it down with engine.shutdown() when done."""
    from engine.engine import Engine

    return Engine(**engine_kwargs).start()


def load(engine, folder: Path, context_length: int):
    """Load a model on `engine`; return its ModelLoaded event."""
    from engine.events import ModelLoaded

    loaded: list[ModelLoaded] = []

    def on_event(event) -> None:
        if isinstance(event, ModelLoaded):
            loaded.append(event)

    result = engine.load(folder, context_length=context_length, on_event=on_event).wait()
    if result.finish_reason != "done" or not loaded:
        raise RuntimeError(f"loading {folder.name} failed: {result.error}")
    return loaded[0]


@contextmanager
def engine_session(folder: Path, context_length: int, **engine_kwargs) -> Iterator[tuple]:
    """A started engine with the model loaded: yields (engine, ModelLoaded event); shuts it down after."""
    engine = new_engine(**engine_kwargs)
    try:
        yield engine, load(engine, folder, context_length)
    finally:
        engine.shutdown()


# ----------------------------------------------------------------------- figures


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


def machine() -> str:
    import mlx.core as mx
    import mlx_lm

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    device = mx.default_device()
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), "
        f"MLX {mx.__version__} on {device}, mlx-lm {mlx_lm.__version__}, Python {platform.python_version()}"
    )


def header(title: str, what: str) -> None:
    print()
    print(f"== {title}")
    print(f"   {what}")


def row(label: str, value: str) -> None:
    print(f"   {label:<46} {value}")


def verdict(met: bool | None) -> str:
    if met is None:
        return "recorded"
    return "met" if met else "NOT met"
