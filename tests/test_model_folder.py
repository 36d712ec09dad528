"""Model folders and cached repo ids: validation before loading, with one specific error per problem.

Every case uses real files on disk (real safetensors, real pickles, a real Hugging Face cache layout)
and is checked twice: by resolve_model directly, and through Engine.load, where the error must arrive
as a Finished event and leave the engine usable.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import runpy
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import tiny_models

from engine.engine import Engine
from engine.errors import (
    ConfigError,
    LegacyNpzLayout,
    MissingTokenizer,
    ModelFolderError,
    ModelNotFound,
    NoSafetensors,
    PickleWeights,
    UnsupportedModelType,
    WeightsMismatch,
)
from engine.generation import GenerationRequest
from engine.model_folder import ModelInfo, resolve_model
from engine.sampling import SamplingSettings

GOOD = "spm_legacy"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
GREEDY = SamplingSettings(temperature=0.0, max_tokens=8)
QUESTION = [{"role": "user", "content": "Hello there, who are you?"}]


# --------------------------------------------------------------------------- helpers


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _edit_config(folder: Path, drop: tuple[str, ...] = (), **changes) -> Path:
    config = _read_json(folder / "config.json")
    for key in drop:
        del config[key]
    config.update(changes)
    _write_json(folder / "config.json", config)
    return folder


def _pickle_trap(marker: Path) -> bytes:
    """A real pickle whose unpickling creates `marker` (as a malicious pytorch_model.bin would)."""

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps({"model.embed_tokens.weight": Payload()})


def _code_trap(marker: Path) -> str:
    """Python source that creates `marker` as soon as it is imported or executed."""
    return f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"


def _shard(folder: Path) -> list[str]:
    """Split model.safetensors into two shards with an index, as big models are published."""
    import mlx.core as mx

    weights = mx.load(str(folder / "model.safetensors"))
    names = sorted(weights)
    shards = {
        "model-00001-of-00002.safetensors": names[: len(names) // 2],
        "model-00002-of-00002.safetensors": names[len(names) // 2 :],
    }
    weight_map = {}
    for shard, shard_names in shards.items():
        mx.save_safetensors(str(folder / shard), {n: weights[n] for n in shard_names}, {"format": "mlx"})
        weight_map.update(dict.fromkeys(shard_names, shard))
    total = sum(a.nbytes for a in weights.values())
    _write_json(
        folder / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": weight_map},
    )
    (folder / "model.safetensors").unlink()
    return list(shards)


def _tensor_bytes(folder: Path) -> int:
    import mlx.core as mx

    return sum(
        a.nbytes for f in sorted(folder.glob("model*.safetensors")) for a in mx.load(str(f)).values()
    )


def _hub_cache() -> Path:
    # The autouse fixture points HF_HOME at a fresh temporary folder for every test.
    return Path(os.environ["HF_HOME"]) / "hub"


def _install_in_hf_cache(
    source: Path, repo_id: str, commit: str = COMMIT, *, refs: tuple[str, ...] = ("main",),
    symlinks: bool = True,
) -> Path:
    """Lay `source` out in the hub cache as huggingface_hub does: blobs, snapshots/<commit>, refs."""
    repo = _hub_cache() / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(source.iterdir()):
        if not symlinks:
            shutil.copy2(file, snapshot / file.name)
            continue
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)  # no newline, like huggingface_hub
    return snapshot


def _answer(engine: Engine) -> list[int]:
    done = engine.generate(GenerationRequest(QUESTION, GREEDY)).wait()
    assert done.finish_reason in ("stop", "length"), done.error
    assert done.token_ids
    return done.token_ids


@pytest.fixture(scope="session")
def reference_answer(engine_llama2) -> list[int]:
    """Greedy token ids of the good model, from an engine that never saw an error."""
    return _answer(engine_llama2)


@pytest.fixture(scope="module")
def unquantized(tmp_path_factory) -> Path:
    return tiny_models.build_model(tmp_path_factory.mktemp("fp") / "fp-model", GOOD, quantize=False)


@pytest.fixture
def network_attempts(monkeypatch) -> list:
    """Make every way out to the network fail, and record the attempts (even swallowed ones)."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted by an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(OSError, match="offline test"):
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(OSError, match="offline test"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 9))
    attempts.clear()
    return attempts


