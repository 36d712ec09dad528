"""The model library: what is in the standard Hugging Face cache (as mlx-lm or the Hugging Face CLI
left it), imported folders and converted models; details, delete, reveal, import, default, last use.
Offline throughout: the cache layouts are written here by hand, exactly as huggingface_hub writes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from engine import errors, paths
from engine.library import downloads, hub_cache, library, state
from engine.library.downloads import RemoteFile, choose_files, only_indexed_shards, unusable_reason
from engine.model_folder import hub_cache_dir, resolve_model, validate_folder

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(repo_id: str, files: dict[str, bytes] | Path, commit: str = COMMIT, ref: bool = True) -> Path:
    """Write a repo into the HF cache as huggingface_hub does: blobs named by etag (sha256 for LFS
    files, git sha1 otherwise), snapshots/<commit>/<file> -> ../../blobs/<etag>, refs/main."""
    if isinstance(files, Path):
        files = {p.name: p.read_bytes() for p in files.iterdir() if p.is_file()}
    repo = hub_cache.repo_folder(repo_id)
    for name, data in files.items():
        blob = repo / "blobs" / etag_of(name, data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(blob, link.parent))
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
    return repo


def etag_of(name: str, data: bytes) -> str:
    """sha256 for files the Hub stores with LFS, the git blob sha1 otherwise."""
    if name.endswith((".safetensors", ".model", ".bin", ".gguf", ".npz")):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def blob_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "blobs").iterdir())


def model_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def hf_cache(monkeypatch, tmp_path) -> Path:
    """The HF cache under the test's HF_HOME (set by the autouse fixture)."""
    cache = hub_cache_dir()
    assert str(cache).startswith(str(tmp_path))
    return cache


# ---------------------------------------------------------------------------------- listing


def test_models_in_the_hf_cache_are_listed_with_their_details(hf_cache, tiny):
    cache_repo("mlx-community/llama2-tiny", tiny["spm_legacy"])
    cache_repo("mlx-community/llama3-tiny", tiny["bpe_llama3"])
    # Models of other libraries share the cache; Hearth does not list them.
    cache_repo("meta-llama/Llama-2-7b-hf", {"config.json": b'{"model_type": "llama"}',
                                            "pytorch_model.bin": b"\0" * 100})
    cache_repo("TheBloke/Llama-2-7B-GGUF", {"llama-2-7b.Q4_0.gguf": b"GGUF" + b"\0" * 100})
    models = library.installed_models()
    assert [m.ref for m in models] == ["mlx-community/llama2-tiny", "mlx-community/llama3-tiny"]
    for model, variant in zip(models, ["spm_legacy", "bpe_llama3"], strict=True):
        info = validate_folder(tiny[variant])
        assert model.usable and model.problem is None and model.kind == "hub"
        assert model.name == model.ref
        assert model.path == hf_cache / f"models--{model.ref.replace('/', '--')}" / "snapshots" / COMMIT
        assert model.parameters == info.parameters and model.parameters > 0
        assert model.quantization == "4-bit (group 32)"
        assert model.context == 4096
        assert model.size_bytes == blob_bytes(hub_cache.repo_folder(model.ref))
        assert model.size_bytes == sum(p.stat().st_size for p in tiny[variant].iterdir())
        assert model.last_used is None and not model.is_default
        assert model.fit().verdict in ("fits", "tight", "too_large")
        assert model.info.repo_id == model.ref and model.info.revision == COMMIT


def test_an_empty_or_missing_cache_lists_nothing(hf_cache):
    assert not hf_cache.exists()
    assert library.installed_models() == []
    with pytest.raises(library.LibraryError, match="is not in the library"):
        library.find("mlx-community/nothing")


