"""GGUF import: files written at test time the way llama.cpp's converter writes them, imported,
validated, loaded by the Engine, and checked against the source model's own logits and tokenizer."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable

import gguf
import gguf_writer
import mlx.core as mx
import numpy as np
import pytest
import tiny_models
from mlx.utils import tree_map

from engine.convert import common, gguf_import
from engine.convert.common import ConversionCancelled, ConversionError
from engine.convert.gguf_import import (
    NOTE_FILE,
    import_gguf,
    llama3_rope_factors,
    repack_native,
    unpermute_rows,
)
from engine.engine import Engine
from engine.model_folder import validate_folder
from engine.prompts import PromptFormat, build_prompt, choose_format
from engine.tokenizer import load_tokenizer

# A fixed input, long enough for the rotary embedding to matter (positions 0-15).
INPUT_IDS = [1, 17, 300, 42, 99, 250, 511, 3, 77, 128, 64, 200, 5, 400, 33, 8]

# Each case: the type of every 2-D tensor, and per-tensor exceptions. "mixed" has a Q5_0 tensor,
# which makes mx.load refuse the whole file, and a Q4_1 one.
MIXED = {"blk.1.ffn_down.weight": "Q5_0", "blk.0.attn_q.weight": "Q4_1"}
CASES = {
    "F32": ("F32", {}),
    "F16": ("F16", {}),
    "BF16": ("BF16", {}),
    "Q8_0": ("Q8_0", {}),
    "Q4_0": ("Q4_0", {}),
    "mixed": ("Q8_0", MIXED),
}
# The bits MLX gets for a type that is re-quantized (see gguf_import.REQUANT_BITS).
REQUANT_BITS = {"Q5_0": 5}
# The float type the import stores everything in, by file (float16 when anything is quantized).
FLOAT_DTYPE = {"F32": "F32", "BF16": "BF16"}
# Float16 rounds to 2**-11, bfloat16 to 2**-8: the shipped model's logits stay within these shares
# of their range of the float32 computation on the same weights (two layers and the head). Measured
# here: 0.09-0.34% in float16 (bound 1%), 0.7% in bfloat16 (bound 3%).
HALF_TOLERANCE = {"BF16": 3e-2}
T = gguf.GGMLQuantizationType

TOKENIZER_SAMPLES = tiny_models.SPM_SAMPLE_TEXTS + (
    "Plain English, with punctuation!",
    "   three leading spaces",
    "digits 0123456789 and 3.14159",
    "日本語のテキスト 東京",
    "emoji 🔥🎉😀 and more 🙂",
)


@pytest.fixture(scope="module")
def float_models(tmp_path_factory) -> dict[str, object]:
    """Unquantized float32 tiny models (sizes multiples of 32, as Q4_0/Q8_0 blocks need)."""
    root = tmp_path_factory.mktemp("gguf-sources")
    return {
        variant: tiny_models.build_model(root / variant, variant, quantize=False, hidden_size=64, intermediate_size=128)
        for variant in ("spm_legacy", "bpe_llama3")
    }


@pytest.fixture(scope="module")
def engine():
    engine = Engine(prefill_step_size=64).start()
    yield engine
    engine.shutdown()


def _leftovers() -> list[str]:
    return sorted(p.name for p in common.models_dir().iterdir())


def _logits(model) -> np.ndarray:
    return np.array(model(mx.array([INPUT_IDS])).astype(mx.float32))[0]


def _upcast(model) -> None:
    """Every 16-bit float parameter (norms, scales, biases...) to float32, so the imported weights
    can be compared exactly, without 16-bit arithmetic in the way."""
    halves = (mx.float16, mx.bfloat16)
    model.update(tree_map(lambda a: a.astype(mx.float32) if a.dtype in halves else a, model.parameters()))


def _engine_logits(engine, folder) -> tuple[np.ndarray, np.ndarray]:
    """Logits of the model the Engine loaded: as shipped, and with its floats upcast to float32."""
    done = engine.load(folder).wait()
    assert done.finish_reason == "done", done.error

    def compute(loaded):
        shipped = _logits(loaded.model)
        _upcast(loaded.model)
        return shipped, _logits(loaded.model)

    return engine.run(compute).result(timeout=60)


def _gguf_values(source, tensor_type: str, types: dict[str, str]) -> dict[str, mx.array]:
    """What the GGUF file holds for each source weight, back as float32 in the source's own
    (Hugging Face) layout: quantizing rows in blocks commutes with llama.cpp's row permutation."""
    weights = {}
    for name, values in gguf_writer.source_weights(source).items():
        if values.ndim == 1:  # norms: F32 in the file, stored in the import's float dtype
            weights[name] = mx.array(gguf_writer.roundtrip(values, T[FLOAT_DTYPE.get(tensor_type, "F16")]))
            continue
        qtype = types.get(gguf_writer.gguf_name(name), tensor_type)
        held = mx.array(gguf_writer.roundtrip(values, T[qtype]))
        if qtype in REQUANT_BITS:  # then quantized again by MLX, as the import documents
            bits = REQUANT_BITS[qtype]
            packed, scales, biases = mx.quantize(held.astype(mx.float16), group_size=32, bits=bits)
            held = mx.dequantize(packed, scales.astype(mx.float32), biases.astype(mx.float32),
                                 group_size=32, bits=bits)
        weights[name] = held
    return weights