# ------------------------------------------------------------------ the bad folders


def _no_config(copy, tmp):
    folder = copy()
    (folder / "config.json").unlink()
    return folder


def _config_not_json(copy, tmp):
    folder = copy()
    (folder / "config.json").write_text('{"model_type": "llama",\n  "hidden_size": 64,,}')
    return folder


def _config_is_a_directory(copy, tmp):
    folder = copy()
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    return folder


def _config_dangling_link(copy, tmp):
    folder = copy()
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(tmp / "gone" / "config.json")
    return folder


def _config_not_utf8(copy, tmp):
    folder = copy()
    (folder / "config.json").write_bytes(b'{"model_type": "\xff\xfe llama"}')
    return folder


def _config_is_a_list(copy, tmp):
    folder = copy()
    _write_json(folder / "config.json", [{"model_type": "llama"}])
    return folder


def _no_model_type(copy, tmp):
    return _edit_config(copy(), drop=("model_type",))


def _bert(copy, tmp):
    return _edit_config(copy(), model_type="bert")


def _mamba(copy, tmp):
    return _edit_config(copy(), model_type="mamba")


def _no_weights(copy, tmp):
    folder = copy()
    (folder / "model.safetensors").unlink()
    return folder


def _foreign_safetensors_name(copy, tmp):
    folder = copy()
    (folder / "model.safetensors").rename(folder / "weights.safetensors")
    return folder


def _legacy(with_model_type: bool):
    def make(copy, tmp):
        import mlx.core as mx

        folder = tmp / f"llama-2-7b-chat-npz-{with_model_type}"
        folder.mkdir()
        params = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 512,
                  "norm_eps": 1e-5}
        if with_model_type:
            params["model_type"] = "llama"
        _write_json(folder / "config.json", params)
        mx.savez(str(folder / "weights.npz"), **{"tok_embeddings.weight": mx.zeros((512, 64))})
        tiny_models.train_sentencepiece(folder)
        return folder

    return make


def _pickle_only(copy, tmp):
    folder = copy()
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(_pickle_trap(tmp / "unpickled.marker"))
    return folder


def _no_tokenizer(copy, tmp):
    folder = copy()
    (folder / "tokenizer.model").unlink()
    return folder


def _more_layers_in_config(copy, tmp):
    return _edit_config(copy(), num_hidden_layers=3)


def _fewer_layers_in_config(copy, tmp):
    return _edit_config(copy(), num_hidden_layers=1)


def _other_vocab_size(copy, tmp):
    return _edit_config(copy(), vocab_size=600)


def _other_hidden_size(copy, tmp):
    return _edit_config(copy(), hidden_size=128)


def _other_kv_heads(copy, tmp):
    return _edit_config(copy(), num_key_value_heads=4)


def _truncated_in_half(copy, tmp):
    folder = copy()
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    return folder


def _truncated_in_header(copy, tmp):
    folder = copy()
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return folder


def _missing_shard(copy, tmp):
    folder = copy()
    shards = _shard(folder)
    (folder / shards[1]).unlink()
    return folder


def _custom_model_file(copy, tmp):
    folder = _edit_config(copy(), model_file="custom.py")
    (folder / "custom.py").write_text(_code_trap(tmp / "custom_code.marker"))
    return folder


def _tokenizer_auto_map(list_form: bool):
    def make(copy, tmp):
        folder = copy()
        tok_config = _read_json(folder / "tokenizer_config.json")
        classes = ["tokenization_evil.EvilTokenizer", None]
        tok_config["auto_map"] = classes if list_form else {"AutoTokenizer": classes}
        _write_json(folder / "tokenizer_config.json", tok_config)
        (folder / "tokenization_evil.py").write_text(_code_trap(tmp / "custom_code.marker"))
        return folder

    return make


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Callable[..., Path], Path], Path]
    error: type[ModelFolderError]
    says: tuple[str, ...]  # all must appear in the message (case-insensitive)