def test_usable_models_come_first_then_by_name(hf_cache, tiny):
    cache_repo("org/b-model", tiny["spm_legacy"])
    broken = model_files(tiny["spm_legacy"])
    del broken["tokenizer.model"]
    cache_repo("org/a-broken", broken)
    cache_repo("org/C-model", tiny["spm_json"])
    models = library.installed_models()
    assert [(m.ref, m.usable) for m in models] == [("org/b-model", True), ("org/C-model", True),
                                                    ("org/a-broken", False)]
    assert "has no tokenizer" in models[-1].problem


def test_a_partial_or_unverified_model_is_never_usable(hf_cache, tiny):
    files = model_files(tiny["spm_legacy"])
    # Every file in place, but Hearth's record says the download was paused: not usable.
    cache_repo("org/paused", files)
    with state.editing() as data:
        data["downloads"]["org/paused"] = {"state": "paused", "done_bytes": 500, "total_bytes": 1000,
                                           "commit": COMMIT}
    # Truncated weights (a download cut short by another tool): the header promises more bytes.
    cut = dict(files, **{"model.safetensors": files["model.safetensors"][:-100]})
    cache_repo("org/truncated", cut)
    # No refs/main: a snapshot that is still being filled.
    cache_repo("org/no-ref-no-weights", {k: v for k, v in files.items() if k != "model.safetensors"},
               ref=False)
    by_ref = {m.ref: m for m in library.installed_models()}
    assert not by_ref["org/paused"].usable
    assert by_ref["org/paused"].problem == "download paused (50%): resume it to use this model"
    assert by_ref["org/paused"].info is None
    assert not by_ref["org/truncated"].usable and "truncated" in by_ref["org/truncated"].problem
    assert "org/no-ref-no-weights" not in by_ref  # not recognisably an mlx model yet
    with pytest.raises(library.LibraryError, match="cannot be the default: download paused"):
        library.set_default("org/paused")


