"""GGUF models that Ollama and LM Studio downloaded are found (offline) and import like any GGUF."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_models
from gguf_writer import write_gguf

from engine.convert import discover

HEARTH_SCRIPT = Path(sys.executable).with_name("hearth")
HEARTH = [str(HEARTH_SCRIPT)] if HEARTH_SCRIPT.is_file() else [sys.executable, "-m", "app.cli"]


@pytest.fixture(scope="module")
def gguf_bytes(tmp_path_factory) -> bytes:
    float_model = tiny_models.build_model(tmp_path_factory.mktemp("f") / "tiny", "spm_legacy", quantize=False)
    path = write_gguf(float_model, tmp_path_factory.mktemp("g") / "m.gguf", tensor_type="Q8_0",
                      name="llama-2-7b-chat")
    return path.read_bytes()


def _ollama(home: Path, data: bytes) -> Path:
    """Ollama's layout: a manifest per model:tag naming content-addressed blobs."""
    root = home / ".ollama" / "models"
    digest = hashlib.sha256(data).hexdigest()
    blob = root / "blobs" / f"sha256-{digest}"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    (root / "blobs" / "sha256-params").write_text("{}")
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "llama2" / "7b-chat"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": len(data)},
        {"mediaType": "application/vnd.ollama.image.params", "digest": "sha256:params", "size": 2},
    ]}))
    return blob


def _lmstudio(home: Path, data: bytes) -> Path:
    path = home / ".lmstudio" / "models" / "TheBloke" / "Llama-2-7B-Chat-GGUF" / "llama-2-7b-chat.Q8_0.gguf"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    (path.parent / "mmproj-model-f16.gguf").write_bytes(data)  # a vision projector: not offered
    (path.parent / "notes.gguf").write_bytes(b"not a gguf")
    return path


def test_ollama_and_lmstudio_models_are_found(tmp_path, monkeypatch, gguf_bytes):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    blob = _ollama(tmp_path, gguf_bytes)
    lms = _lmstudio(tmp_path, gguf_bytes)
    found = discover.find_models()
    assert [(f.app, f.name, f.path) for f in found] == [
        ("Ollama", "llama2-7b-chat", blob), ("LM Studio", "llama-2-7b-chat.Q8_0", lms)]
    assert all(f.size_bytes == len(gguf_bytes) for f in found)


def test_nothing_found_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    assert discover.find_models() == []


def test_an_ollama_blob_imports_and_chats(tmp_path, gguf_bytes, hearth_home):
    home = tmp_path / "home"
    blob = _ollama(home, gguf_bytes)
    env = dict(os.environ, HOME=str(home), HEARTH_HOME=str(hearth_home))
    env.pop("OLLAMA_MODELS", None)
    listed = subprocess.run([*HEARTH, "import", "--found"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0 and f"hearth import {blob} --name llama2-7b-chat" in listed.stdout
    imported = subprocess.run([*HEARTH, "import", str(blob), "--name", "llama2-7b-chat"], capture_output=True,
                              text=True, env=env, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "llama2-7b-chat"
    answer = subprocess.run([*HEARTH, "generate", "llama2-7b-chat", "--messages", "-", "--json", "--temp", "0",
                             "--max-tokens", "3"], input=json.dumps([{"role": "user", "content": "Hi"}]),
                            capture_output=True, text=True, env=env, timeout=120)
    assert answer.returncode == 0 and json.loads(answer.stdout)["generation_tokens"] == 3
    assert blob.read_bytes() == gguf_bytes  # Ollama's file is left as it was