CASES = [
    Case("no_config", _no_config, ConfigError, ("no config.json",)),
    Case("config_not_json", _config_not_json, ConfigError, ("not valid JSON", "line 2")),
    Case("config_is_a_directory", _config_is_a_directory, ConfigError,
         ("config.json", "cannot be read", "is a directory")),
    Case("config_dangling_link", _config_dangling_link, ConfigError,
         ("config.json", "cannot be read", "no such file")),
    Case("config_not_utf8", _config_not_utf8, ConfigError, ("cannot be read", "not UTF-8")),
    Case("config_is_a_list", _config_is_a_list, ConfigError, ("not a JSON object",)),
    Case("no_model_type", _no_model_type, ConfigError, ("model_type",)),
    Case("bert", _bert, UnsupportedModelType, ("'bert'", "Llama-family")),
    Case("mamba", _mamba, UnsupportedModelType, ("'mamba'", "Llama-family")),
    Case("no_weights", _no_weights, NoSafetensors, ("no weights", "model*.safetensors")),
    Case("foreign_safetensors_name", _foreign_safetensors_name, NoSafetensors,
         ("weights.safetensors", "model*.safetensors")),
    Case("legacy_npz", _legacy(True), LegacyNpzLayout, ("weights.npz", "old MLX layout", "safetensors")),
    Case("legacy_npz_no_model_type", _legacy(False), LegacyNpzLayout, ("weights.npz", "old MLX layout")),
    Case("pickle_only", _pickle_only, PickleWeights, ("pytorch_model.bin", "pickle", "never")),
    Case("no_tokenizer", _no_tokenizer, MissingTokenizer, ("no tokenizer", "tokenizer.json", "tokenizer.model")),
    Case("more_layers_in_config", _more_layers_in_config, WeightsMismatch, ("have 2 layers", "says 3")),
    Case("fewer_layers_in_config", _fewer_layers_in_config, WeightsMismatch, ("have 2 layers", "says 1")),
    Case("other_vocab_size", _other_vocab_size, WeightsMismatch, ("vocab_size 600", "512 x")),
    Case("other_hidden_size", _other_hidden_size, WeightsMismatch, ("hidden_size 128",)),
    Case("other_kv_heads", _other_kv_heads, WeightsMismatch, ("num_key_value_heads 4", "k_proj")),
    Case("truncated_in_half", _truncated_in_half, WeightsMismatch, ("model.safetensors", "truncated")),
    Case("truncated_in_header", _truncated_in_header, WeightsMismatch, ("model.safetensors", "truncated")),
    Case("missing_shard", _missing_shard, WeightsMismatch,
         ("incomplete", "model-00002-of-00002.safetensors", "model.safetensors.index.json")),
    Case("custom_model_file", _custom_model_file, ModelFolderError,
         ("custom.py", "never runs code")),
    Case("tokenizer_auto_map", _tokenizer_auto_map(False), ModelFolderError,
         ("AutoTokenizer", "tokenization_evil.EvilTokenizer", "never runs code")),
    Case("tokenizer_auto_map_list_form", _tokenizer_auto_map(True), ModelFolderError,
         ("AutoTokenizer", "tokenization_evil.EvilTokenizer", "never runs code")),
]


def _check_message(message: str, case: Case) -> None:
    for fragment in case.says:
        assert fragment.lower() in message.lower(), f"{case.id}: {fragment!r} not in {message!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_bad_folder_has_its_own_error(case, model_copy, tmp_path):
    folder = case.make(model_copy, tmp_path)
    with pytest.raises(ModelFolderError) as caught:
        resolve_model(folder)
    assert type(caught.value) is case.error, f"{case.id}: {type(caught.value).__name__}: {caught.value}"
    _check_message(str(caught.value), case)
    assert not list(tmp_path.glob("*.marker")), "validation ran code shipped with the model"


def test_every_error_class_is_exercised():
    """The table above covers every specific error the issue asks for."""
    covered = {c.error for c in CASES}
    assert covered >= {ConfigError, UnsupportedModelType, NoSafetensors, LegacyNpzLayout,
                       PickleWeights, MissingTokenizer, WeightsMismatch, ModelFolderError}


