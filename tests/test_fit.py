"""The fit check: weights (from safetensors headers) plus the KV cache at the chosen context, against
the memory this machine can give, refused before loading with the numbers when it cannot fit."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import tiny_models

from engine import fit, platform
from engine.engine import Engine
from engine.errors import ModelTooLarge
from engine.events import ModelLoaded
from engine.fit import RUNTIME_OVERHEAD_BYTES, FitReport, GiB, fit_report, require_fit
from engine.model_folder import DEFAULT_CONTEXT_CAP, resolve_model

GOOD = "spm_legacy"
MiB = 1024**2


def _gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


@pytest.fixture(scope="module")
def info(tiny):
    return resolve_model(tiny[GOOD])


@pytest.fixture
def llama2_7b_q4(info):
    """The tiny model's info with a Llama 2 7B's shape: 32 layers, 32 KV heads of 128, fp16."""
    return dataclasses.replace(
        info, name="Llama-2-7b-chat-4bit", weight_bytes=int(3.8 * GiB), num_layers=32,
        num_kv_heads=32, head_dim=128, kv_bytes_per_value=2,
    )


# ------------------------------------------------------------------ the numbers


def test_report_numbers_add_up(info):
    report = fit_report(info, 1000, available_bytes=8 * GiB)
    assert report.weight_bytes == info.weight_bytes > 0
    assert report.kv_bytes == info.kv_bytes_per_token * 1000 == 2 * 2 * 2 * 16 * 4 * 1000
    assert report.context_length == 1000 and report.available_bytes == 8 * GiB
    assert report.needed_bytes == info.weight_bytes + report.kv_bytes + RUNTIME_OVERHEAD_BYTES


def test_verdict_boundaries():
    def report(available: int) -> FitReport:
        # needed is exactly 4 GiB: 0.8 x 5 GiB
        return FitReport(weight_bytes=4 * GiB - RUNTIME_OVERHEAD_BYTES - 256 * MiB,
                         kv_bytes=256 * MiB, context_length=4096, available_bytes=available)

    assert report(5 * GiB).needed_bytes == 4 * GiB
    assert report(64 * GiB).verdict == "fits"
    assert report(5 * GiB).verdict == "fits"  # exactly at the tight line
    assert report(5 * GiB - 1).verdict == "tight"
    assert report(4 * GiB).verdict == "tight"  # exactly all of it still fits
    assert report(4 * GiB - 1).verdict == "too_large"
    assert report(0).verdict == "too_large"


def test_a_llama2_7b_at_different_contexts_and_memories(llama2_7b_q4):
    # 2 (K and V) x 32 layers x 32 heads x 128 x 2 bytes = 0.5 MiB a token: 2 GiB at 4,096 tokens.
    assert llama2_7b_q4.kv_bytes_per_token == 512 * 1024
    assert fit_report(llama2_7b_q4, 4096, 8 * GiB).kv_bytes == 2 * GiB
    assert fit_report(llama2_7b_q4, 4096, 16 * GiB).verdict == "fits"
    assert fit_report(llama2_7b_q4, 4096, 8 * GiB).verdict == "fits"  # 6.09 of 8 GiB
    assert fit_report(llama2_7b_q4, 4096, 7 * GiB).verdict == "tight"  # 6.09 of 7 GiB
    assert fit_report(llama2_7b_q4, 8192, 8 * GiB).verdict == "too_large"  # 8.09 of 8 GiB
    assert fit_report(llama2_7b_q4, 8192, 16 * GiB).verdict == "fits"


def test_require_fit_refuses_with_the_numbers(llama2_7b_q4):
    with pytest.raises(ModelTooLarge) as caught:
        require_fit(llama2_7b_q4, 8192, available_bytes=8 * GiB)
    message = str(caught.value)
    report = fit_report(llama2_7b_q4, 8192, 8 * GiB)
    assert message.startswith("Llama-2-7b-chat-4bit will not fit in memory")
    for figure in (
        f"needs {_gib(report.needed_bytes)}", "8.09 GiB",
        f"weights {_gib(report.weight_bytes)}", "3.80 GiB",
        f"KV cache {_gib(report.kv_bytes)}", "4.00 GiB",
        "at 8,192 tokens",
        f"runtime {_gib(RUNTIME_OVERHEAD_BYTES)}",
        "of 8.00 GiB available",
        "shorter context",
    ):
        assert figure in message, (figure, message)


def test_require_fit_returns_the_report_when_it_fits(llama2_7b_q4):
    assert require_fit(llama2_7b_q4, 4096, available_bytes=16 * GiB).verdict == "fits"
    assert require_fit(llama2_7b_q4, 4096, available_bytes=7 * GiB).verdict == "tight"


@pytest.fixture(scope="module")
def float_models(tmp_path_factory) -> dict[str, Path]:
    """Unquantized copies of the tiny model in float32, float16 and bfloat16."""
    import mlx.core as mx

    root = tmp_path_factory.mktemp("float-models")
    f32 = tiny_models.build_model(root / "float32", GOOD, quantize=False)
    folders = {"float32": f32}
    for dtype in ("float16", "bfloat16"):
        folder = root / dtype
        shutil.copytree(f32, folder)
        weights = mx.load(str(folder / "model.safetensors"))
        mx.save_safetensors(str(folder / "model.safetensors"),
                            {k: v.astype(getattr(mx, dtype)) for k, v in weights.items()},
                            {"format": "mlx"})
        config = json.loads((folder / "config.json").read_text())
        config["torch_dtype"] = dtype
        (folder / "config.json").write_text(json.dumps(config))
        folders[dtype] = folder
    return folders


@pytest.mark.parametrize("variant, value_bytes", [("q4", 4), ("float32", 4), ("float16", 2), ("bfloat16", 2)])
def test_the_kv_estimate_matches_a_real_mlx_lm_cache(variant, value_bytes, tiny, float_models):
    """kv_bytes_per_token is what mlx-lm's KV cache really takes for this model, per token."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache
    from mlx_lm.utils import load_model

    info = resolve_model(tiny[GOOD] if variant == "q4" else float_models[variant])
    assert info.kv_bytes_per_value == value_bytes
    assert info.quantization == ({"bits": 4, "group_size": 32} if variant == "q4" else None)
    model, _ = load_model(info.path, lazy=False, strict=True)
    cache = make_prompt_cache(model)
    model(mx.array([[1, 20, 30, 40, 50, 60, 70]]), cache=cache)
    per_token = 0
    for layer in cache:
        keys, values = layer.keys, layer.values  # allocated in steps of 256 tokens
        mx.eval(keys, values)
        assert layer.offset == 7
        per_token += (keys.nbytes + values.nbytes) // keys.shape[2]
    assert len(cache) == info.num_layers
    assert per_token == info.kv_bytes_per_token


