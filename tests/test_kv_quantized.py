"""8-bit KV caches: saved compressed (Settings > Data, or Engine(saved_kv_bits=8)), labelled as such,
loaded back only where 8 bits were asked for, and long caches kept at 8 bits in memory (kv_bits).

What 8 bits change in the answers is measured in bench/kv_quantized.py, not asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiny_models

from engine import disk_cache
from engine.engine import Engine
from engine.generation import GenerationRequest
from engine.sampling import SamplingSettings

GREEDY = SamplingSettings(temperature=0.0, max_tokens=8)
LONG = " ".join(f"Line {i}: the starter rises overnight in a warm kitchen." for i in range(10))
CHAT = [{"role": "user", "content": LONG}]


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> Path:
    """A tiny Llama whose keys are 64 wide, as in real models (the shared tiny ones' are 16, too narrow
    for any quantization group)."""
    return tiny_models.build_model(tmp_path_factory.mktemp("wide") / "model", "spm_legacy", hidden_size=128,
                                   num_heads=2, num_kv_heads=1, intermediate_size=256)


def _ask(engine: Engine, messages, conversation: str | None = "chat"):
    result = engine.generate(GenerationRequest(messages, GREEDY, conversation)).wait()
    assert result.finish_reason in ("stop", "length"), result.error
    return result


def _follow(first) -> list[dict[str, str]]:
    return CHAT + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "And then?"}]


def _file() -> Path:
    (path,) = disk_cache.folder().glob("*.safetensors")
    return path


def _label(path: Path) -> tuple[str, int]:
    metadata = disk_cache._read_metadata(path)
    return metadata["0.kv_bits"], len(json.loads(metadata["0.token_ids"]))


def _save_once(model: Path, **options) -> tuple[Path, object]:
    with Engine(prefill_step_size=64, **options) as engine:
        engine.load(model).wait()
        first = _ask(engine, CHAT)
    return _file(), first


def test_a_cache_saved_at_8_bits_is_smaller_labelled_and_continues_after_a_restart(wide_model):
    full, first = _save_once(wide_model, saved_kv_bits=0)
    full_bytes, full_label = full.stat().st_size, _label(full)
    disk_cache.clear()
    small, _ = _save_once(wide_model, saved_kv_bits=8)
    assert full_label[0] == "full" and _label(small) == ("8", full_label[1])
    assert small.stat().st_size < full_bytes / 2  # float32 keys and values: 1 + 8/64 bytes each

    with Engine(prefill_step_size=64, saved_kv_bits=8) as restarted:
        restarted.load(wide_model).wait()
        turn2 = _ask(restarted, _follow(first))
        kinds = restarted.run(lambda _m: {type(layer).__name__
                                          for layer in restarted.caches.get("chat").cache}).result(60)
    assert turn2.cache_source == "disk" and turn2.reused_tokens >= first.prompt_tokens
    assert turn2.generation_tokens > 0
    assert kinds == {"QuantizedKVCache"}  # it goes on at 8 bits


def test_a_full_precision_process_never_loads_an_8_bit_file_nor_deletes_it(wide_model):
    small, first = _save_once(wide_model, saved_kv_bits=8)
    with Engine(prefill_step_size=64, saved_kv_bits=0) as exact:
        exact.load(wide_model).wait()
        turn2 = _ask(exact, _follow(first), conversation="other")
    assert turn2.cache_source == "none" and turn2.reused_tokens == 0
    assert small.exists() and _label(small)[0] == "8"  # left for the processes that compress


def test_a_full_precision_file_serves_a_process_that_compresses(wide_model):
    _full, first = _save_once(wide_model, saved_kv_bits=0)
    with Engine(prefill_step_size=64, saved_kv_bits=8) as compressing:
        compressing.load(wide_model).wait()
        turn2 = _ask(compressing, _follow(first))
    assert turn2.cache_source == "disk"


def test_the_settings_switch_decides_for_engines_that_do_not_say(wide_model):
    disk_cache.write_budget(5 * 10**9)
    disk_cache.write_kv_bits(8)
    assert disk_cache.read_budget() == 5 * 10**9  # one setting does not reset the other
    path, _ = _save_once(wide_model)
    assert _label(path)[0] == "8"
    disk_cache.write_kv_bits(None)
    assert disk_cache.read_kv_bits() is None and disk_cache.read_budget() == 5 * 10**9


def test_keys_too_narrow_for_any_quantization_group_are_saved_at_full_precision(llama2_chat):
    path, _ = _save_once(llama2_chat, saved_kv_bits=8)  # 16-wide keys: no group divides them
    assert _label(path)[0] == "full"


def test_a_long_cache_is_kept_at_8_bits_in_memory_and_the_chat_goes_on(wide_model):
    with Engine(prefill_step_size=64, save_caches=False, kv_bits=8, quantized_kv_start=64) as engine:
        engine.load(wide_model).wait()
        short = _ask(engine, [{"role": "user", "content": "Hi."}], conversation="short")
        first = _ask(engine, CHAT)
        assert short.prompt_tokens < 64 < first.prompt_tokens

        def kinds(name):
            return {type(layer).__name__ for layer in engine.caches.get(name).cache}

        assert engine.run(lambda _m: (kinds("short"), kinds("chat"))).result(60) == (
            {"KVCache"}, {"QuantizedKVCache"})
        turn2 = _ask(engine, _follow(first))
    assert turn2.cache_source == "memory" and turn2.reused_tokens >= first.prompt_tokens
    assert turn2.generation_tokens > 0


def test_settings_data_switches_compression_with_a_click(qtbot):
    from PySide6.QtCore import Qt

    from app.gui import background
    from app.gui.settings.data_page import DataPage
    from engine.history import HistoryStore

    store = HistoryStore()
    try:
        page = DataPage(store)
        qtbot.addWidget(page)
        page.show()
        page.reload()
        settled = lambda: qtbot.waitUntil(lambda: background.active_jobs() == 0, timeout=15_000)  # noqa: E731
        settled()
        assert not page.kv_compress.isChecked()
        qtbot.mouseClick(page.kv_compress, Qt.MouseButton.LeftButton)
        settled()
        assert disk_cache.read_kv_bits() == 8
        page.reload()  # as when Settings opens again
        settled()
        assert page.kv_compress.isChecked()
        page.kv_compress.setFocus()
        qtbot.keyClick(page.kv_compress, Qt.Key.Key_Space)
        settled()
        assert disk_cache.read_kv_bits() is None and not page.kv_compress.isChecked()
    finally:
        store.close()


def test_kv_bits_in_the_terminal(llama2_chat, tmp_path):
    """`--kv-bits 8` is the terminal's switch for long caches in memory: short answers are the same
    (quantizing starts at 4,096 positions), and another width is one line."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "HEARTH_HOME": str(tmp_path / "home")}
    messages = json.dumps([{"role": "user", "content": "Hello there"}])

    def generate(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app.cli", "generate", str(llama2_chat), "--messages", "-",
                               "--json", "--temp", "0", "--max-tokens", "6", *extra], input=messages,
                              capture_output=True, text=True, env=env, timeout=300)

    plain, compressed, refused = generate(), generate("--kv-bits", "8"), generate("--kv-bits", "4")
    assert plain.returncode == compressed.returncode == 0, compressed.stderr
    assert json.loads(compressed.stdout)["token_ids"] == json.loads(plain.stdout)["token_ids"]
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "--kv-bits: invalid choice: 4" in refused.stderr