def test_bad_folders_through_the_engine_then_the_engine_still_works(
    model_copy, tmp_path, tiny, reference_answer
):
    with Engine(prefill_step_size=64) as engine:
        assert engine.load(tiny[GOOD]).wait().finish_reason == "done"  # errors hit a busy engine
        for case in CASES:
            scratch = tmp_path / case.id
            scratch.mkdir()

            def copy(variant=GOOD, name=f"{case.id}-model"):
                return model_copy(variant, name)

            folder = case.make(copy, scratch)
            with pytest.raises(ModelFolderError) as caught:
                resolve_model(folder)
            done = engine.load(folder).wait(timeout=60)
            assert done.finish_reason == "error", case.id
            assert done.error_kind == case.error.__name__, f"{case.id}: {done.error}"
            assert done.error == str(caught.value)
            assert not list(scratch.glob("*.marker")), f"{case.id}: code shipped with the model ran"
        assert engine.load(tiny[GOOD]).wait().finish_reason == "done"
        assert _answer(engine) == reference_answer


def test_weights_that_only_the_full_load_can_check_are_a_weights_mismatch(model_copy):
    """intermediate_size is not checked from headers; mlx-lm's strict load must still refuse it."""
    folder = _edit_config(model_copy(), intermediate_size=256)
    with Engine() as engine:
        done = engine.load(folder).wait()
        assert done.finish_reason == "error"
        assert done.error_kind == "WeightsMismatch"
        assert folder.name in done.error and "do not match config.json" in done.error
        assert engine.loaded is None


def test_hidden_size_is_checked_for_unquantized_weights_too(unquantized, tmp_path):
    info = resolve_model(unquantized)
    assert info.quantization is None
    assert info.weight_bytes == _tensor_bytes(unquantized)
    folder = tmp_path / "fp-wrong-hidden"
    shutil.copytree(unquantized, folder)
    _edit_config(folder, hidden_size=96, num_attention_heads=6)
    with pytest.raises(WeightsMismatch, match="hidden_size 96 call for 512 x 96"):
        resolve_model(folder)


# ----------------------------------------------------------- code is never run


def test_pickle_weights_are_never_unpickled(model_copy, tmp_path):
    marker = tmp_path / "unpickled.marker"
    folder = _pickle_only(model_copy, tmp_path)
    with pytest.raises(PickleWeights):
        resolve_model(folder)
    with Engine() as engine:
        done = engine.load(folder).wait()
    assert done.finish_reason == "error" and done.error_kind == "PickleWeights"
    assert not marker.exists()
    # The trap is live: unpickling that very file does create the marker.
    pickle.loads((folder / "pytorch_model.bin").read_bytes())["model.embed_tokens.weight"].close()
    assert marker.exists()


def test_a_pickle_next_to_safetensors_is_ignored(model_copy, tmp_path, reference_answer):
    marker = tmp_path / "unpickled.marker"
    folder = model_copy()
    (folder / "pytorch_model.bin").write_bytes(_pickle_trap(marker))
    assert resolve_model(folder).weight_bytes == _tensor_bytes(folder)
    with Engine() as engine:
        assert engine.load(folder).wait().finish_reason == "done"
        assert _answer(engine) == reference_answer
    assert not marker.exists()


@pytest.mark.parametrize(
    "make, code_file",
    [(_custom_model_file, "custom.py"), (_tokenizer_auto_map(False), "tokenization_evil.py")],
    ids=["model_file", "tokenizer_auto_map"],
)
def test_code_shipped_with_a_model_never_runs(make, code_file, model_copy, tmp_path):
    marker = tmp_path / "custom_code.marker"
    folder = make(model_copy, tmp_path)
    with pytest.raises(ModelFolderError, match="never runs code"):
        resolve_model(folder)
    with Engine() as engine:
        done = engine.load(folder).wait()
    assert done.finish_reason == "error" and "never runs code" in done.error
    assert not marker.exists()
    runpy.run_path(str(folder / code_file))  # the trap is live
    assert marker.exists()


# ------------------------------------------------------------- good folders


