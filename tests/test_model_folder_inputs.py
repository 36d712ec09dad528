"""Hostile or damaged files in a model folder: each is one clear line, never a hang, a memory blow-up
or an internal error (issue: faults never hide the history, bad inputs get one line)."""

from __future__ import annotations

import json
import os

import pytest

from engine.errors import ConfigError, MissingTokenizer, ModelFolderError, WeightsMismatch
from engine.model_folder import resolve_model

# These cases hung (FIFO), read until memory ran out (/dev/zero) or crashed before the checks; a
# per-test timeout turns a regression into a failure instead of a stuck suite.
pytestmark = pytest.mark.timeout(60)


def _edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))
    return folder


def test_a_fifo_config_is_refused_without_blocking(model_copy):
    folder = model_copy()
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    with pytest.raises(ConfigError, match="config.json in .* is a named pipe, not a file"):
        resolve_model(folder)


def test_a_config_linked_to_dev_zero_is_refused_without_reading_it(model_copy):
    folder = model_copy()
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="is a device, not a file"):
        resolve_model(folder)


def test_an_enormous_config_is_refused(model_copy):
    folder = model_copy()
    with open(folder / "config.json", "wb") as f:
        f.truncate(17 << 20)  # sparse: 17 MiB of zeros
    with pytest.raises(ConfigError, match="larger than 16 MiB"):
        resolve_model(folder)


def test_a_fifo_tokenizer_config_is_refused_without_blocking(model_copy):
    folder = model_copy()
    (folder / "tokenizer_config.json").unlink()
    os.mkfifo(folder / "tokenizer_config.json")
    with pytest.raises(ConfigError, match="tokenizer_config.json .* is a named pipe"):
        resolve_model(folder)


def test_a_fifo_weights_file_is_refused_without_blocking(model_copy):
    folder = model_copy()
    (folder / "model.safetensors").unlink()
    os.mkfifo(folder / "model.safetensors")
    with pytest.raises(WeightsMismatch, match="model.safetensors is not an ordinary file"):
        resolve_model(folder)


@pytest.mark.parametrize("field,value,says", [
    ("bits", "four", "quantization.bits: 'four'"),
    ("group_size", 0, "quantization.group_size: 0"),
    ("bits", True, "quantization.bits: True"),
])
def test_quantization_values_are_type_checked_with_the_field_named(model_copy, field, value, says):
    folder = model_copy()
    config = json.loads((folder / "config.json").read_text())
    config["quantization"][field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError) as info:
        resolve_model(folder)
    assert says in str(info.value) and "config.json" in str(info.value)


def test_a_per_module_quantization_entry_is_type_checked_too(model_copy):
    folder = model_copy()
    config = json.loads((folder / "config.json").read_text())
    config["quantization"]["model.embed_tokens"] = {"bits": "8", "group_size": 32}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"quantization\.model\.embed_tokens\.bits: '8'"):
        resolve_model(folder)


def test_a_garbage_sentencepiece_model_is_named_as_such(model_copy):
    folder = model_copy()
    (folder / "tokenizer.model").write_bytes(b"this is not a tokenizer\n" * 100)
    with pytest.raises(MissingTokenizer, match="tokenizer.model in .* is not a sentencepiece model") as info:
        resolve_model(folder)
    assert "tiktoken" not in str(info.value)


def test_every_refusal_here_is_a_model_folder_error_not_an_internal_one(model_copy):
    folder = _edit_config(model_copy(), num_hidden_layers="two")
    with pytest.raises(ModelFolderError, match="num_hidden_layers"):
        resolve_model(folder)