def _reference_logits(engine, source, weights: Callable[[], dict[str, mx.array]] | None = None) -> np.ndarray:
    """Logits of the source model (mlx-lm, float32), optionally with its weights replaced by
    weights() (called on the engine thread: MLX arrays belong to the thread that made them)."""

    def compute(_loaded):
        from mlx_lm.utils import load_model

        model, _config = load_model(source)
        if weights is not None:
            model.load_weights(list(weights().items()))
        return _logits(model)

    return engine.run(compute).result(timeout=60)


def _scale(logits: np.ndarray) -> float:
    return float(np.abs(logits).max())


# ----------------------------------------------------------------------------- weights and logits


@pytest.mark.parametrize("case", CASES)
def test_imported_model_computes_what_the_file_holds(case, float_models, engine, tmp_path):
    tensor_type, types = CASES[case]
    source = float_models["spm_legacy"]
    path = gguf_writer.write_gguf(source, tmp_path / f"tiny.{case}.gguf", tensor_type=tensor_type, types=types)

    folder = import_gguf(path)

    info = validate_folder(folder)
    assert info.model_type == "llama" and info.num_layers == 2 and info.vocab_size == 512
    shipped, upcast = _engine_logits(engine, folder)
    source_logits = _reference_logits(engine, source)
    if tensor_type == "F32":
        # Same float32 weights, same arithmetic: the only difference is summation order.
        np.testing.assert_allclose(shipped, source_logits, rtol=0, atol=1e-5)
        return
    held = _reference_logits(engine, source, lambda: _gguf_values(source, tensor_type, types))
    # Upcast to float32, the imported model is the file's weights exactly (MLX dequantizes
    # scale * q + bias with float16 scales: exact in float32), up to summation order.
    np.testing.assert_allclose(upcast, held, rtol=0, atol=1e-4 * _scale(held))
    # As shipped it computes in 16-bit floats: within a few roundings of the same weights in float32.
    half = HALF_TOLERANCE.get(tensor_type, 1e-2) * _scale(held)
    assert np.abs(shipped - held).max() <= half
    # And so it is as close to the float source as the file's own quantization allows, plus that.
    quantization_error = np.abs(held - source_logits).max()
    assert np.abs(shipped - source_logits).max() <= quantization_error + half


