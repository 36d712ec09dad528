"""Folders written by mlx-lm's own `convert` load in Hearth and give bare mlx-lm's greedy tokens.

Hearth's checks read only config.json and safetensors headers; these tests keep them from being
stricter than mlx-lm's loader, which takes each module's quantization from config.json's per-module
entries first and then from the weights' shapes (mlx_lm.utils.infer_quant_config).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import tiny_models

from engine.engine import Engine
from engine.generation import GenerationRequest
from engine.model_folder import resolve_model
from engine.prompts import build_prompt
from engine.sampling import SamplingSettings

MAX_TOKENS = 16
MESSAGES = [{"role": "user", "content": "Tell me about the fire in the hearth, café 中文."}]


@pytest.fixture(scope="session")
def hf_source(tmp_path_factory) -> Path:
    """An unquantized float32 Llama folder: what mlx-lm's convert reads from the Hub."""
    root = tmp_path_factory.mktemp("parity-source")
    return tiny_models.build_model(root / "untied", "spm_legacy", quantize=False, hidden_size=128,
                                   num_layers=8, num_heads=4, num_kv_heads=2, intermediate_size=256)


@pytest.fixture(scope="session")
def hf_source_tied(tmp_path_factory, hf_source) -> Path:
    """The same model with tied embeddings (no lm_head), as SmolLM2 and Llama 3.2 are."""
    import mlx.core as mx

    dest = tmp_path_factory.mktemp("parity-tied") / "tied"
    dest.mkdir()
    for item in hf_source.iterdir():
        if item.name != "model.safetensors":
            (dest / item.name).write_bytes(item.read_bytes())
    weights = mx.load(str(hf_source / "model.safetensors"))
    weights.pop("lm_head.weight")
    mx.save_safetensors(str(dest / "model.safetensors"), weights, metadata={"format": "mlx"})
    _edit_config(dest, lambda c: c.update(tie_word_embeddings=True))
    return dest


def _edit_config(folder: Path, change) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config, indent=2))


def _mlx_convert(source: Path, dest: Path, **options) -> Path:
    from mlx_lm.convert import convert

    with contextlib.redirect_stdout(io.StringIO()):
        convert(hf_path=str(source), mlx_path=str(dest), **options)
    return dest


def _eight_bit_embedding(path, module):
    return {"group_size": 32, "bits": 8} if path.endswith("embed_tokens") else True


def _drop_embedding_override(folder: Path) -> None:
    """As in real uploads (mlx-community's SmolLM2 4-bit): config.json declares only the default."""
    def drop(config):
        for key in ("quantization", "quantization_config"):
            config.get(key, {}).pop("model.embed_tokens", None)

    _edit_config(folder, drop)


def _shard_every_tensor(monkeypatch):
    """mlx-lm shards at 5 GB; a budget of 0 bytes gives each tensor a shard of its own."""
    import mlx_lm.utils

    original = mlx_lm.utils.make_shards
    monkeypatch.setattr(mlx_lm.utils, "make_shards", lambda weights, *a, **k: original(weights, 0))


RECIPES = {
    "4bit": dict(quantize=True, q_bits=4, q_group_size=64),
    "8bit": dict(quantize=True, q_bits=8, q_group_size=64),
    "4bit_g32": dict(quantize=True, q_bits=4, q_group_size=32),
    "mixed_3_6": dict(quantize=True, q_group_size=64, quant_predicate="mixed_3_6"),
    "mixed_2_6": dict(quantize=True, q_group_size=64, quant_predicate="mixed_2_6"),
    "mixed_4_6": dict(quantize=True, q_group_size=64, quant_predicate="mixed_4_6"),
    "undeclared_8bit_embedding": dict(quantize=True, q_bits=4, q_group_size=32,
                                      quant_predicate=_eight_bit_embedding),
    "fp16": dict(dtype="float16"),
}


def _hearth_greedy(folder: Path) -> tuple[list[int], list[int]]:
    with Engine(prefill_step_size=64) as engine:
        loaded = engine.load(folder).wait()
        assert loaded.finish_reason == "done", loaded.error
        model = engine.loaded
        prompt = build_prompt(model.tokenizer, MESSAGES, model.prompt_format, model.context_length,
                              MAX_TOKENS)
        settings = SamplingSettings(temperature=0.0, max_tokens=MAX_TOKENS)
        done = engine.generate(GenerationRequest(MESSAGES, settings)).wait()
        assert done.finish_reason in ("stop", "length"), done.error
        return prompt.ids, done.token_ids


def _bare_mlx_lm_greedy(folder: Path, prompt_ids: list[int], eos_ids) -> list[int]:
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    model, _tokenizer = load(str(folder))
    tokens = []
    for token, _logprobs in generate_step(mx.array(prompt_ids), model, max_tokens=MAX_TOKENS,
                                          sampler=lambda logits: mx.argmax(logits, axis=-1)):
        tokens.append(int(token))
        if int(token) in eos_ids:
            break
    return tokens