def test_model_info_of_a_good_tiny_model(tiny):
    import mlx.core as mx

    folder = tiny[GOOD]
    info = resolve_model(folder)
    config = _read_json(folder / "config.json")
    weights = mx.load(str(folder / "model.safetensors"))
    assert isinstance(info, ModelInfo)
    assert info.path == folder.resolve() and info.name == folder.name
    assert info.repo_id is None and info.revision is None and info.source == str(folder.resolve())
    assert info.model_type == "llama"
    assert info.weight_bytes == sum(a.nbytes for a in weights.values())
    assert (info.num_layers, info.num_kv_heads, info.head_dim) == (
        config["num_hidden_layers"], config["num_key_value_heads"],
        config["hidden_size"] // config["num_attention_heads"],
    ) == (2, 2, 16)
    assert info.vocab_size == config["vocab_size"] == 512
    assert info.kv_bytes_per_value == weights["model.norm.weight"].dtype.size
    assert info.kv_bytes_per_token == 2 * 2 * 2 * 16 * info.kv_bytes_per_value
    assert info.max_context == 4096 and info.default_context == 4096
    assert info.quantization == {"bits": 4, "group_size": 32}
    assert info.chat_template == tiny_models.LLAMA2_CHAT_TEMPLATE
    assert info.has_sentencepiece and not info.has_tokenizer_json


def test_model_info_of_each_tokenizer_layout(tiny):
    for variant, folder in tiny.items():
        info = resolve_model(folder)
        files = tiny_models.TOKENIZER_FILES[variant]
        assert info.has_sentencepiece == ("tokenizer.model" in files), variant
        assert info.has_tokenizer_json == ("tokenizer.json" in files), variant
        assert info.weight_bytes == _tensor_bytes(folder), variant


def test_sharded_weights_are_summed_across_shards(model_copy, tiny, reference_answer):
    folder = model_copy()
    whole = resolve_model(tiny[GOOD]).weight_bytes
    _shard(folder)
    assert not (folder / "model.safetensors").exists()
    assert resolve_model(folder).weight_bytes == whole == _tensor_bytes(folder)
    with Engine() as engine:
        assert engine.load(folder).wait().finish_reason == "done"
        assert _answer(engine) == reference_answer


def test_resolve_accepts_str_and_path_with_spaces(model_copy):
    folder = model_copy(name="my model folder")
    assert resolve_model(str(folder)).path == resolve_model(folder).path == folder.resolve()
    assert resolve_model(f"  {folder}  ").name == "my model folder"


# ----------------------------------------------------------------- what is named


def test_a_path_that_does_not_exist_is_model_not_found(tmp_path):
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(ModelNotFound, match="No model folder at"):
        resolve_model(missing)
    with pytest.raises(ModelNotFound, match="No model given"):
        resolve_model("   ")


def test_a_file_is_not_a_model_folder(tiny):
    with pytest.raises(ModelFolderError, match="is a file, not a model folder"):
        resolve_model(tiny[GOOD] / "config.json")


def test_a_repo_id_not_in_the_cache_is_not_downloaded():
    with pytest.raises(ModelNotFound) as caught:
        resolve_model("someone/never-downloaded")
    message = str(caught.value)
    assert "someone/never-downloaded" in message and "not downloaded" in message
    assert str(_hub_cache()) in message


# -------------------------------------------------------------------- repo ids


@pytest.mark.parametrize("symlinks", [True, False], ids=["blob_links", "plain_files"])
def test_a_cached_repo_id_resolves_offline(symlinks, tiny, network_attempts, monkeypatch):
    from huggingface_hub import constants

    # Even with huggingface_hub's offline switch off, nothing may go online.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    snapshot = _install_in_hf_cache(tiny[GOOD], "tiny-org/tiny-llama", symlinks=symlinks)
    assert (snapshot / "model.safetensors").is_symlink() == symlinks

    info = resolve_model("tiny-org/tiny-llama")
    assert info.repo_id == "tiny-org/tiny-llama" and info.name == "tiny-org/tiny-llama"
    assert info.revision == COMMIT
    assert info.path == snapshot.resolve()
    assert info.source == f"tiny-org/tiny-llama@{COMMIT}"
    assert info.weight_bytes == resolve_model(tiny[GOOD]).weight_bytes

    pinned = resolve_model(f"tiny-org/tiny-llama@{COMMIT}")
    assert (pinned.path, pinned.revision, pinned.repo_id) == (info.path, COMMIT, "tiny-org/tiny-llama")
    assert network_attempts == []