def test_k_quant_tensors_are_requantized_to_mlx(tmp_path_factory, engine, monkeypatch):
    """Q4_K and Q6_K (256-value blocks, the types in most real "Q4_K_M" files): dequantized by
    gguf, quantized again by MLX at 4 and 6 bits, a few rows at a time."""
    source = tiny_models.build_model(tmp_path_factory.mktemp("wide") / "wide", "spm_legacy", quantize=False,
                                     hidden_size=256, intermediate_size=512)
    raw = {"blk.0.ffn_gate.weight": ("Q4_K", gguf_writer.random_k_quant(512, 256, "Q4_K", seed=1)),
           "blk.1.ffn_down.weight": ("Q6_K", gguf_writer.random_k_quant(256, 512, "Q6_K", seed=2))}
    path = gguf_writer.write_gguf(source, tmp_path_factory.mktemp("k") / "k.gguf", tensor_type="Q8_0", raw_tensors=raw)
    monkeypatch.setattr(gguf_import, "ROW_CHUNK", 100)

    folder = import_gguf(path)

    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"]["model.layers.1.mlp.down_proj"] == {"group_size": 32, "bits": 6}
    assert config["quantization"]["model.layers.0.mlp.gate_proj"] == {"group_size": 32, "bits": 4}
    shipped, upcast = _engine_logits(engine, folder)

    def held_weights():
        weights = _gguf_values(source, "Q8_0", {})
        for name, bits in (("model.layers.0.mlp.gate_proj.weight", 4), ("model.layers.1.mlp.down_proj.weight", 6)):
            qtype, blocks = raw[gguf_writer.gguf_name(name)]
            floats = mx.array(gguf.quants.dequantize(blocks, T[qtype])).astype(mx.float16)
            packed, scales, biases = mx.quantize(floats, group_size=32, bits=bits)
            weights[name] = mx.dequantize(packed, scales.astype(mx.float32), biases.astype(mx.float32),
                                          group_size=32, bits=bits)
        return weights

    held = _reference_logits(engine, source, held_weights)
    np.testing.assert_allclose(upcast, held, rtol=0, atol=1e-4 * _scale(held))
    # The random blocks hold values of up to a few units, far above the model's own (~0.06); that amplifies
    # float16 rounding (measured 1.3% here): the float32 check above is the exact one.
    assert np.abs(shipped - held).max() <= 3e-2 * _scale(held)


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1"])
def test_native_blocks_repack_to_what_mx_load_makes(qtype, float_models, tmp_path):
    """mx.load reads these three types as MLX (weight, scales, biases) triples; the import's own
    repacking (which also works in files mx.load refuses) gives the very same bits."""
    path = gguf_writer.write_gguf(float_models["spm_legacy"], tmp_path / "t.gguf", tensor_type=qtype)
    loaded = mx.load(str(path))
    for tensor in gguf.GGUFReader(path).tensors:
        if tensor.tensor_type.name != qtype:
            continue
        base = tensor.name.removesuffix(".weight")
        ours = repack_native(np.asarray(tensor.data), qtype)
        for part, array in zip(("weight", "scales", "biases"), ours, strict=True):
            assert np.array_equal(array, np.array(loaded[f"{base}.{part}"])), f"{tensor.name} {part}"


def test_mx_load_refuses_the_mixed_file_that_imports(float_models, tmp_path):
    path = gguf_writer.write_gguf(float_models["spm_legacy"], tmp_path / "mixed.gguf", tensor_type="Q8_0", types=MIXED)
    with pytest.raises(Exception, match="gguf"):
        mx.load(str(path))
    seen = []

    folder = import_gguf(path, on_progress=seen.append)

    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"]["bits"] == 8 and config["quantization"]["group_size"] == 32
    assert config["quantization"]["model.layers.1.mlp.down_proj"] == {"group_size": 32, "bits": 5}
    assert config["quantization"]["model.layers.0.self_attn.q_proj"] == {"group_size": 32, "bits": 4}
    note = json.loads((folder / NOTE_FILE).read_text())
    assert note["requantized"] == {"blk.1.ffn_down.weight": "Q5_0 -> MLX 5-bit"}
    assert any(p.stage == "requantizing" and "re-quantized" in p.message for p in seen)


def test_llama_cpp_q_k_layout_is_the_interleaved_rotary_one(float_models, engine, tmp_path, monkeypatch):
    """Why q/k rows are un-permuted: left as llama.cpp stores them, the logits are wrong with
    mlx-lm's default (half-split) rotary layout and right with the interleaved one
    (rope_traditional), which the un-permuted rows make unnecessary."""
    source = float_models["spm_legacy"]
    monkeypatch.setattr(gguf_import, "unpermute_rows", lambda rows, heads: np.arange(rows))
    folder = import_gguf(gguf_writer.write_gguf(source, tmp_path / "tiny.gguf"), name="kept")
    expected = _reference_logits(engine, source)
    kept, _upcast_logits = _engine_logits(engine, folder)
    assert np.abs(kept - expected).max() > 0.05 * _scale(expected)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "rope_traditional": True}))
    traditional, _upcast_logits = _engine_logits(engine, folder)
    np.testing.assert_allclose(traditional, expected, rtol=0, atol=1e-5)


def test_unpermute_rows_inverts_llama_cpp_permutation():
    rng = np.random.default_rng(0)
    for heads, rows in ((4, 64), (2, 32), (32, 4096)):
        weights = rng.standard_normal((rows, 8)).astype(np.float32)
        permuted = gguf_writer.llama_cpp_permute(weights, heads)
        assert not np.array_equal(permuted, weights)
        assert np.array_equal(permuted[unpermute_rows(rows, heads)], weights)


