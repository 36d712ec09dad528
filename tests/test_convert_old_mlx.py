"""Old mlx-examples Llama folders (weights.npz + Meta's params) converted to mlx-lm folders.

The source folders are built here the way mlx-examples' llms/llama/convert.py wrote them: a tiny
random Llama's weights under Meta's names, q/k rows in Meta's interleaved rotary layout, params-style
config.json, tokenizer.model; one float, one 4-bit (MLX group 64). The oracle is an independent numpy
forward pass of Meta's Llama straight from the npz (old names, interleaved RoPE, its own 4-bit
unpacking); the converted folder, run by mlx-lm through the Engine, must give the same logits.
"""

from __future__ import annotations

import json
import shutil
import threading
import zipfile
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import tiny_models

from engine.convert.common import ConversionCancelled, ConversionError, models_dir
from engine.convert.old_mlx import convert_old_mlx, source_label
from engine.engine import Engine
from engine.model_folder import resolve_model, validate_folder
from engine.prompts import PromptFormat, build_prompt, choose_format
from engine.tokenizer import load_tokenizer

TOKENS = [1, 37, 250, 9, 411, 3, 77, 500]
HEADS, KV_HEADS = 4, 2
HF_TO_META = {
    "model.embed_tokens": "tok_embeddings",
    "model.norm": "norm",
    "lm_head": "output",
    "self_attn.q_proj": "attention.wq",
    "self_attn.k_proj": "attention.wk",
    "self_attn.v_proj": "attention.wv",
    "self_attn.o_proj": "attention.wo",
    "mlp.gate_proj": "feed_forward.w1",
    "mlp.down_proj": "feed_forward.w2",
    "mlp.up_proj": "feed_forward.w3",
    "input_layernorm": "attention_norm",
    "post_attention_layernorm": "ffn_norm",
}
DIALOG = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": " Hello! How can I help?  "},
    {"role": "user", "content": "Tell me about café culture"},
]


# ----------------------------------------------------------------- building old-layout folders


def _meta_name(hf_name: str) -> str:
    module, suffix = hf_name.rsplit(".", 1)
    if module.startswith("model.layers."):
        _, _, index, rest = module.split(".", 3)
        return f"layers.{index}.{HF_TO_META[rest]}.{suffix}"
    return f"{HF_TO_META[module]}.{suffix}"