# ------------------------------------------------------------ through the engine


def test_the_engine_refuses_a_model_that_does_not_fit(tiny, info):
    small = 100 * MiB
    with Engine(memory_bytes=small) as engine:
        done = engine.load(tiny[GOOD], context_length=2048).wait()
        assert done.finish_reason == "error"
        assert done.error_kind == "ModelTooLarge"
        assert engine.loaded is None
        report = fit_report(info, 2048, small)
        assert done.error == str(pytest.raises(ModelTooLarge, require_fit, info, 2048, small).value)
        for figure in (_gib(report.needed_bytes), _gib(report.kv_bytes), "at 2,048 tokens",
                       "of 0.10 GiB available"):
            assert figure in done.error, (figure, done.error)
    enough = info.weight_bytes + info.kv_bytes_per_token * 2048 + RUNTIME_OVERHEAD_BYTES
    with Engine(memory_bytes=enough) as engine:  # exactly enough: tight, but it loads
        assert fit_report(info, 2048, enough).verdict == "tight"
        assert engine.load(tiny[GOOD], context_length=2048).wait().finish_reason == "done"
    with Engine(memory_bytes=enough - 1) as engine:
        assert engine.load(tiny[GOOD], context_length=2048).wait().error_kind == "ModelTooLarge"


def test_with_real_memory_a_huge_context_is_refused_and_a_normal_one_loads(tiny, info):
    memory = platform.usable_memory_bytes()
    huge = max(10**9, 2 * memory // info.kv_bytes_per_token)
    events = []
    with Engine() as engine:
        done = engine.load(tiny[GOOD], context_length=huge).wait()
        assert done.finish_reason == "error" and done.error_kind == "ModelTooLarge"
        assert f"at {huge:,} tokens" in done.error
        assert f"of {_gib(memory)} available" in done.error
        assert _gib(info.kv_bytes_per_token * huge) in done.error
        assert engine.loaded is None

        done = engine.load(tiny[GOOD], context_length=2048, on_event=events.append).wait()
        assert done.finish_reason == "done", done.error
        assert engine.loaded is not None
    loaded = [e for e in events if isinstance(e, ModelLoaded)]
    assert len(loaded) == 1 and loaded[0].context_length == 2048
    assert loaded[0].weight_bytes == info.weight_bytes
    assert loaded[0].kv_bytes_per_token == info.kv_bytes_per_token


def test_the_default_context_is_capped_before_the_fit_check(model_copy):
    """A model declaring Llama 3.1's 131,072 tokens is checked (and run) at the default cap."""
    folder = model_copy()
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 131072
    (folder / "config.json").write_text(json.dumps(config))
    info = resolve_model(folder)
    assert info.max_context == 131072 and info.default_context == DEFAULT_CONTEXT_CAP == 8192
    memory = fit_report(info, DEFAULT_CONTEXT_CAP, 0).needed_bytes + 16 * MiB
    assert fit_report(info, 131072, memory).verdict == "too_large"
    events = []
    with Engine(memory_bytes=memory) as engine:
        assert engine.load(folder, on_event=events.append).wait().finish_reason == "done"
        full = engine.load(folder, context_length=131072).wait()
        assert full.error_kind == "ModelTooLarge" and "at 131,072 tokens" in full.error
    assert [e.context_length for e in events if isinstance(e, ModelLoaded)] == [8192]


# --------------------------------------------------------------- which memory


@pytest.mark.skipif(platform.on_metal(), reason="Metal: the recommended working set is used")
def test_the_fit_uses_physical_memory_off_metal(info):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert platform.usable_memory_bytes() == platform.physical_memory_bytes() == physical
    if sys.platform.startswith("linux"):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_total_kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
        assert physical == mem_total_kib * 1024
    assert fit_report(info, 4096).available_bytes == physical
    assert fit.fit_report(info, 4096, available_bytes=123).available_bytes == 123


@pytest.mark.skipif(not platform.on_metal(), reason="only on Apple Silicon")
def test_the_fit_uses_the_recommended_working_set_on_metal():
    import mlx.core as mx

    expected = int(mx.device_info()["max_recommended_working_set_size"])
    assert platform.usable_memory_bytes() == expected < platform.physical_memory_bytes()
