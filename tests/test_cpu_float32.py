"""On MLX's CPU backend a quantized model's 16-bit floats are widened to float32 when it loads:
16-bit arithmetic there is about 30 times slower (the real SmolLM2 went from 0.26 to 8 tokens/s).
The fit check and the saved caches' labels count what is then in memory."""

from __future__ import annotations

import json

import mlx.core as mx
import pytest
import tiny_models
from mlx.utils import tree_flatten, tree_map
from mlx_lm.generate import generate_step
from mlx_lm.utils import load_model

from engine import disk_cache
from engine.engine import Engine
from engine.events import ModelLoaded
from engine.generation import GenerationRequest
from engine.model_folder import resolve_model
from engine.platform import computes_in_float32
from engine.sampling import SamplingSettings

pytestmark = pytest.mark.skipif(not computes_in_float32(),
                                reason="MLX runs on a GPU here, where 16-bit floats are the fast path")


def _dtypes(model) -> set:
    return {a.dtype for _, a in tree_flatten(model.parameters())}


def _loaded(engine: Engine, folder) -> ModelLoaded:
    events = list(engine.load(folder).events())
    assert events[-1].finish_reason == "done", events[-1]
    return next(e for e in events if isinstance(e, ModelLoaded))


def test_a_quantized_16_bit_model_computes_in_float32_and_answers_as_mlx_lm_does_widened(smollm2):
    info = resolve_model(smollm2)
    assert info.quantization and info.half_float_bytes > 0 and info.kv_bytes_per_value == 2
    with Engine(save_caches=False) as engine:
        loaded = _loaded(engine, smollm2)
        assert engine.run(lambda model: _dtypes(model.model)).result(timeout=60) == {mx.float32, mx.uint32}
        assert loaded.weight_bytes == info.weight_bytes + info.half_float_bytes
        assert loaded.kv_bytes_per_token == 2 * info.kv_bytes_per_token  # float32 keys and values
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        result = engine.generate(GenerationRequest(messages, SamplingSettings(temperature=0.0, max_tokens=8))).wait()
    # The reference: bare mlx-lm on the same folder, its 16-bit floats widened the same way.
    reference, _config = load_model(smollm2)
    reference.update(tree_map(lambda a: a.astype(mx.float32) if a.dtype == mx.float16 else a,
                              reference.parameters()))
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    tokenizer = load_tokenizer(smollm2)
    prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    expected = [token for (token, _), _ in zip(generate_step(mx.array(prompt_ids), reference, max_tokens=8),
                                                 range(8), strict=False)]
    assert result.token_ids == expected and "Paris" in result.text, result.text


def test_an_unquantized_16_bit_model_is_not_doubled(tmp_path):
    """Widening a whole 16-bit model would double its memory: it is computed as it is stored."""
    folder = tiny_models.build_model(tmp_path / "fp16", "spm_legacy", quantize=False)
    weights = mx.load(str(folder / "model.safetensors"))
    mx.save_safetensors(str(folder / "model.safetensors"), {k: v.astype(mx.float16) for k, v in weights.items()},
                        metadata={"format": "mlx"})
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "torch_dtype": "float16"}))
    info = resolve_model(folder)
    with Engine(save_caches=False) as engine:
        loaded = _loaded(engine, folder)
        assert engine.run(lambda model: _dtypes(model.model)).result(timeout=60) == {mx.float16}
    assert loaded.weight_bytes == info.weight_bytes and loaded.kv_bytes_per_token == info.kv_bytes_per_token


def test_saved_caches_are_labelled_with_the_width_of_their_keys(smollm2):
    """A cache saved while the model computed in 16 bits is not one for the widened model."""
    info = resolve_model(smollm2)
    assert disk_cache.model_identity(info, 2048).key != disk_cache.model_identity(info.widened(), 2048).key
