"""`hearth import` and `hearth convert` end to end: each lands a model that `hearth chat` runs, and
prints its name as the one line on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_models
from gguf_writer import write_gguf
from hub_server import HubServer
from test_convert_hf import build_hf_folder
from test_convert_old_mlx import _params, build_old_layout

HEARTH_SCRIPT = Path(sys.executable).with_name("hearth")
HEARTH = [str(HEARTH_SCRIPT)] if HEARTH_SCRIPT.is_file() else [sys.executable, "-m", "app.cli"]
ASK = json.dumps([{"role": "user", "content": "Hello"}])


@pytest.fixture(scope="module")
def float_model(tmp_path_factory) -> Path:
    """A float tiny Llama 2 style model to write GGUF files from."""
    return tiny_models.build_model(tmp_path_factory.mktemp("float") / "tiny", "spm_legacy", quantize=False)


@pytest.fixture
def env(tmp_path, hearth_home):
    return dict(os.environ, HEARTH_HOME=str(hearth_home), HOME=str(tmp_path / "home"))


def hearth(env, *args, stdin=None, ok=True):
    result = subprocess.run([*HEARTH, *args], input=stdin, capture_output=True, text=True, env=env, timeout=180)
    if ok:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    return result


def _chats(env, name: str) -> dict:
    out = hearth(env, "generate", name, "--messages", "-", "--json", "--temp", "0", "--max-tokens", "4",
                 stdin=ASK).stdout
    return json.loads(out)


def test_import_a_gguf_file_then_chat_with_it(env, tmp_path, tiny, float_model):
    gguf_file = write_gguf(float_model, tmp_path / "tiny-llama-2-chat.Q8_0.gguf", tensor_type="Q8_0",
                           name="llama-2-7b-chat")
    result = hearth(env, "import", str(gguf_file))
    name = result.stdout.strip()
    assert result.stdout.count("\n") == 1 and name == "tiny-llama-2-chat.Q8_0"
    assert _chats(env, name)["generation_tokens"] == 4
    prompt = json.loads(hearth(env, "prompt", name, "--messages", "-", "--json", stdin=ASK).stdout)
    sp = tiny_models.load_sentencepiece(tiny["spm_legacy"] / "tokenizer.model")
    assert prompt["format"] == "llama2"
    assert prompt["token_ids"] == tiny_models.reference_llama2_ids(sp, json.loads(ASK))
    assert name in hearth(env, "models").stdout


def test_import_an_old_mlx_folder(env, tmp_path):
    folder = build_old_layout(tmp_path / "Llama-2-7b-chat-4-bit", hidden=128, intermediate=256,
                              params=_params(128, hidden_dim=256, vocab_size=512,
                                             quantization={"group_size": 64, "bits": 4}), quantize=True)
    name = hearth(env, "import", str(folder)).stdout.strip()
    assert name == "Llama-2-7b-chat-4-bit"
    assert _chats(env, name)["finish_reason"] in ("length", "stop")


def test_import_from_a_repo_file_and_convert_from_a_repo(env, tmp_path, float_model):
    gguf_folder = tmp_path / "gguf-repo"
    gguf_folder.mkdir()
    write_gguf(float_model, gguf_folder / "llama-2-7b-chat.Q4_0.gguf", tensor_type="Q4_0",
               name="llama-2-7b-chat")
    write_gguf(float_model, gguf_folder / "llama-2-7b-chat.Q8_0.gguf", tensor_type="Q8_0",
               name="llama-2-7b-chat")
    fp16 = build_hf_folder(tmp_path / "fp16-repo")
    with HubServer() as server:
        server.add_repo("TheBloke/Tiny-Llama-2-Chat-GGUF", gguf_folder)
        server.add_repo("meta-llama/Tiny-Llama-2-chat-hf", fp16)
        client = {**env, **server.client_env(tmp_path / "hf")}
        several = hearth(client, "import", "TheBloke/Tiny-Llama-2-Chat-GGUF", ok=False)
        assert several.returncode == 1 and "--file" in several.stderr
        name = hearth(client, "import", "TheBloke/Tiny-Llama-2-Chat-GGUF", "--file",
                      "llama-2-7b-chat.Q4_0.gguf").stdout.strip()
        assert name == "llama-2-7b-chat.Q4_0"
        quantized = hearth(client, "convert", "meta-llama/Tiny-Llama-2-chat-hf").stdout.strip()
        assert quantized == "Tiny-Llama-2-chat-hf-4bit"
        listed = hearth(client, "models").stdout
    assert name in listed and quantized in listed
    assert "TheBloke/Tiny-Llama-2-Chat-GGUF" not in listed  # the downloaded source was removed
    config = json.loads((Path(env["HEARTH_HOME"]) / "data" / "models" / quantized / "config.json").read_text())
    assert config["quantization"]["bits"] == 4 and config["quantization"]["group_size"] == 64
    assert _chats(client, quantized)["generation_tokens"] == 4


def test_a_truncated_gguf_is_one_clear_line_and_leaves_nothing(env, tmp_path, float_model):
    gguf_file = write_gguf(float_model, tmp_path / "cut.gguf", tensor_type="F16")
    data = gguf_file.read_bytes()
    gguf_file.write_bytes(data[: len(data) // 2])
    result = hearth(env, "import", str(gguf_file), ok=False)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith("hearth: error:")
    assert "Traceback" not in result.stderr
    models = Path(env["HEARTH_HOME"]) / "data" / "models"
    assert not models.exists() or list(models.iterdir()) == []