def test_errors_in_a_cached_repo_name_the_repo_not_the_commit(tiny):
    snapshot = _install_in_hf_cache(tiny[GOOD], "tiny-org/tiny-llama", symlinks=False)
    _edit_config(snapshot, model_type="bert")
    with pytest.raises(UnsupportedModelType) as caught:
        resolve_model("tiny-org/tiny-llama")
    assert str(caught.value).startswith("tiny-org/tiny-llama is a 'bert' model")
    assert COMMIT not in str(caught.value)


def test_a_repo_id_revision_picks_that_snapshot(tiny):
    old = _install_in_hf_cache(tiny["spm_bare"], "tiny-org/tiny-llama", OTHER_COMMIT, refs=("v1",))
    new = _install_in_hf_cache(tiny[GOOD], "tiny-org/tiny-llama", COMMIT, refs=("main",))
    assert resolve_model("tiny-org/tiny-llama").path == new.resolve()
    by_tag = resolve_model("tiny-org/tiny-llama@v1")
    assert by_tag.path == old.resolve() and by_tag.revision == OTHER_COMMIT
    assert by_tag.chat_template is None  # spm_bare: the v1 snapshot, not main
    by_hash = resolve_model(f"tiny-org/tiny-llama@{OTHER_COMMIT}")
    assert by_hash.path == old.resolve()
    with pytest.raises(ModelNotFound, match="not downloaded"):
        resolve_model("tiny-org/tiny-llama@" + "a" * 40)
    with pytest.raises(ModelNotFound, match="not downloaded"):
        resolve_model("tiny-org/tiny-llama@no-such-branch")