def test_progress_per_tensor_and_cancel_leaves_nothing(float_models, tmp_path):
    path = gguf_writer.write_gguf(float_models["spm_legacy"], tmp_path / "tiny.gguf", tensor_type="Q8_0")
    cancel = threading.Event()
    seen = []

    def on_progress(progress):
        seen.append(progress)
        if progress.stage == "converting" and progress.done == 3:
            cancel.set()

    with pytest.raises(ConversionCancelled):
        import_gguf(path, on_progress=on_progress, cancel=cancel)
    converting = [p for p in seen if p.stage == "converting"]
    assert [p.done for p in converting] == [0, 1, 2, 3] and converting[0].total == 21
    assert _leftovers() == []


def test_large_models_are_split_into_indexed_shards(float_models, engine, tmp_path, monkeypatch):
    source = float_models["spm_legacy"]
    monkeypatch.setattr(gguf_import, "SHARD_BYTES", 100_000)
    folder = import_gguf(gguf_writer.write_gguf(source, tmp_path / "tiny.gguf"))
    shards = sorted(p.name for p in folder.glob("model*.safetensors"))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    validate_folder(folder)
    shipped, _upcast_logits = _engine_logits(engine, folder)
    np.testing.assert_allclose(shipped, _reference_logits(engine, source), rtol=0, atol=1e-5)


def test_tied_embeddings_when_the_file_has_no_output_tensor(float_models, tmp_path):
    path = gguf_writer.write_gguf(float_models["spm_legacy"], tmp_path / "tied.gguf", drop=("output.weight",))
    folder = import_gguf(path)
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    validate_folder(folder)


# ----------------------------------------------------------------------------- tokenizers


def test_sentencepiece_rebuilt_from_gguf_encodes_like_the_original(float_models, tmp_path):
    source = float_models["spm_legacy"]
    folder = import_gguf(gguf_writer.write_gguf(source, tmp_path / "tiny.gguf"))
    original = tiny_models.load_sentencepiece(source)
    rebuilt = tiny_models.load_sentencepiece(folder)
    assert rebuilt.get_piece_size() == original.get_piece_size()
    assert (rebuilt.bos_id(), rebuilt.eos_id(), rebuilt.unk_id()) == (original.bos_id(), original.eos_id(), original.unk_id())
    for text in TOKENIZER_SAMPLES:
        assert rebuilt.encode(text) == original.encode(text), text
        assert rebuilt.decode(rebuilt.encode(text)) == text
    assert any(original.is_byte(i) for text in TOKENIZER_SAMPLES for i in original.encode(text))


def test_llama2_chat_gguf_without_template_gives_metas_prompt_ids(float_models, tmp_path):
    source = float_models["spm_legacy"]
    path = gguf_writer.write_gguf(source, tmp_path / "llama-2-7b-chat.Q8_0.gguf", tensor_type="Q8_0",
                                  name="llama-2-7b-chat", chat_template=False)
    folder = import_gguf(path, name="imported")  # the folder name says nothing: the metadata does

    info = validate_folder(folder)
    assert info.chat_template == common.LLAMA2_CHAT_TEMPLATE
    assert choose_format(info) is PromptFormat.LLAMA2
    dialog = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello, café 中文 🔥"},
        {"role": "assistant", "content": "Hi there."},
        {"role": "user", "content": "  What is 2+2?  "},
    ]
    prompt = build_prompt(load_tokenizer(info), dialog, PromptFormat.LLAMA2, 4096, 100)
    assert prompt.ids == tiny_models.reference_llama2_ids(tiny_models.load_sentencepiece(source), dialog)


def test_gguf_without_template_or_chat_name_gets_no_template(float_models, tmp_path):
    path = gguf_writer.write_gguf(float_models["spm_legacy"], tmp_path / "base.gguf", name="tiny-base", chat_template=False)
    assert validate_folder(import_gguf(path)).chat_template is None


