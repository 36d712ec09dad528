"""The one place that knows whether MLX runs on Metal (Apple Silicon) or on the CPU backend.

Metal-specific behaviour lives behind `on_metal()`; docs/platform.md lists every use.
"""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def on_metal() -> bool:
    """True on macOS arm64, where mlx uses the GPU through Metal."""
    return sys.platform == "darwin" and platform.machine() == "arm64"


def physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def usable_memory_bytes() -> int:
    """Memory a model can use: Metal's recommended working set on a Mac, physical memory elsewhere."""
    if on_metal():
        import mlx.core as mx

        return int(mx.device_info()["max_recommended_working_set_size"])
    return physical_memory_bytes()


def default_prefill_step() -> int:
    """Prompt tokens processed per step. Metal's fused attention makes big steps cheap in memory and
    fast; the CPU backend materialises the full attention scores (heads x step x context floats) and
    gains nothing from bigger steps, so it uses small ones, which also make a cancel quicker."""
    return 2048 if on_metal() else 128


@lru_cache(maxsize=1)
def computes_in_float32() -> bool:
    """Whether quantized models compute in float32 rather than in their 16-bit floats (scales,
    biases, norms): on MLX's CPU backend, whose float16 and bfloat16 arithmetic is about 30 times
    slower than float32 (SmolLM2-135M, 4-bit: 4,077 against 130 ms a token on a 2-core x86 VM).
    Not on Metal or CUDA, where 16-bit floats are the fast path."""
    import mlx.core as mx

    return mx.default_device() == mx.cpu


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_thread_streams() -> None:
    """Destroy the MLX streams the calling thread made; call it last on a worker thread that used MLX.

    Streams belong to their thread; when it ends with them alive, the process aborts at exit
    ("terminate called without an active exception", status 134)."""
    if "mlx.core" not in sys.modules:
        return
    import mlx.core as mx

    clear_streams = getattr(mx, "clear_streams", None)
    if clear_streams is not None:
        clear_streams()