def _check_parity(folder: Path) -> None:
    from mlx_lm import load
    from mlx_lm.utils import get_total_parameters

    info = resolve_model(folder)  # refused before this fix for the undeclared 8-bit embedding
    prompt_ids, hearth_tokens = _hearth_greedy(folder)
    eos = {json.loads((folder / "config.json").read_text())["eos_token_id"]}
    assert hearth_tokens == _bare_mlx_lm_greedy(folder, prompt_ids, eos)
    model, _ = load(str(folder))
    assert info.parameters == get_total_parameters(model)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_a_folder_mlx_lm_convert_wrote_loads_and_answers_like_mlx_lm(recipe, hf_source, tmp_path):
    folder = _mlx_convert(hf_source, tmp_path / recipe, **RECIPES[recipe])
    if recipe == "undeclared_8bit_embedding":
        _drop_embedding_override(folder)
        assert "model.embed_tokens" not in json.loads((folder / "config.json").read_text())["quantization"]
    _check_parity(folder)


@pytest.mark.parametrize("recipe", ["4bit", "undeclared_8bit_embedding", "mixed_3_6"])
def test_tied_embeddings_load_and_answer_like_mlx_lm(recipe, hf_source_tied, tmp_path):
    folder = _mlx_convert(hf_source_tied, tmp_path / recipe, **RECIPES[recipe])
    if recipe == "undeclared_8bit_embedding":
        _drop_embedding_override(folder)
    assert not any("lm_head" in k for k in json.loads(
        (folder / "model.safetensors.index.json").read_text())["weight_map"])
    _check_parity(folder)


def test_sharded_weights_load_and_answer_like_mlx_lm(hf_source, tmp_path, monkeypatch):
    _shard_every_tensor(monkeypatch)
    folder = _mlx_convert(hf_source, tmp_path / "sharded", **RECIPES["mixed_3_6"])
    assert len(list(folder.glob("model-*-of-*.safetensors"))) > 10
    _check_parity(folder)


def test_an_embedding_that_fits_no_bit_width_is_still_refused(hf_source, tmp_path):
    """Parity, not leniency: what mlx-lm cannot load is refused up front with the numbers."""
    from engine.errors import WeightsMismatch

    folder = _mlx_convert(hf_source, tmp_path / "wrong-hidden", **RECIPES["4bit"])
    _edit_config(folder, lambda c: c.update(hidden_size=96, num_attention_heads=3))
    with pytest.raises(WeightsMismatch, match="hidden_size 96"):
        resolve_model(folder)


@pytest.fixture(scope="session")
def smollm2_like_mlx_community(smollm2, tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as mlx-community's 4-bit upload is: written by mlx-lm's convert, 4-bit
    with group 32 and an 8-bit embedding that config.json does not declare. Made from the real model
    (the GGUF Hearth imported, dequantized by mlx-lm), since nothing can be fetched from the Hub here."""
    root = tmp_path_factory.mktemp("smollm2-mlx")
    # float32, not the upload's bfloat16: this CPU backend runs half-precision quantized matmuls far
    # slower (mlx-facts.md), and the dtype does not change which bits the loader infers.
    unquantized = _mlx_convert(smollm2, root / "float", dequantize=True, dtype="float32")
    folder = _mlx_convert(unquantized, root / "SmolLM2-135M-Instruct-4bit", quantize=True, q_bits=4,
                          q_group_size=32, quant_predicate=_eight_bit_embedding, dtype="float32")
    _drop_embedding_override(folder)
    return folder


def test_a_real_mlx_lm_folder_with_an_undeclared_8bit_embedding_answers_like_mlx_lm(
        smollm2_like_mlx_community):
    """The issue's case: refused before ("the embedding is 49152 x 144, but ... call for 49152 x 72")."""
    from mlx_lm import load
    from mlx_lm.utils import get_total_parameters

    folder = smollm2_like_mlx_community
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"] == {"group_size": 32, "bits": 4, "mode": "affine"} or (
        config["quantization"]["bits"] == 4 and "model.embed_tokens" not in config["quantization"])
    info = resolve_model(folder)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    with Engine(prefill_step_size=64) as engine:
        assert engine.load(folder).wait().finish_reason == "done"
        loaded = engine.loaded
        prompt = build_prompt(loaded.tokenizer, question, loaded.prompt_format, loaded.context_length, 16)
        done = engine.generate(GenerationRequest(question, SamplingSettings(temperature=0.0,
                                                                              max_tokens=16))).wait()
    assert "Paris" in done.text, done.text
    model, tokenizer = load(str(folder))
    assert prompt.ids == tokenizer.apply_chat_template(question, add_generation_prompt=True, tokenize=True)
    assert done.token_ids == _bare_mlx_lm_greedy(folder, prompt.ids, set(tokenizer.eos_token_ids))[:16]
    assert info.parameters == get_total_parameters(model)
    assert 130e6 < info.parameters < 140e6  # "135M": per-module bits honoured (163M before)