def test_a_cached_repo_loads_and_generates_without_the_network(
    tiny, network_attempts, monkeypatch, reference_answer
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    _install_in_hf_cache(tiny[GOOD], "tiny-org/tiny-llama")
    loaded = []
    with Engine(prefill_step_size=64) as engine:
        done = engine.load("tiny-org/tiny-llama", on_event=loaded.append).wait(timeout=120)
        assert done.finish_reason == "done", done.error
        assert _answer(engine) == reference_answer
    sources = [e.source for e in loaded if type(e).__name__ == "ModelLoaded"]
    assert sources == [f"tiny-org/tiny-llama@{COMMIT}"]
    assert network_attempts == []


@pytest.mark.parametrize("with_index", [True, False], ids=["index", "no_index"])
def test_a_cached_repo_with_a_missing_blob_is_reported(with_index, tiny):
    snapshot = _install_in_hf_cache(tiny[GOOD], "tiny-org/tiny-llama")
    if not with_index:
        (snapshot / "model.safetensors.index.json").unlink()
    (snapshot / "model.safetensors").resolve().unlink()  # the blob, not the link
    expected = (
        r"tiny-org/tiny-llama is incomplete: 1 weight file\(s\) listed in "
        r"model.safetensors.index.json are missing \(model.safetensors\)"
        if with_index
        else r"model.safetensors cannot be read \(No such file or directory\); the file or the blob"
    )
    with pytest.raises(WeightsMismatch, match=expected):
        resolve_model("tiny-org/tiny-llama")
    with Engine() as engine:
        done = engine.load("tiny-org/tiny-llama").wait()
    assert done.finish_reason == "error" and done.error_kind == "WeightsMismatch"
    assert COMMIT not in done.error


def test_a_cached_repo_with_a_missing_config_blob_is_reported(tiny):
    snapshot = _install_in_hf_cache(tiny[GOOD], "tiny-org/tiny-llama")
    (snapshot / "config.json").resolve().unlink()
    with pytest.raises(ConfigError, match="config.json in tiny-org/tiny-llama cannot be read"):
        resolve_model("tiny-org/tiny-llama")


def test_an_unfinished_download_is_named_as_such(tiny):
    """huggingface_hub records the file list of a download; a snapshot missing files is refused."""
    tree_cache = pytest.importorskip("huggingface_hub._tree_cache")
    snapshot = _install_in_hf_cache(tiny[GOOD], "tiny-org/tiny-llama")
    entries = {
        f.name: tree_cache.TreeCacheEntry(size=f.stat().st_size, blob_id=f"{i:040x}")
        for i, f in enumerate(sorted(snapshot.iterdir()))
    }
    tree_cache.write_tree_cache(str(snapshot.parent.parent), COMMIT, entries)
    assert resolve_model("tiny-org/tiny-llama").revision == COMMIT  # complete: fine
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(ModelNotFound) as caught:
        resolve_model("tiny-org/tiny-llama")
    assert "did not finish" in str(caught.value) and "model.safetensors" in str(caught.value)


def test_a_local_folder_wins_over_a_repo_id_of_the_same_spelling(tiny, tmp_path, monkeypatch):
    local = tmp_path / "tiny-org" / "tiny-llama"
    shutil.copytree(tiny[GOOD], local)
    monkeypatch.chdir(tmp_path)
    info = resolve_model("tiny-org/tiny-llama")  # nothing in the cache: it is the folder
    assert info.path == local.resolve() and info.repo_id is None


# ------------------------------------------------------------ safetensors headers


def _safetensors(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def test_headers_give_the_same_sizes_as_mlx(tiny):
    import mlx.core as mx

    from engine import safetensors_header

    file = tiny[GOOD] / "model.safetensors"
    infos = safetensors_header.read_header(file)
    arrays = mx.load(str(file))
    assert set(infos) == set(arrays)
    for name, array in arrays.items():
        assert infos[name].shape == tuple(array.shape), name
        assert infos[name].nbytes == array.nbytes, name


@pytest.mark.parametrize(
    "header, data, says",
    [
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}, bytes(16),
         "'w' claims 8 bytes, but a F32 tensor of shape [2, 2] takes 16"),
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, bytes(8),
         "is truncated: tensor 'w' ends at byte 16 but the file holds 8 bytes"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": ["zero", 8]}}, bytes(8),
         "'w' has a malformed entry"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8),
         "'w' has a malformed entry"),
        ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), "'w' has a malformed entry"),
        (["not", "a", "map"], b"", "header is not a map"),
    ],
    ids=["size_disagrees_with_shape", "data_cut_short", "offset_not_a_number", "offsets_reversed",
         "no_offsets", "header_not_a_map"],
)
def test_damaged_safetensors_headers(header, data, says, tmp_path):
    from engine import safetensors_header

    file = _safetensors(tmp_path / "model.safetensors", header, data)
    with pytest.raises(WeightsMismatch) as caught:
        safetensors_header.read_header(file)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    "content, says",
    [(b"", "empty or truncated (0 bytes)"), (b"\xff" * 8 + b"{}", "not a valid safetensors file"),
     (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ", "cannot be read as safetensors")],
    ids=["empty", "absurd_header_length", "header_not_json"],
)
def test_files_that_are_not_safetensors(content, says, tmp_path):
    from engine import safetensors_header

    file = tmp_path / "model.safetensors"
    file.write_bytes(content)
    with pytest.raises(WeightsMismatch, match=re.escape(says)):
        safetensors_header.read_header(file)


def test_a_cached_file_that_does_not_match_its_hash_is_refused_when_loaded(tiny):
    """Another tool left a same-size but damaged blob: the listing refuses it, and so does loading
    it by repo id (`hearth chat REPO`), before any weight is read."""
    snapshot = _install_in_hf_cache(tiny[GOOD], "tiny-org/tiny-llama")
    assert resolve_model("tiny-org/tiny-llama").repo_id == "tiny-org/tiny-llama"
    blob = (snapshot / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF  # one byte in the weights, the size unchanged
    blob.write_bytes(bytes(data))
    with pytest.raises(WeightsMismatch, match="damaged: model.safetensors does not match its SHA-256"):
        resolve_model("tiny-org/tiny-llama")
    with Engine() as engine:
        done = engine.load("tiny-org/tiny-llama").wait()
    assert done.finish_reason == "error" and "hearth download tiny-org/tiny-llama" in done.error
