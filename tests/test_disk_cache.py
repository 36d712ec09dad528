"""Conversation caches saved to disk: restart, longest prefix, other models, damage, budget, two processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import disk_cache
from engine.engine import Engine
from engine.generation import GenerationRequest
from engine.sampling import SamplingSettings

REPO = Path(__file__).resolve().parents[1]
GREEDY = SamplingSettings(temperature=0.0, max_tokens=12)
LONG = " ".join(f"Line {i}: the starter rises overnight in a warm kitchen." for i in range(12))


def _chat(answer: str | None = None, question: str = "And then?") -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You answer briefly."},
                {"role": "user", "content": LONG}]
    if answer is not None:
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": question}]
    return messages


def _ask(engine: Engine, messages, conversation: str | None = None, settings=GREEDY):
    result = engine.generate(GenerationRequest(messages, settings, conversation)).wait()
    assert result.finish_reason in ("stop", "length"), result.error
    engine.run(lambda _model: None).result(60)  # caches are saved after the answer is out
    return result


def _files() -> list[Path]:
    return sorted(disk_cache.folder().glob("*.safetensors"))


def _engine(**kwargs) -> Engine:
    return Engine(prefill_step_size=64, **kwargs)


def test_a_chat_continues_after_a_restart_from_its_saved_cache(llama2_chat):
    with _engine() as first:
        first.load(llama2_chat).wait()
        turn1 = _ask(first, _chat(), "kitchen")
        assert turn1.cache_source == "none" and _files() == []  # saved when left, evicted or at exit
    assert len(_files()) == 1
    with _engine() as restarted:  # a fresh engine, as after a restart: no conversation in memory
        restarted.load(llama2_chat).wait()
        turn2 = _ask(restarted, _chat(turn1.text), "kitchen")
    assert turn2.cache_source == "disk"
    # The first prompt came from disk (the answer too, where its text encodes to the same ids).
    assert turn2.reused_tokens >= turn1.prompt_tokens
    with _engine(save_caches=False) as uncached:
        uncached.load(llama2_chat).wait()
        fresh = _ask(uncached, _chat(turn1.text))
    assert fresh.cache_source == "none" and fresh.reused_tokens == 0
    assert turn2.token_ids == fresh.token_ids  # the saved keys and values are the computed ones


def test_a_one_shot_request_is_saved_and_an_edited_turn_reuses_the_shared_part(llama2_chat):
    with _engine() as engine:
        engine.load(llama2_chat).wait()
        first = _ask(engine, _chat())  # no conversation: saved right after the answer
        assert len(_files()) == 1
        edited = _chat()
        edited[1]["content"] = LONG + " One more line."  # an edited last message
        again = _ask(engine, edited)
    assert again.cache_source == "disk"
    assert 0 < again.reused_tokens < first.prompt_tokens


def test_the_longest_saved_prefix_is_loaded_and_superseded_files_go(llama2_chat):
    with _engine() as engine:
        engine.load(llama2_chat).wait()
        short = _ask(engine, [{"role": "user", "content": "A different, short chat."}])
        turn1 = _ask(engine, _chat())
        turn2 = _ask(engine, _chat(turn1.text))
        assert turn2.cache_source == "disk"
        # turn 2's file holds turn 1's ids and more, so turn 1's file went; the short chat's stays.
        assert len(_files()) == 2
        turn3 = _ask(engine, _chat(turn1.text) + [{"role": "assistant", "content": turn2.text},
                                                   {"role": "user", "content": "Why?"}])
    assert turn3.cache_source == "disk" and turn3.reused_tokens >= turn2.prompt_tokens
    assert short.cache_source == "none"


def _fine_tune(model_copy) -> Path:
    """The same model with one weight changed: same shapes, same file size, same headers."""
    import mlx.core as mx

    folder = model_copy("spm_legacy", "fine-tuned")
    weights, metadata = mx.load(str(folder / "model.safetensors"), return_metadata=True)
    name = next(n for n in weights if n.endswith("embed_tokens.weight"))
    weights[name] = weights[name] + 1
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata)
    return folder


def test_a_cache_never_crosses_models(llama2_chat, model_copy, caplog):
    with _engine() as engine:
        engine.load(llama2_chat).wait()
        _ask(engine, _chat())
        saved = _files()
        assert len(saved) == 1
        engine.load(_fine_tune(model_copy)).wait()
        result = _ask(engine, _chat())  # the very same token ids, but another model's keys and values
        assert result.cache_source == "none" and result.reused_tokens == 0
        assert saved[0].exists()  # another model's cache is not this model's to delete
        # The same folder at another context length is another identity too.
        engine.load(llama2_chat, context_length=1024).wait()
        assert _ask(engine, _chat()).cache_source == "none"
        # A file named for this model but made by another is deleted, with one log line.
        engine.load(llama2_chat).wait()
        mine, digest = engine.disk.identity.key, engine.disk.identity.weights_digest
        foreign = next(p for p in _files() if not p.name.startswith(mine))
        for path in _files():
            if path.name.startswith(mine):
                path.unlink()
        impostor = foreign.with_name(mine + foreign.name[len(mine):])
        foreign.rename(impostor)
        with caplog.at_level(logging.WARNING, logger="engine.disk_cache"):
            result = _ask(engine, _chat())
    assert result.cache_source == "none"
    # The impostor went; the file by that name now is this model's own answer, saved after it.
    assert disk_cache._read_metadata(impostor)["0.weights_digest"] == digest
    lines = [r.getMessage() for r in caplog.records if r.name == "engine.disk_cache"]
    assert len(lines) == 1 and "another model" in lines[0]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "ids"])
def test_a_damaged_file_is_deleted_with_one_log_line(llama2_chat, caplog, damage):
    with _engine() as engine:
        engine.load(llama2_chat).wait()
        first = _ask(engine, _chat())
        (path,) = _files()
        data = path.read_bytes()
        if damage == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif damage == "garbage":
            path.write_bytes(os.urandom(len(data)))
        elif damage == "empty":
            path.write_bytes(b"")
        else:  # the label's token ids no longer match their digest
            path.write_bytes(data.replace(b'token_ids":"[1,', b'token_ids":"[9,', 1))
        with caplog.at_level(logging.WARNING, logger="engine.disk_cache"):
            again = _ask(engine, _chat())
    assert again.cache_source == "none" and again.token_ids == first.token_ids
    lines = [r.getMessage() for r in caplog.records if r.name == "engine.disk_cache"]
    assert len(lines) == 1 and "damaged" in lines[0]
    assert [p for p in _files() if p.stat().st_mtime_ns <= path.stat().st_mtime_ns] == [path]


def test_the_disk_budget_holds_and_the_least_recently_used_go_first(llama2_chat):
    def scenario(loaded):
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache

        def filled(ids):
            cache = make_prompt_cache(loaded.model)
            mx.eval(loaded.model(mx.array([ids]), cache=cache))
            return cache

        chats = {name: [1] + [10 * n + i for i in range(40)] for n, name in enumerate("ABCD", start=3)}
        probe = disk_cache.DiskCaches(engine.disk.identity, engine.disk.num_layers)
        one_file = probe.save(filled(chats["A"]), chats["A"]).stat().st_size
        disk = disk_cache.DiskCaches(engine.disk.identity, engine.disk.num_layers,
                                     budget_bytes=int(2.5 * one_file))
        disk.save(filled(chats["B"]), chats["B"])
        disk.save(filled(chats["C"]), chats["C"])  # over budget: A, the oldest, goes
        kept_before = {name for name, ids in chats.items() if disk.best(ids + [5])[0]}
        disk.load(disk.best(chats["B"] + [5])[0])  # B is used again: C is now the oldest
        disk.save(filled(chats["D"]), chats["D"])
        kept_after = {name for name, ids in chats.items() if disk.best(ids + [5])[0]}
        return kept_before, kept_after, disk_cache.total_bytes(), one_file

    with _engine() as engine:
        engine.load(llama2_chat).wait()
        kept_before, kept_after, total, one_file = engine.run(scenario).result(60)
    assert kept_before == {"B", "C"}
    assert kept_after == {"B", "D"}
    assert total <= 2.5 * one_file


def test_a_read_only_cache_folder_costs_only_the_saving(llama2_chat, caplog):
    folder = disk_cache.folder()
    with _engine() as engine:
        engine.load(llama2_chat).wait()
        os.chmod(folder, 0o555)
        try:
            if os.access(folder, os.W_OK):
                # As root, permissions do not stop writes: a file in the folder's place does.
                os.chmod(folder, 0o755)
                folder.rmdir()
                folder.write_text("not a folder")
            with caplog.at_level(logging.WARNING):
                first = _ask(engine, _chat(), "kitchen")
                second = _ask(engine, _chat(first.text), "kitchen")
                engine.leave("kitchen").wait()
        finally:
            if folder.is_file():
                folder.unlink()
            else:
                os.chmod(folder, 0o755)
    assert second.cache_source == "memory"
    assert len([r for r in caplog.records if r.name == "engine.disk_cache"]) == 1


def test_forgetting_a_conversation_deletes_its_saved_cache(llama2_chat):
    with _engine() as engine:
        engine.load(llama2_chat).wait()
        _ask(engine, [{"role": "user", "content": "Keep me."}], "kept")
        _ask(engine, _chat(), "secret")
        engine.leave("kept").wait()
        engine.leave("secret").wait()
        assert len(_files()) == 2
        engine.forget("secret").wait()
        assert len(_files()) == 1
    assert len(_files()) == 1  # leaving saved "kept" already; shutting down adds nothing


def _hearth(env, messages_file: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app.cli", "generate", *map(str, args), "--messages",
                             str(messages_file), "--json", "--temp", "0", "--max-tokens", "8"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _messages_file(tmp_path: Path, name: str, messages) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(messages), encoding="utf-8")
    return path


def test_two_processes_share_the_cache_folder(llama2_chat, hearth_home, tmp_path):
    """The app and the terminal at once: both save into the folder, then each continues from disk."""
    env = {**os.environ, "HEARTH_HOME": str(hearth_home)}
    chats = [_chat(), [{"role": "user", "content": LONG + " Summarise."}]]
    procs = [_hearth(env, _messages_file(tmp_path, f"chat{i}", chat), llama2_chat)
             for i, chat in enumerate(chats)]
    outputs = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert [out["cache_source"] for out in outputs] == ["none", "none"]
    folder = hearth_home / "cache" / disk_cache.FOLDER
    assert len(list(folder.glob("*.safetensors"))) == 2
    assert not list(folder.glob(disk_cache.TMP_PREFIX + "*"))
    follows = [chat + [{"role": "assistant", "content": out["text"]}, {"role": "user", "content": "More."}]
               for chat, out in zip(chats, outputs, strict=True)]
    procs = [_hearth(env, _messages_file(tmp_path, f"follow{i}", follow), llama2_chat)
             for i, follow in enumerate(follows)]
    for proc, out in zip(procs, outputs, strict=True):
        stdout, stderr = proc.communicate(timeout=120)
        result = json.loads(stdout)
        assert result["cache_source"] == "disk", stderr
        assert result["reused_tokens"] >= out["prompt_tokens"]


def test_settings_data_shows_the_saved_caches_clears_them_and_keeps_the_budget(qtbot, llama2_chat):
    from PySide6.QtCore import Qt

    from app.gui import background
    from app.gui.settings.data_page import DataPage
    from engine.history import HistoryStore

    with _engine() as engine:
        engine.load(llama2_chat).wait()
        _ask(engine, _chat())
    size = _files()[0].stat().st_size
    store = HistoryStore()
    try:
        page = DataPage(store)
        qtbot.addWidget(page)
        page.show()
        page.reload()
        settled = lambda: qtbot.waitUntil(lambda: background.active_jobs() == 0, timeout=15_000)  # noqa: E731
        settled()
        assert f"{size / 1e9:.2f} GB" in page.kv_size.text()
        assert page.kv_budget.value() == disk_cache.DEFAULT_BUDGET_BYTES / 1e9  # 10 GB by default
        page.kv_budget.setValue(2.5)
        page.kv_budget.editingFinished.emit()
        settled()
        assert disk_cache.read_budget() == 2_500_000_000
        qtbot.mouseClick(page.kv_clear, Qt.MouseButton.LeftButton)
        settled()
        assert _files() == [] and "Cleared" in page.banner.text()
        assert page.kv_size.text().startswith("0.00 GB")
    finally:
        store.close()


def test_a_file_evicted_by_another_process_while_being_found_is_a_plain_miss(llama2_chat, caplog):
    with _engine() as engine:
        engine.load(llama2_chat).wait()
        _ask(engine, _chat())

        def race(_loaded):
            (saved,) = engine.disk.saved()
            saved.path.unlink()  # the other process's eviction, between finding and reading
            return engine.disk.load(saved)

        with caplog.at_level(logging.WARNING, logger="engine.disk_cache"):
            restored = engine.run(race).result(60)
    assert restored is None
    assert [r for r in caplog.records if r.name == "engine.disk_cache"] == []