def test_an_unfinished_download_shows_the_share_on_disk(hf_cache, tiny):
    files = model_files(tiny["spm_legacy"])
    weights = files["model.safetensors"]
    sha = hashlib.sha256(weights).hexdigest()
    repo = cache_repo("org/half", {k: v for k, v in files.items() if k != "model.safetensors"}, ref=False)
    (repo / "blobs" / (sha + ".incomplete")).write_bytes(weights[: len(weights) // 2])
    others = sum(len(v) for k, v in files.items() if k != "model.safetensors")
    blobs = [[etag_of(k, v), len(v)] for k, v in files.items()]
    total = sum(len(v) for v in files.values())
    with state.editing() as data:  # as a killed `hearth download` leaves it: recorded at its start
        data["downloads"]["org/half"] = {"state": "downloading", "done_bytes": 0, "total_bytes": total,
                                         "commit": COMMIT, "blobs": blobs}
    model = library.find("org/half")
    expected = 100 * (others + len(weights) // 2) // total
    assert model.problem == f"download not finished ({expected}%): resume it to use this model"
    assert 0 < expected < 100
    assert model.size_bytes == blob_bytes(repo)  # partial bytes take space too


def test_a_stray_unlisted_weights_file_is_refused(hf_cache, tiny, tmp_path):
    files = model_files(tiny["spm_legacy"])
    files["model-7b.safetensors"] = files["model.safetensors"]  # not in model.safetensors.index.json
    cache_repo("org/stray", files)
    model = library.find("org/stray")
    assert not model.usable and "model-7b.safetensors" in model.problem
    assert "stray weights file" in model.problem
    folder = tmp_path / "stray-folder"
    shutil.copytree(tiny["spm_legacy"], folder)
    shutil.copy(folder / "model.safetensors", folder / "model-7b.safetensors")
    with pytest.raises(errors.WeightsMismatch, match="stray weights file"):
        library.import_folder(folder)


# ------------------------------------------------------------------------ verified by hash


def _flip_one_byte(path: Path, offset: int = -10) -> None:
    """Change one byte in place: same size, and the file's mtime moves on."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name, kind", [("model.safetensors", "SHA-256"), ("config.json", "checksum")])
def test_a_cached_file_with_one_byte_changed_is_listed_as_damaged(hf_cache, tiny, name, kind):
    """As another tool (or a failing disk) might leave it: the size is right, the hash is not."""
    repo = cache_repo("org/model", tiny["spm_legacy"])
    assert library.find("org/model").verification == "verified"
    blob = (repo / "snapshots" / COMMIT / name).resolve()
    offset = -10 if name.endswith(".safetensors") else -2  # the weights' data / the JSON's last key
    _flip_one_byte(blob, offset)
    model = library.find("org/model")
    assert not model.usable and model.info is None
    assert model.problem == (f"damaged: {name} does not match its {kind} on the Hub; "
                             f"`hearth download org/model` fetches it again")
    with pytest.raises(library.LibraryError, match="cannot be the default: damaged"):
        library.set_default("org/model")


def test_a_hash_is_computed_once_and_remembered_by_path_size_mtime_and_inode(hf_cache, tiny):
    from engine.library import verify

    repo = cache_repo("org/model", tiny["spm_legacy"])
    assert library.find("org/model").verification == "verified"
    blob = (repo / "snapshots" / COMMIT / "model.safetensors").resolve()
    memo = json.loads((paths.data_dir() / verify.MEMO_FILE).read_text())["files"]
    entry = memo[str(blob)]
    assert entry["size"] == blob.stat().st_size and entry["mtime_ns"] == blob.stat().st_mtime_ns
    assert entry["ino"] == blob.stat().st_ino
    assert entry["sha256"] == blob.name
    # The same path, size and mtime: the remembered result stands, the file is not read again
    # (so a change that keeps all three goes unseen until the file changes again) ...
    stat = blob.stat()
    _flip_one_byte(blob)
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert library.find("org/model").usable
    # ... a copy put in its place with the same size and mtime (cp -p, rsync -t) is a new file ...
    copy = blob.with_name("copy")
    shutil.copy2(blob, copy)
    os.replace(copy, blob)
    assert blob.stat().st_mtime_ns == stat.st_mtime_ns
    assert library.find("org/model").problem.startswith("damaged: model.safetensors")
    # ... and so is one with a new mtime.
    _flip_one_byte(blob)  # back to the Hub's bytes
    assert library.find("org/model").usable


def test_files_without_a_hash_on_this_computer_are_listed_as_unverified(hf_cache, tiny):
    """A snapshot of plain files (a filesystem without symlinks, or copied in by hand) carries no
    Hub hash, and Hearth has no record of downloading it: usable, but not called verified."""
    snapshot = hub_cache.repo_folder("org/copied") / "snapshots" / COMMIT
    shutil.copytree(tiny["spm_legacy"], snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(COMMIT)
    model = library.find("org/copied")
    assert model.usable and model.verification == "unverified"
    # Hearth's own record of the download names each file's ETag: then they are checked.
    files = sorted(p.name for p in snapshot.iterdir())
    blobs = [[etag_of(n, (snapshot / n).read_bytes()), (snapshot / n).stat().st_size] for n in files]
    with state.editing() as data:
        data["downloads"]["org/copied"] = {"state": "complete", "commit": COMMIT, "files": files,
                                           "blobs": blobs}
    assert library.find("org/copied").verification == "verified"
    _flip_one_byte(snapshot / "model.safetensors")
    assert library.find("org/copied").problem.startswith("damaged: model.safetensors does not match")


def test_two_processes_verifying_at_once_both_keep_their_results(hf_cache, tiny):
    import subprocess

    from engine.library import verify

    repos = [f"org/model-{i}" for i in range(2)]
    for repo_id in repos:
        cache_repo(repo_id, tiny["spm_legacy"] if repo_id.endswith("0") else tiny["bpe_llama3"])
    script = ("import sys; from engine.library import verify; "
              "print(verify.verify_repo(sys.argv[1]).status)")
    procs = [subprocess.Popen([sys.executable, "-c", script, r], cwd=Path(__file__).resolve().parents[1],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in repos]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == ["verified", "verified"]
    memo = json.loads((paths.data_dir() / verify.MEMO_FILE).read_text())["files"]
    for repo_id in repos:
        snapshot = hub_cache.repo_folder(repo_id) / "snapshots" / COMMIT
        assert str((snapshot / "model.safetensors").resolve()) in memo


# ------------------------------------------------------------------------------------- sizes


def test_a_folder_of_symlinked_files_counts_the_bytes_behind_the_links_once(hf_cache, tiny, tmp_path):
    """An imported folder whose files are links (into the HF cache, or elsewhere): the size is
    the files' bytes, not the links' (a few hundred bytes), and a file linked twice counts once."""
    store = tmp_path / "store"
    shutil.copytree(tiny["spm_legacy"], store)
    folder = tmp_path / "linked-model"
    folder.mkdir()
    for p in store.iterdir():
        (folder / p.name).symlink_to(p)
    (folder / "copy-of-weights.safetensors.bak").symlink_to(store / "model.safetensors")
    (folder / "dangling.txt").symlink_to(tmp_path / "gone")
    expected = sum(p.stat().st_size for p in store.iterdir())
    assert library.folder_size(folder) == expected > 100_000
    model = library.import_folder(folder)
    assert model.size_bytes == expected


def test_cached_blobs_that_are_links_into_a_shared_store_count_their_bytes(hf_cache, tiny, tmp_path):
    repo = cache_repo("org/model", tiny["spm_legacy"])
    real = blob_bytes(repo)
    shared = tmp_path / "shared-store"
    shared.mkdir()
    for blob in (repo / "blobs").iterdir():  # as a shared blob store leaves them
        target = shared / blob.name
        blob.rename(target)
        blob.symlink_to(target)
    model = library.find("org/model")
    assert model.usable and model.size_bytes == real


# ------------------------------------------------------------------------------------ delete


def test_remove_deletes_the_repo_with_orphaned_blobs_and_partial_downloads(hf_cache, tiny):
    repo = cache_repo("org/model", tiny["spm_legacy"])
    (repo / "blobs" / ("f" * 64)).write_bytes(b"x" * 5000)  # an orphan from an older revision
    (repo / "blobs" / ("e" * 64 + ".incomplete")).write_bytes(b"y" * 3000)  # an abandoned download
    (repo / "blobs" / ("d" * 64 + ".1a2b3c4d.incomplete")).write_bytes(b"z" * 1000)  # huggingface_hub's
    keep = cache_repo("org/other", tiny["spm_json"])
    expected = blob_bytes(repo)
    assert expected == sum(p.stat().st_size for p in tiny["spm_legacy"].iterdir()) + 9000
    model = library.find("org/model")
    assert model.size_bytes == expected
    library.set_default("org/model")
    library.mark_used("org/model")

    removed, freed = library.remove("org/model")
    assert removed.ref == "org/model" and freed == expected
    assert not repo.exists()
    assert keep.exists() and library.find("org/other").usable
    data = state.load()
    assert data["default_model"] is None and "org/model" not in data["last_used"]
    assert [m.ref for m in library.installed_models()] == ["org/other"]
    with pytest.raises(library.LibraryError):
        library.remove("org/model")


def test_removing_a_paused_download_frees_its_partial_files(hf_cache, tiny):
    files = model_files(tiny["spm_legacy"])
    repo = cache_repo("org/partial", {k: v for k, v in files.items() if k != "model.safetensors"}, ref=False)
    (repo / "blobs" / ("a" * 64 + ".incomplete")).write_bytes(b"p" * 40_000)
    with state.editing() as data:
        data["downloads"]["org/partial"] = {"state": "paused", "done_bytes": 1, "total_bytes": 2}
    model = library.find("org/partial")
    assert not model.usable
    _, freed = library.remove("org/partial")
    assert freed == model.size_bytes > 40_000 and not repo.exists()
    assert "org/partial" not in state.load()["downloads"]


# ------------------------------------------------------------------------------------ import


def test_an_imported_folder_is_listed_and_rm_only_forgets_it(hf_cache, tiny, tmp_path):
    folder = tmp_path / "My Model"
    shutil.copytree(tiny["bpe_llama3"], folder)
    model = library.import_folder(folder)
    assert model.ref == str(folder) and model.kind == "folder" and model.usable
    assert model.name == "My Model" and model.size_bytes == library.folder_size(folder) > 0
    assert library.import_folder(folder).ref == model.ref  # importing twice keeps one entry
    assert [m.ref for m in library.installed_models()] == [str(folder)]
    assert resolve_model(model.ref).path == folder
    removed, freed = library.remove(str(folder))
    assert removed.kind == "folder" and freed == 0
    assert (folder / "model.safetensors").exists() and sorted(os.listdir(folder)) == sorted(
        os.listdir(tiny["bpe_llama3"]))
    assert library.installed_models() == []


def _no_config(folder: Path) -> None:
    (folder / "config.json").unlink()


def _old_layout(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "weights.npz")
    (folder / "model.safetensors.index.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    config.pop("model_type")
    (folder / "config.json").write_text(json.dumps(config))


def _pickle(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    (folder / "model.safetensors.index.json").unlink()


def _no_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.model").unlink()


def _missing_shard(folder: Path) -> None:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"] = {k: "model-00002-of-00002.safetensors" for k in index["weight_map"]}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def _custom_code(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": "tokenization_evil.EvilTokenizer"}
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("damage, error", [
    (_no_config, errors.ConfigError),
    (_old_layout, errors.LegacyNpzLayout),
    (_pickle, errors.PickleWeights),
    (_no_tokenizer, errors.MissingTokenizer),
    (_missing_shard, errors.WeightsMismatch),
    (_custom_code, errors.ModelFolderError),
])
def test_import_refuses_bad_folders_with_the_engines_errors(hf_cache, model_copy, damage, error):
    folder = model_copy("spm_legacy")
    damage(folder)
    with pytest.raises(error) as refused:
        library.import_folder(folder)
    with pytest.raises(error) as loading:
        resolve_model(folder)  # what loading it would say
    assert str(refused.value) == str(loading.value)
    assert state.load()["imported"] == []


def test_import_of_something_that_is_not_a_folder(hf_cache, tmp_path):
    with pytest.raises(library.LibraryError, match="is not a folder"):
        library.import_folder(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(library.LibraryError, match="is not a folder"):
        library.import_folder(tmp_path / "file.txt")


def test_an_imported_folder_that_later_breaks_is_listed_with_its_problem(hf_cache, model_copy):
    folder = model_copy("spm_legacy")
    library.import_folder(folder)
    (folder / "tokenizer.model").unlink()
    (model,) = library.installed_models()
    assert not model.usable and "has no tokenizer" in model.problem and model.quantization == "?"


def test_converted_models_are_listed_by_name_and_rm_deletes_them(hf_cache, tiny):
    folder = paths.data_dir() / "models" / "llama-2-7b-chat"
    shutil.copytree(tiny["spm_legacy"], folder)
    (model,) = library.installed_models()
    assert model.ref == "llama-2-7b-chat" and model.kind == "converted" and model.usable
    assert resolve_model("llama-2-7b-chat").path == folder
    _, freed = library.remove("llama-2-7b-chat")
    assert freed == model.size_bytes > 0 and not folder.exists()


# ----------------------------------------------------------------- default, last use, reveal


def test_default_model_is_set_shown_and_cleared(hf_cache, tiny):
    cache_repo("org/one", tiny["spm_legacy"])
    cache_repo("org/two", tiny["spm_json"])
    assert library.default_model() is None
    library.set_default("org/two")
    assert library.default_model() == "org/two"
    assert [(m.ref, m.is_default) for m in library.installed_models()] == [("org/one", False),
                                                                          ("org/two", True)]
    library.set_default(None)
    assert library.default_model() is None
    with pytest.raises(library.LibraryError, match="not in the library"):
        library.set_default("org/three")


def test_mark_used_records_the_last_use(hf_cache, tiny):
    cache_repo("org/one", tiny["spm_legacy"])
    before = time.time()
    library.mark_used("org/one")
    model = library.find("org/one")
    assert before <= model.last_used <= time.time()
    assert state.load()["last_used"]["org/one"] == model.last_used


def test_reveal_command_per_platform(hf_cache, tiny, monkeypatch):
    cache_repo("org/one", tiny["spm_legacy"])
    model = library.find("org/one")
    monkeypatch.setattr(sys, "platform", "linux")
    assert library.reveal_command(model.path) == ["xdg-open", str(model.path)]
    weights = model.path / "model.safetensors"
    assert library.reveal_command(weights) == ["xdg-open", str(model.path)]  # a file: its folder
    monkeypatch.setattr(sys, "platform", "darwin")
    assert library.reveal_command(model.path) == ["open", "-R", str(model.path)]


def test_a_damaged_library_record_is_kept_aside_and_models_are_still_listed(hf_cache, tiny):
    cache_repo("org/one", tiny["spm_legacy"])
    record = paths.data_dir() / state.STATE_FILE
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("{not json")
    assert [m.ref for m in library.installed_models()] == ["org/one"]
    assert record.with_suffix(".damaged.json").read_text() == "{not json"
    library.mark_used("org/one")
    assert json.loads(record.read_text())["last_used"]["org/one"] > 0


# ------------------------------------------------------------- which files a download takes


def _remote(name: str, size: int = 10) -> RemoteFile:
    return RemoteFile(name, size, "0" * 64 if name.endswith(".safetensors") else None, "1" * 40)


def test_choose_files_takes_what_mlx_lm_needs_and_nothing_else():
    names = ["README.md", ".gitattributes", "config.json", "model-00001-of-00002.safetensors",
             "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
             "tokenizer_config.json", "special_tokens_map.json", "pytorch_model.bin", "modeling_x.py",
             "original/consolidated.00.pth", "chat_template.jinja", "generation_config.json"]
    chosen = [f.name for f in choose_files("org/m", [_remote(n) for n in names])]
    assert chosen == ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                      "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                      "special_tokens_map.json", "chat_template.jinja", "generation_config.json"]
    assert [f.name for f in choose_files("org/m", [_remote(n) for n in names], ["README.md"])] == ["README.md"]
    with pytest.raises(downloads.HubError, match="has no file nope.txt"):
        choose_files("org/m", [_remote(n) for n in names], ["nope.txt"])


@pytest.mark.parametrize("names, reason", [
    ({"config.json", "weights.npz", "tokenizer.model"}, "old MLX layout (weights.npz)"),
    ({"llama-2-7b.Q4_0.gguf", "README.md"}, "holds GGUF files (llama-2-7b.Q4_0.gguf, ...)"),
    ({"config.json", "pytorch_model.bin"}, "only has pickle-format weights"),
    ({"config.json", "weights.safetensors"}, "has no model*.safetensors weights"),
])
def test_repos_mlx_lm_cannot_load_are_refused_with_the_reason(names, reason):
    assert reason in unusable_reason("org/m", names)
    with pytest.raises(downloads.HubError) as refused:
        choose_files("org/m", [_remote(n) for n in sorted(names)])
    assert str(refused.value) == unusable_reason("org/m", names)


def test_only_the_shards_the_index_lists_are_taken(tmp_path):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                                "b": "model-00002-of-00002.safetensors"}}))
    files = [_remote(n) for n in ("config.json", "model-00001-of-00002.safetensors",
                                  "model-00002-of-00002.safetensors", "model.safetensors")]
    assert [f.name for f in only_indexed_shards(files, index)] == [
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    index.write_text("[]")
    with pytest.raises(downloads.HubError, match="cannot be read"):
        only_indexed_shards(files, index)