def test_byte_level_bpe_gguf_round_trips_its_tokenizer(float_models, engine, tmp_path):
    from tokenizers import Tokenizer

    source = float_models["bpe_llama3"]
    folder = import_gguf(gguf_writer.write_gguf(source, tmp_path / "llama3.gguf"))
    original = Tokenizer.from_file(str(source / "tokenizer.json"))
    rebuilt = Tokenizer.from_file(str(folder / "tokenizer.json"))
    specials = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
    for text in (*TOKENIZER_SAMPLES, specials):
        for add_special in (False, True):
            assert rebuilt.encode(text, add_special_tokens=add_special).ids == \
                original.encode(text, add_special_tokens=add_special).ids, text
        ids = original.encode(text, add_special_tokens=False).ids
        assert rebuilt.decode(ids, skip_special_tokens=False) == original.decode(ids, skip_special_tokens=False) == text
        assert rebuilt.decode(ids) == original.decode(ids)

    info = validate_folder(folder)
    config = json.loads((folder / "config.json").read_text())
    source_config = json.loads((source / "config.json").read_text())
    assert config["bos_token_id"] == source_config["bos_token_id"]
    assert config["eos_token_id"] == source_config["eos_token_id"][1]  # <|eot_id|>, the template's end
    assert config["rope_theta"] == 500000.0
    assert info.chat_template == tiny_models.LLAMA3_CHAT_TEMPLATE
    assert choose_format(info) is PromptFormat.TEMPLATE
    shipped, _upcast_logits = _engine_logits(engine, folder)
    np.testing.assert_allclose(shipped, _reference_logits(engine, source), rtol=0, atol=1e-5)


def test_llama31_rope_factors_become_mlx_rope_scaling(float_models, tmp_path):
    source = float_models["bpe_llama3"]
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}
    factors = llama3_rope_factors(scaling, 16, 500000.0).astype(np.float32)
    assert 1.0 < factors.max() and factors.min() == 1.0  # the tiny head_dim still spans all three bands
    path = gguf_writer.write_gguf(source, tmp_path / "llama31.gguf", extra_tensors={"rope_freqs.weight": factors})
    config = json.loads((import_gguf(path).joinpath("config.json")).read_text())
    assert config["rope_scaling"] == scaling

    odd = gguf_writer.write_gguf(source, tmp_path / "odd.gguf", extra_tensors={"rope_freqs.weight": factors[::-1].copy()})
    with pytest.raises(ConversionError, match="rotary"):
        import_gguf(odd)


# ----------------------------------------------------------------------------- failures


def _truncated(source, tmp_path):
    path = gguf_writer.write_gguf(source, tmp_path / "whole.gguf", tensor_type="Q8_0")
    data = path.read_bytes()
    cut = tmp_path / "half.gguf"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _not_gguf(source, tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_text("this is not a model\n" * 100)
    return path


FAILURES = {
    "truncated": (_truncated, "truncated"),
    "not GGUF": (_not_gguf, "not a GGUF file"),
    "falcon": (lambda s, t: gguf_writer.write_gguf(s, t / "f.gguf", architecture="falcon"), "'falcon'"),
    "bert tokenizer": (lambda s, t: gguf_writer.write_gguf(s, t / "b.gguf", tokenizer_model="bert"),
                       "'bert' tokenizer.*cannot be rebuilt"),
    "Q8_1 tensor": (lambda s, t: gguf_writer.write_gguf(s, t / "q.gguf", types={"blk.0.ffn_up.weight": "Q8_1"}),
                    "blk.0.ffn_up.weight is of type Q8_1.*cannot decode"),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_bad_files_fail_clearly_and_leave_nothing(failure, float_models, tmp_path):
    make, message = FAILURES[failure]
    path = make(float_models["spm_legacy"], tmp_path)
    with pytest.raises(ConversionError, match=message):
        import_gguf(path)
    assert _leftovers() == []


def test_not_enough_disk_fails_before_writing(float_models, tmp_path, monkeypatch):
    path = gguf_writer.write_gguf(float_models["spm_legacy"], tmp_path / "tiny.gguf")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(common.shutil, "disk_usage", lambda _p: usage._replace(free=1000))
    with pytest.raises(ConversionError, match="Not enough disk space"):
        import_gguf(path)
    assert _leftovers() == []


def test_existing_name_is_refused(float_models, tmp_path):
    path = gguf_writer.write_gguf(float_models["spm_legacy"], tmp_path / "tiny.gguf")
    import_gguf(path)
    with pytest.raises(ConversionError, match="already exists"):
        import_gguf(path)
    assert _leftovers() == ["tiny"]
