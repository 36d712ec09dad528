"""Hugging Face fp16/bf16 Llama folders quantized to 4-bit (group 64) with mlx-lm's own code.

The source is built here like meta-llama/Llama-2-7b-chat-hf: a tiny random Llama in float16 with
Hugging Face names, split into two model-0000N-of-00002.safetensors shards with an index,
tokenizer.model and a tokenizer_config.json with "legacy": false and no chat template.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import tiny_models

from engine.convert.common import ConversionCancelled, ConversionError, models_dir
from engine.convert.hf_quantize import quantize_hf
from engine.engine import Engine
from engine.model_folder import resolve_model, validate_folder
from engine.prompts import PromptFormat, build_prompt, choose_format
from engine.tokenizer import load_tokenizer

TOKENS = [1, 37, 250, 9, 411, 3, 77, 500, 12, 300]
DIALOG = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": " Hello! How can I help?  "},
    {"role": "user", "content": "Tell me about café culture"},
]
# As in meta-llama/Llama-2-7b-chat-hf: no chat template, "legacy": false.
META_TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "clean_up_tokenization_spaces": False,
    "eos_token": "</s>",
    "legacy": False,
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": None,
    "sp_model_kwargs": {},
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": "<unk>",
}


def build_hf_folder(dest: Path, *, dtype: str = "float16", seed: int = 0) -> Path:
    """A Hugging Face-style fp16 (or bf16) Llama folder from a tiny random mlx-lm model."""
    import mlx.core as mx

    work = dest.parent / f"{dest.name}-float32"
    tiny_models.build_model(work, "spm_notemplate", quantize=False, seed=seed,
                            hidden_size=128, intermediate_size=256)
    weights = {k: v.astype(getattr(mx, dtype)) for k, v in mx.load(str(work / "model.safetensors")).items()}
    names = sorted(weights)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}
    dest.mkdir(parents=True)
    for shard, keys in shards.items():
        mx.save_safetensors(str(dest / shard), {k: weights[k] for k in keys}, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (dest / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    config = json.loads((work / "config.json").read_text(encoding="utf-8"))
    config.update(torch_dtype=dtype, _name_or_path="meta-llama/Llama-2-tiny-chat-hf")
    (dest / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (dest / "tokenizer_config.json").write_text(json.dumps(META_TOKENIZER_CONFIG), encoding="utf-8")
    for name in ("tokenizer.model", "generation_config.json"):
        shutil.copyfile(work / name, dest / name)
    shutil.rmtree(work)
    return dest


@pytest.fixture(scope="session")
def hf_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf-fp16")


@pytest.fixture(scope="session")
def hf_fp16(hf_root) -> Path:
    return build_hf_folder(hf_root / "Llama-2-tiny-chat-hf")


@pytest.fixture
def hf_copy(tmp_path, hf_fp16):
    def copy(name: str = "Llama-2-tiny-chat-hf") -> Path:
        return shutil.copytree(hf_fp16, tmp_path / "sources" / name)

    return copy


def engine_logits(folder: Path, tokens: list[int]) -> np.ndarray:
    def forward(loaded):
        import mlx.core as mx

        return np.array(loaded.model(mx.array([tokens]))[0].astype(mx.float32)).astype(np.float64)

    with Engine() as engine:
        loaded = engine.load(folder, prompt_format="plain").wait()
        assert loaded.finish_reason == "done", loaded.error
        return engine.run(forward).result(timeout=60)


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _nothing_left() -> list[str]:
    return sorted(p.name for p in models_dir().iterdir())


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------- tests


def test_quantized_folder_is_valid_4bit_group_64(hf_fp16):
    folder = quantize_hf(hf_fp16)
    assert folder == models_dir() / "Llama-2-tiny-chat-hf"
    info = validate_folder(folder)
    assert info.quantization == {"bits": 4, "group_size": 64}
    assert info.model_type == "llama" and info.kv_bytes_per_value == 2
    assert info.weight_bytes < 0.4 * validate_folder(hf_fp16).weight_bytes
    config = _json(folder / "config.json")
    assert config["quantization"]["bits"] == 4 and config["quantization"]["group_size"] == 64
    assert config["tie_word_embeddings"] is False and config["torch_dtype"] == "float16"
    for name in ("tokenizer.model", "tokenizer_config.json", "generation_config.json"):
        assert (folder / name).is_file()


def _weights(folder: Path) -> dict:
    import mlx.core as mx

    weights = {}
    for shard in folder.glob("model*.safetensors"):
        weights.update(mx.load(str(shard)))
    return weights


def _dequantized(quantized: dict) -> dict:
    import mlx.core as mx

    weights = {}
    for name, value in quantized.items():
        module, suffix = name.rsplit(".", 1)
        if f"{module}.scales" not in quantized:
            weights[name] = value
        elif suffix == "weight":
            scales, biases = quantized[f"{module}.scales"], quantized[f"{module}.biases"]
            weights[name] = mx.dequantize(value, scales, biases, group_size=64, bits=4).astype(scales.dtype)
    return weights


def test_every_weight_is_within_one_quantization_step(hf_fp16):
    """Affine 4-bit of exactly the source weights: every dequantized value lies within one step
    (|scale|) of its fp16 original. Not half a step: MLX anchors each group's grid so that one end
    of the range is exact, and the other end can then land up to a step away."""
    import mlx.core as mx

    folder = quantize_hf(hf_fp16)
    source, quantized = _weights(hf_fp16), _weights(folder)
    restored = _dequantized(quantized)
    modules = [k[: -len(".scales")] for k in quantized if k.endswith(".scales")]
    assert len(modules) == 2 + 2 * 7  # embedding, lm_head and every Linear
    for module in modules:
        step = np.repeat(np.abs(np.array(quantized[f"{module}.scales"].astype(mx.float32))), 64, axis=1)
        error = np.abs(np.array(restored[f"{module}.weight"].astype(mx.float32))
                       - np.array(source[f"{module}.weight"].astype(mx.float32)))
        assert (error <= step * 1.01 + 1e-3).all(), module


def _float32(weights: dict) -> dict:
    import mlx.core as mx

    return {k: v.astype(mx.float32) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}


def _with_weights(source: Path, dest: Path, weights: dict) -> Path:
    import mlx.core as mx

    folder = shutil.copytree(source, dest)
    for shard in folder.glob("model*.safetensors*"):
        shard.unlink()
    mx.save_safetensors(str(folder / "model.safetensors"), weights)
    return folder


def test_quantized_model_computes_with_exactly_its_quantized_weights(hf_fp16, tmp_path):
    """The 4-bit folder runs as a float model holding the dequantized values would. Both run in
    float32 here (scales and biases widened exactly), so only summation order differs."""
    folder = quantize_hf(hf_fp16)
    quantized = _float32(_weights(folder))
    q4 = _with_weights(folder, tmp_path / "q4-float32", quantized)
    reference = _with_weights(hf_fp16, tmp_path / "dequantized", _dequantized(quantized))
    np.testing.assert_allclose(engine_logits(q4, TOKENS), engine_logits(reference, TOKENS), atol=1e-4)


def test_logits_stay_close_to_the_fp16_model(hf_fp16, hf_root):
    """Rounding uniform weights to 15 steps across their range leaves an error of
    step / sqrt(12) against a spread of range / sqrt(12): 1/15, about 6.7% per matrix (measured:
    0.066). The 16 quantized matrices perturb the logits independently, so about
    sqrt(16) x 6.7% = 27% is the expected scale (measured: 21%). Allow 30%; an unrelated model of
    the same shape is about 140% away."""
    folder = quantize_hf(hf_fp16)
    fp16, q4 = engine_logits(hf_fp16, TOKENS), engine_logits(folder, TOKENS)
    assert _relative_error(q4, fp16) < 0.3
    other = build_hf_folder(hf_root / "other-seed", seed=1)
    assert _relative_error(engine_logits(other, TOKENS), fp16) > 1.0


def test_llama2_chat_gets_the_template_and_metas_prompt_ids(hf_fp16):
    folder = quantize_hf(hf_fp16)
    tokenizer_config = _json(folder / "tokenizer_config.json")
    assert tokenizer_config["chat_template"] and tokenizer_config["legacy"] is False
    info = resolve_model(folder)
    assert choose_format(info) is PromptFormat.LLAMA2
    prompt = build_prompt(load_tokenizer(info), DIALOG, PromptFormat.LLAMA2, 4096, 256)
    sp = tiny_models.load_sentencepiece(folder / "tokenizer.model")
    assert prompt.ids == tiny_models.reference_llama2_ids(sp, DIALOG)


def test_chat_model_is_recognised_by_its_config_when_the_folder_name_says_nothing(hf_copy):
    folder = quantize_hf(hf_copy("a048112d6093e741"), "my-model")
    assert _json(folder / "tokenizer_config.json")["chat_template"]


def test_base_model_gets_no_template(hf_copy):
    source = hf_copy("Llama-2-tiny-hf")
    config = _json(source / "config.json")
    config["_name_or_path"] = "meta-llama/Llama-2-tiny-hf"
    (source / "config.json").write_text(json.dumps(config), encoding="utf-8")
    folder = quantize_hf(source)
    assert "chat_template" not in _json(folder / "tokenizer_config.json")


def test_an_existing_template_is_kept(hf_copy):
    source = hf_copy()
    (source / "tokenizer_config.json").write_text(
        json.dumps({**META_TOKENIZER_CONFIG, "chat_template": "{{ 'custom' }}"}), encoding="utf-8")
    folder = quantize_hf(source, "kept")
    assert _json(folder / "tokenizer_config.json")["chat_template"] == "{{ 'custom' }}"


def test_bfloat16_source_quantizes_with_bfloat16_scales(hf_root):
    import mlx.core as mx

    source = build_hf_folder(hf_root / "Llama-2-tiny-chat-bf16", dtype="bfloat16")
    folder = quantize_hf(source)
    assert validate_folder(folder).quantization == {"bits": 4, "group_size": 64}
    assert mx.load(str(folder / "model.safetensors"))["lm_head.scales"].dtype == mx.bfloat16


def test_progress_is_reported_per_stage(hf_fp16):
    seen = []
    quantize_hf(hf_fp16, on_progress=seen.append)
    stages = [(p.stage, p.done, p.total) for p in seen]
    assert stages == [("checking", 1, 1), ("loading", 1, 1), ("quantizing", 1, 2), ("quantizing", 2, 2),
                      ("writing", 1, 1), ("tokenizer", 1, 1)]


def test_cancel_leaves_nothing(hf_fp16):
    cancel = threading.Event()

    def on_progress(progress):
        if progress.stage == "quantizing":
            cancel.set()

    with pytest.raises(ConversionCancelled):
        quantize_hf(hf_fp16, on_progress=on_progress, cancel=cancel)
    assert _nothing_left() == []


def _set_model_type(source: Path) -> None:
    config = _json(source / "config.json")
    config["model_type"] = "gpt2"
    (source / "config.json").write_text(json.dumps(config), encoding="utf-8")


def _pickle_only(source: Path) -> None:
    for shard in source.glob("model*"):
        shard.unlink()
    (source / "pytorch_model.bin").write_bytes(b"\x80\x04not read")


def _no_tokenizer(source: Path) -> None:
    (source / "tokenizer.model").unlink()


@pytest.mark.parametrize("damage, message", [
    (_set_model_type, "'gpt2' model"),
    (_pickle_only, "pickle"),
    (_no_tokenizer, "no tokenizer"),
])
def test_bad_sources_are_refused_without_debris(hf_copy, damage, message):
    source = hf_copy()
    damage(source)
    with pytest.raises(ConversionError, match=message):
        quantize_hf(source)
    assert _nothing_left() == []


def test_already_quantized_model_is_refused(tiny):
    with pytest.raises(ConversionError, match="already quantized"):
        quantize_hf(tiny["spm_legacy"])
    assert _nothing_left() == []


def test_quantized_tensors_without_a_config_entry_are_refused(hf_copy):
    import mlx.core as mx

    source = hf_copy()
    shard = source / "model-00001-of-00002.safetensors"
    weights = mx.load(str(shard))
    name = next(k for k in weights if k.endswith("q_proj.weight"))
    weights[name] = mx.zeros(weights[name].shape, dtype=mx.int32)  # a GPTQ-style packed tensor
    mx.save_safetensors(str(shard), weights)
    with pytest.raises(ConversionError, match="already quantized .*I32"):
        quantize_hf(source)
    assert _nothing_left() == []


def test_not_enough_memory_is_refused(hf_fp16, monkeypatch):
    monkeypatch.setattr("engine.platform.usable_memory_bytes", lambda: 1000)
    with pytest.raises(ConversionError, match="memory"):
        quantize_hf(hf_fp16)
    assert _nothing_left() == []


def test_not_enough_disk_is_refused(hf_fp16, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6, 1000))
    with pytest.raises(ConversionError, match="disk space"):
        quantize_hf(hf_fp16)
    assert _nothing_left() == []


def test_impossible_settings_are_refused(hf_fp16):
    with pytest.raises(ConversionError, match="groups of 48"):
        quantize_hf(hf_fp16, group_size=48)
    with pytest.raises(ConversionError, match="7 bits"):
        quantize_hf(hf_fp16, bits=7)