def _interleaved_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """Inverse of Hugging Face's permute(): half-split rotary rows back to Meta's interleaved."""
    rows, cols = w.shape
    return w.reshape(heads, 2, rows // heads // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def _quantize(w: np.ndarray) -> dict[str, np.ndarray]:
    import mlx.core as mx

    weight, scales, biases = mx.quantize(mx.array(w), group_size=64, bits=4)
    return {"weight": np.array(weight), "scales": np.array(scales), "biases": np.array(biases)}


def build_old_layout(dest: Path, *, hidden: int, intermediate: int, params: dict,
                     quantize: bool = False, interleaved: bool = True, dtype=np.float32) -> Path:
    """An old-layout folder from a tiny random mlx-lm Llama (float32, Hugging Face layout)."""
    from safetensors.numpy import load_file

    hf = tiny_models.build_model(dest.parent / f"{dest.name}-hf", "spm_notemplate", quantize=False,
                                 hidden_size=hidden, intermediate_size=intermediate,
                                 num_heads=HEADS, num_kv_heads=KV_HEADS)
    weights = {}
    for name, w in load_file(str(hf / "model.safetensors")).items():
        if interleaved and ("q_proj" in name or "k_proj" in name):
            w = _interleaved_rows(w, HEADS if "q_proj" in name else KV_HEADS)
        w = w.astype(dtype)
        if quantize and w.ndim == 2 and "embed_tokens" not in name:  # Linear layers only
            module = _meta_name(name).rsplit(".", 1)[0]
            weights.update({f"{module}.{k}": v for k, v in _quantize(w).items()})
        else:
            weights[_meta_name(name)] = w
    dest.mkdir(parents=True)
    np.savez(dest / "weights.npz", **weights)
    (dest / "config.json").write_text(json.dumps({**params, "model_type": "llama"}), encoding="utf-8")
    shutil.copyfile(hf / "tokenizer.model", dest / "tokenizer.model")
    shutil.rmtree(hf)
    return dest


def _params(dim: int, **extra) -> dict:
    return {"dim": dim, "n_layers": 2, "n_heads": HEADS, "n_kv_heads": KV_HEADS, "norm_eps": 1e-5,
            **extra}


@pytest.fixture(scope="session")
def old_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("old-layout")


@pytest.fixture(scope="session")
def old_float(old_root) -> Path:
    # Meta's own params.json form: the feed-forward size comes from multiple_of, vocab_size is -1.
    # int(2 * 4 * 64 / 3) = 170, rounded up to a multiple of 32: 192.
    return build_old_layout(old_root / "Llama-2-tiny-chat-mlx", hidden=64, intermediate=192,
                            params=_params(64, multiple_of=32, vocab_size=-1))


@pytest.fixture(scope="session")
def old_4bit(old_root) -> Path:
    return build_old_layout(old_root / "Llama-2-tiny-chat-4-bit", hidden=128, intermediate=256,
                            quantize=True,
                            params=_params(128, hidden_dim=256, vocab_size=512,
                                           quantization={"group_size": 64, "bits": 4}))


@pytest.fixture
def damaged(tmp_path, old_float):
    """A writable copy of the float source folder."""

    def copy(name: str = "Llama-2-tiny-chat-mlx") -> Path:
        dest = tmp_path / "sources" / name
        shutil.copytree(old_float, dest)
        return dest

    return copy


# ------------------------------------------------------------------------ the numpy oracle


def _load_npz(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "weights.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _unpack_4bit(w: np.ndarray, scales: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """MLX affine 4-bit: 8 values per uint32, lowest bits first; value = scale * q + bias per group."""
    q = (w[..., None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF
    q = q.reshape(w.shape[0], -1).astype(np.float64)
    group = q.shape[1] // scales.shape[1]
    return q * np.repeat(scales, group, axis=1) + np.repeat(biases, group, axis=1)


def _matrix(weights: dict[str, np.ndarray], module: str) -> np.ndarray:
    if f"{module}.scales" in weights:
        return _unpack_4bit(weights[f"{module}.weight"], weights[f"{module}.scales"].astype(np.float64),
                            weights[f"{module}.biases"].astype(np.float64))
    return weights[f"{module}.weight"].astype(np.float64)


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w.astype(np.float64)


def _rope(x: np.ndarray, theta: float, interleaved: bool) -> np.ndarray:
    """x: (tokens, heads, head_dim). Interleaved (Meta) rotates pairs (2i, 2i+1); half-split
    (Hugging Face) rotates pairs (i, i + head_dim/2)."""
    length, _, dim = x.shape
    angles = np.arange(length)[:, None] * theta ** (-np.arange(0, dim, 2) / dim)[None, :]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    a, b = (x[..., 0::2], x[..., 1::2]) if interleaved else (x[..., : dim // 2], x[..., dim // 2 :])
    ra, rb = a * cos - b * sin, a * sin + b * cos
    if interleaved:
        return np.stack([ra, rb], axis=-1).reshape(x.shape)
    return np.concatenate([ra, rb], axis=-1)


def meta_forward(weights: dict[str, np.ndarray], params: dict, tokens: list[int], *,
                 interleaved: bool = True) -> np.ndarray:
    """Meta's Llama (llama/model.py) in float64 on the old names: logits for every position."""
    eps, theta = params["norm_eps"], params.get("rope_theta", 10000.0)
    heads, kv_heads = params["n_heads"], params.get("n_kv_heads", params["n_heads"])
    x = weights["tok_embeddings.weight"].astype(np.float64)[tokens]
    length = len(tokens)
    mask = np.triu(np.full((length, length), -np.inf), k=1)
    for i in range(params["n_layers"]):
        layer = f"layers.{i}"
        h = _rms_norm(x, weights[f"{layer}.attention_norm.weight"], eps)
        q = (h @ _matrix(weights, f"{layer}.attention.wq").T).reshape(length, heads, -1)
        k = (h @ _matrix(weights, f"{layer}.attention.wk").T).reshape(length, kv_heads, -1)
        v = (h @ _matrix(weights, f"{layer}.attention.wv").T).reshape(length, kv_heads, -1)
        q, k = _rope(q, theta, interleaved), _rope(k, theta, interleaved)
        k, v = np.repeat(k, heads // kv_heads, axis=1), np.repeat(v, heads // kv_heads, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(q.shape[-1]) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attended = np.einsum("hqk,khd->qhd", scores, v).reshape(length, -1)
        x = x + attended @ _matrix(weights, f"{layer}.attention.wo").T
        h = _rms_norm(x, weights[f"{layer}.ffn_norm.weight"], eps)
        gate = h @ _matrix(weights, f"{layer}.feed_forward.w1").T
        up = h @ _matrix(weights, f"{layer}.feed_forward.w3").T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ _matrix(weights, f"{layer}.feed_forward.w2").T
    return _rms_norm(x, weights["norm.weight"], eps) @ _matrix(weights, "output").T


def engine_logits(folder: Path, tokens: list[int]) -> np.ndarray:
    """Logits of the converted folder as the app runs it: loaded by the Engine, on its thread."""

    def forward(loaded):
        import mlx.core as mx

        logits = loaded.model(mx.array([tokens]))[0].astype(mx.float32)
        return np.array(logits).astype(np.float64)

    with Engine() as engine:
        loaded = engine.load(folder, prompt_format="plain").wait()
        assert loaded.finish_reason == "done", loaded.error
        return engine.run(forward).result(timeout=60)


def _source_params(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def _nothing_left() -> list[str]:
    return sorted(p.name for p in models_dir().iterdir())


# ----------------------------------------------------------------------------------- tests


def test_float_model_converts_and_gives_metas_logits(old_float):
    folder = convert_old_mlx(old_float)
    assert folder == models_dir() / "Llama-2-tiny-chat-mlx"
    info = validate_folder(folder)
    assert info.quantization is None and info.max_context == 4096
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["tie_word_embeddings"] is False and "rope_traditional" not in config
    assert (config["intermediate_size"], config["vocab_size"], config["num_key_value_heads"]) == (192, 512, 2)

    weights, params = _load_npz(old_float), _source_params(old_float)
    ours = engine_logits(folder, TOKENS)
    np.testing.assert_allclose(ours, meta_forward(weights, params, TOKENS), rtol=1e-4, atol=1e-4)
    # The oracle tells the layouts apart: skipping the q/k permutation would be caught.
    assert not np.allclose(ours, meta_forward(weights, params, TOKENS, interleaved=False), atol=1e-2)


def test_4bit_model_keeps_its_quantized_values_and_gives_metas_logits(old_4bit):
    from safetensors.numpy import load_file

    folder = convert_old_mlx(old_4bit)
    info = validate_folder(folder)
    assert info.quantization == {"bits": 4, "group_size": 64}
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["quantization"] == {"group_size": 64, "bits": 4}

    old, new = _load_npz(old_4bit), load_file(str(folder / "model.safetensors"))
    for suffix in ("weight", "scales", "biases"):
        # v is untouched; q and k are the same rows, reordered, bit for bit.
        np.testing.assert_array_equal(new[f"model.layers.1.self_attn.v_proj.{suffix}"],
                                      old[f"layers.1.attention.wv.{suffix}"])
        wq = old[f"layers.0.attention.wq.{suffix}"]
        assert sorted(map(bytes, new[f"model.layers.0.self_attn.q_proj.{suffix}"])) == sorted(map(bytes, wq))
    assert new["model.embed_tokens.weight"].dtype == np.float32 and new["lm_head.weight"].dtype == np.uint32

    ours = engine_logits(folder, TOKENS)
    np.testing.assert_allclose(ours, meta_forward(old, _source_params(old_4bit), TOKENS), rtol=1e-4, atol=1e-4)


def test_float16_model_stays_float16_and_close_to_metas_logits(old_root):
    source = build_old_layout(old_root / "tiny-fp16", hidden=64, intermediate=128, dtype=np.float16,
                              params=_params(64, hidden_dim=128, vocab_size=-1))
    folder = convert_old_mlx(source, "tiny-fp16-converted")
    assert folder.name == "tiny-fp16-converted"
    assert validate_folder(folder).kv_bytes_per_value == 2
    ours = engine_logits(folder, TOKENS)
    expected = meta_forward(_load_npz(source), _source_params(source), TOKENS)
    # fp16 activations in mlx-lm against a float64 oracle on the same fp16 weights.
    np.testing.assert_allclose(ours, expected, atol=2e-2)


def test_already_half_split_weights_are_not_permuted(old_root):
    """mlx-examples wrote rope_traditional false for models it took from Hugging Face."""
    source = build_old_layout(old_root / "tiny-from-hf", hidden=64, intermediate=128, interleaved=False,
                              params=_params(64, hidden_dim=128, vocab_size=512, rope_traditional=False))
    folder = convert_old_mlx(source)
    expected = meta_forward(_load_npz(source), _source_params(source), TOKENS, interleaved=False)
    np.testing.assert_allclose(engine_logits(folder, TOKENS), expected, rtol=1e-4, atol=1e-4)


def test_chat_folder_gives_metas_llama2_prompt_ids(old_float):
    folder = convert_old_mlx(old_float)
    info = resolve_model(folder)
    assert info.chat_template and choose_format(info) is PromptFormat.LLAMA2
    prompt = build_prompt(load_tokenizer(info), DIALOG, PromptFormat.LLAMA2, 4096, 256)
    sp = tiny_models.load_sentencepiece(folder / "tokenizer.model")
    assert prompt.ids == tiny_models.reference_llama2_ids(sp, DIALOG)


def test_base_model_gets_no_chat_template(damaged):
    folder = convert_old_mlx(damaged("Llama-2-tiny-mlx"))
    assert "chat_template" not in json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert validate_folder(folder).chat_template is None


def test_a_chat_source_keeps_its_template_under_another_name(old_float):
    assert validate_folder(convert_old_mlx(old_float, "my-llama")).chat_template


def test_converted_safetensors_is_standard(old_float):
    from safetensors import safe_open

    folder = convert_old_mlx(old_float)
    with safe_open(str(folder / "model.safetensors"), framework="numpy") as f:
        names = set(f.keys())
        assert f.metadata() == {"format": "mlx"}
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
            "model.layers.1.mlp.down_proj.weight", "model.layers.0.post_attention_layernorm.weight"} <= names
    assert len(names) == 3 + 2 * 9


def test_progress_is_reported_per_tensor(old_float):
    seen = []
    convert_old_mlx(old_float, on_progress=seen.append)
    writing = [p for p in seen if p.stage == "writing"]
    assert [p.done for p in writing] == list(range(1, 22)) and {p.total for p in writing} == {21}
    assert seen[-1].stage == "tokenizer"


def test_hub_cache_snapshot_is_named_after_its_repo(tmp_path):
    snapshot = tmp_path / "models--mlx-community--Llama-2-7b-chat-4-bit" / "snapshots" / "abc123"
    assert source_label(snapshot) == "Llama-2-7b-chat-4-bit"
    assert source_label(tmp_path / "my-model") == "my-model"


@pytest.mark.parametrize("missing", ["weights.npz", "config.json", "tokenizer.model"])
def test_missing_file_is_refused(damaged, missing):
    source = damaged()
    (source / missing).unlink()
    with pytest.raises(ConversionError, match=missing):
        convert_old_mlx(source)
    assert _nothing_left() == []


def test_truncated_npz_is_refused_without_debris(damaged):
    source = damaged()
    data = (source / "weights.npz").read_bytes()
    (source / "weights.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="damaged or truncated"):
        convert_old_mlx(source)
    assert _nothing_left() == []


def test_corrupt_tensor_data_is_refused_without_debris(damaged):
    """A flipped byte inside a tensor: the zip's CRC catches it while writing, mid-conversion."""
    source = damaged()
    path = source / "weights.npz"
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("layers.1.feed_forward.w2.weight.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # past the local and npy headers
    path.write_bytes(bytes(data))
    with pytest.raises(ConversionError, match="damaged or truncated"):
        convert_old_mlx(source)
    assert _nothing_left() == []


def _rewrite_npz(source: Path, change) -> None:
    weights = _load_npz(source)
    change(weights)
    np.savez(source / "weights.npz", **weights)


def test_unknown_tensor_names_are_refused(damaged):
    source = damaged()
    _rewrite_npz(source, lambda w: w.update({"layers.0.attention.wz.weight": w["layers.0.attention.wq.weight"]}))
    with pytest.raises(ConversionError, match=r"layers\.0\.attention\.wz\.weight"):
        convert_old_mlx(source)
    assert _nothing_left() == []


def test_metas_rope_freqs_are_dropped(damaged):
    from safetensors import safe_open

    source = damaged()
    _rewrite_npz(source, lambda w: w.update({"rope.freqs": np.ones(8, np.float32)}))
    with safe_open(str(convert_old_mlx(source) / "model.safetensors"), framework="numpy") as f:
        assert not [name for name in f.keys() if "rope" in name]


@pytest.mark.parametrize("change, message", [
    ({"head_dim": 12}, "wk.weight has 32 rows, not a whole number of heads of size 12"),
    ({"n_heads": 3, "head_dim": 16}, "3 heads, 2 KV heads"),
    ({"n_layers": 3}, "missing"),
    ({"n_layers": 1}, "more than the params describe"),
    ({"vocab_size": 1000}, "vocab_size"),
    ({"dim": 96}, "do not match"),
])
def test_params_not_matching_the_tensors_are_refused(damaged, change, message):
    source = damaged()
    params = {**_source_params(source), **change}
    (source / "config.json").write_text(json.dumps(params), encoding="utf-8")
    with pytest.raises(ConversionError, match=message):
        convert_old_mlx(source)
    assert _nothing_left() == []


def _greedy_tokens(model, prompt: list[int], steps: int = 12) -> list[int]:
    """Greedy continuation by full forward passes (no cache): the plainest decoding there is."""
    import mlx.core as mx

    tokens = list(prompt)
    for _ in range(steps):
        tokens.append(int(mx.argmax(model(mx.array([tokens]))[0, -1]).item()))
    return tokens[len(prompt):]


def _mlx_lm_from_old_arrays(source: Path, *, ffn: int, kv_heads: int, quantization: dict | None):
    """mlx-lm's llama built straight from the npz's arrays (renamed only: Meta's interleaved q/k
    rows are what rope_traditional=True rotates), with the true shapes given by the test."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models.llama import Model, ModelArgs

    meta_to_hf = {meta: hf for hf, meta in HF_TO_META.items()}
    arrays = _load_npz(source)
    params = _source_params(source)
    model = Model(ModelArgs(
        model_type="llama", hidden_size=params["dim"], num_hidden_layers=params["n_layers"],
        intermediate_size=ffn, num_attention_heads=params["n_heads"], num_key_value_heads=kv_heads,
        rms_norm_eps=params["norm_eps"], vocab_size=arrays["tok_embeddings.weight"].shape[0],
        rope_traditional=True, tie_word_embeddings=False,
    ))
    if quantization:
        nn.quantize(model, **quantization, class_predicate=lambda _path, m: isinstance(m, nn.Linear))
    weights = []
    for name, array in arrays.items():
        module, suffix = name.rsplit(".", 1)
        if module.startswith("layers."):
            _, index, rest = module.split(".", 2)
            module = f"model.layers.{index}.{meta_to_hf[rest]}"
        else:
            module = meta_to_hf[module]
        weights.append((f"{module}.{suffix}", mx.array(array)))
    model.load_weights(weights)  # strict: every name and shape must fit the model
    return model


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "4-bit"])
def test_ffn_width_and_kv_heads_come_from_the_weights(old_root, quantized):
    """Meta's params.json as mlx-examples copied it into config.json: the FFN width comes from the
    multiple_of formula, which these weights do not follow (160 rows where it gives 192; 320 where
    it gives 352), and n_kv_heads is absent though the weights have grouped-query attention.
    mlx-examples' loader took hidden_dim from w1; the conversion takes both from the weights."""
    dim, ffn = (128, 320) if quantized else (64, 160)
    params = {k: v for k, v in _params(dim, multiple_of=32, vocab_size=-1).items() if k != "n_kv_heads"}
    quantization = {"group_size": 64, "bits": 4} if quantized else None
    if quantization:
        params["quantization"] = quantization
    source = build_old_layout(old_root / f"odd-ffn-gqa-{dim}", hidden=dim, intermediate=ffn,
                              quantize=quantized, params=params)

    folder = convert_old_mlx(source)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert (config["intermediate_size"], config["num_key_value_heads"]) == (ffn, KV_HEADS)
    with Engine() as engine:
        loaded = engine.load(folder, prompt_format="plain").wait()
        assert loaded.finish_reason == "done", loaded.error
        ours = engine.run(lambda loaded: _greedy_tokens(loaded.model, TOKENS)).result(timeout=120)
    reference = _mlx_lm_from_old_arrays(source, ffn=ffn, kv_heads=KV_HEADS, quantization=quantization)
    assert ours == _greedy_tokens(reference, TOKENS)
    assert len(set(ours)) > 1  # a real continuation, not one token repeated


def test_quantized_tensors_without_quantization_params_are_refused(old_4bit, tmp_path):
    source = shutil.copytree(old_4bit, tmp_path / "q")
    params = _source_params(source)
    del params["quantization"]
    (source / "config.json").write_text(json.dumps(params), encoding="utf-8")
    with pytest.raises(ConversionError, match="no quantization entry"):
        convert_old_mlx(source)
    assert _nothing_left() == []


def test_scales_on_a_norm_are_refused(old_4bit, tmp_path):
    source = shutil.copytree(old_4bit, tmp_path / "q")
    _rewrite_npz(source, lambda w: w.update({"norm.scales": np.ones(2, np.float32)}))
    with pytest.raises(ConversionError, match="norm has scales"):
        convert_old_mlx(source)
    assert _nothing_left() == []


UNPICKLED: list[str] = []


def _record_unpickling(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class _Tripwire:
    def __reduce__(self):
        return (_record_unpickling, ("the npz was unpickled",))


def test_object_arrays_are_refused_never_unpickled(damaged):
    source = damaged()
    tripwire = np.empty(1, dtype=object)
    tripwire[0] = _Tripwire()
    _rewrite_npz(source, lambda w: w.update({"norm.weight": tripwire}))
    UNPICKLED.clear()
    with pytest.raises(ConversionError, match="pickle"):
        convert_old_mlx(source)
    assert UNPICKLED == []
    assert _nothing_left() == []
    # The tripwire works: numpy's pickle path would have run it.
    with np.load(source / "weights.npz", allow_pickle=True) as npz:
        npz["norm.weight"]
    assert UNPICKLED == ["the npz was unpickled"]


def test_a_new_layout_folder_is_not_mistaken_for_the_old_one(tiny, tmp_path):
    source = shutil.copytree(tiny["spm_legacy"], tmp_path / "new")
    (source / "weights.npz").write_bytes(b"")
    with pytest.raises(ConversionError, match="params format"):
        convert_old_mlx(source)


def test_cancel_leaves_nothing(old_float):
    cancel = threading.Event()

    def on_progress(progress):
        if progress.done == 3:
            cancel.set()

    with pytest.raises(ConversionCancelled):
        convert_old_mlx(old_float, on_progress=on_progress, cancel=cancel)
    assert _nothing_left() == []


def test_not_enough_disk_is_refused(old_float, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6, 1000))
    with pytest.raises(ConversionError, match="disk space"):
        convert_old_mlx(old_float)
    assert _nothing_left() == []


def test_an_existing_model_is_not_overwritten(old_float):
    convert_old_mlx(old_float)
    with pytest.raises(ConversionError, match="already exists"):
        convert_old_mlx(old_float)
    assert _nothing_left() == ["Llama-2-tiny-chat-mlx"]
