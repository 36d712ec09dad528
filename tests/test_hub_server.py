"""Self-tests of tests/hub_server.py against the REAL huggingface_hub client (in-process and in a subprocess)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hub_server import HubServer, configure_hf_client, git_blob_sha1, lfs_pointer, running_hub

REPO = "mlx-community/Tiny-Llama-4bit"
GATED = "acme/gated-llama"
PRIVATE = "acme/private-llama"
TOKEN = "hf_valid_test_token"
OTHER_TOKEN = "hf_other_valid_token"
SMALL_CHUNK = 64 * 1024

README = b"""---
library_name: mlx
license: apache-2.0
tags:
- mlx
- llama
pipeline_tag: text-generation
---
# Tiny Llama (test fixture)
"""


def _safetensors() -> bytes:
    """A valid ~3 MiB safetensors file (random tensor data): F16[1024,1024] + U32[256,1024]."""
    a, b = 1024 * 1024 * 2, 256 * 1024 * 4
    header = {
        "a": {"dtype": "F16", "shape": [1024, 1024], "data_offsets": [0, a]},
        "b": {"dtype": "U32", "shape": [256, 1024], "data_offsets": [a, a + b]},
        "__metadata__": {"format": "mlx"},
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + os.urandom(a + b)


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {
        "README.md": README,
        "config.json": json.dumps(
            {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
        ).encode(),
        "tokenizer_config.json": json.dumps(
            {"eos_token": "</s>", "chat_template": "{{ x }}"}
        ).encode(),
        "sub/notes.txt": b"nested file\n",
        "model.safetensors": _safetensors(),
    }


@pytest.fixture
def hub(files):
    with running_hub(tokens={TOKEN, OTHER_TOKEN}) as server:
        server.add_repo(REPO, files)
        server.add_repo(
            GATED, {"config.json": b"{}", "weights.npz": b"\x00" * 1000}, gated=True, tags=["llama"]
        )
        server.add_repo(PRIVATE, {"config.json": b'{"private": true}'}, private=True)
        yield server
    assert server.threads() == []
    assert server.internal_errors == []


@pytest.fixture
def hf(hub, tmp_path, monkeypatch):
    """The real huggingface_hub, pointed at the test server, with a private cache."""
    configure_hf_client(monkeypatch, hub.endpoint, tmp_path / "hf-home")
    import huggingface_hub

    yield huggingface_hub
    huggingface_hub.close_session()


def _cache_repo(tmp_path: Path, repo_id: str = REPO) -> Path:
    return tmp_path / "hf-home" / "hub" / ("models--" + repo_id.replace("/", "--"))


def _head(url: str, headers: dict | None = None):
    return _open(url, "HEAD", headers)


def _open(url: str, method: str = "GET", headers: dict | None = None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# --------------------------------------------------------------------------------------------------
# Metadata API
# --------------------------------------------------------------------------------------------------


def test_configure_hf_client_patches_import_time_constants(hf, hub, tmp_path):
    from huggingface_hub import constants, hf_api

    assert constants.ENDPOINT == hub.endpoint
    assert constants.HUGGINGFACE_CO_URL_TEMPLATE.startswith(hub.endpoint + "/")
    assert hf_api.api.endpoint == hub.endpoint
    assert constants.HF_HUB_CACHE == str(tmp_path / "hf-home" / "hub")
    assert constants.HF_HUB_OFFLINE is False and constants.is_offline_mode() is False
    assert os.environ["HF_ENDPOINT"] == hub.endpoint and os.environ["HF_HUB_OFFLINE"] == "0"
    assert hf.hf_hub_url(REPO, "config.json") == f"{hub.endpoint}/{REPO}/resolve/main/config.json"


def test_model_info_with_files_metadata(hf, hub, files):
    info = hf.model_info(REPO, files_metadata=True)
    assert info.id == REPO
    assert info.sha == hub.commit_sha(REPO) and len(info.sha) == 40
    assert info.private is False and info.gated is False
    assert info.library_name == "mlx" and info.pipeline_tag == "text-generation"
    assert {"mlx", "safetensors", "llama", "license:apache-2.0"} <= set(info.tags)
    assert info.card_data is not None and info.card_data.library_name == "mlx"
    assert info.config["model_type"] == "llama"
    assert info.safetensors.parameters == {"F16": 1024 * 1024, "U32": 256 * 1024}
    assert info.safetensors.total == 1024 * 1024 + 256 * 1024

    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == set(files)
    for name, data in files.items():
        assert siblings[name].size == len(data)
    weights = siblings["model.safetensors"]
    sha256 = hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert (
        weights.lfs is not None
        and weights.lfs.sha256 == sha256
        and weights.lfs.size == len(files["model.safetensors"])
    )
    pointer = lfs_pointer(sha256, len(files["model.safetensors"]))
    assert weights.lfs.pointer_size == len(pointer)
    assert weights.blob_id == git_blob_sha1(pointer)  # as on the Hub: the oid of the LFS pointer
    assert siblings["config.json"].lfs is None
    assert siblings["config.json"].blob_id == git_blob_sha1(files["config.json"])
    assert (
        hub.file(REPO, "config.json").git_sha1
        == hashlib.sha1(b"blob %d\0" % len(files["config.json"]) + files["config.json"]).hexdigest()
    )

    plain = hf.model_info(REPO)  # without blobs=true: names only
    assert all(s.size is None and s.lfs is None for s in plain.siblings)
    assert hf.model_info(REPO, revision=info.sha).sha == info.sha
    assert hf.model_info(REPO, revision=info.sha[:10]).sha == info.sha
    assert hf.HfApi().repo_info(REPO).sha == info.sha
    assert hf.model_info(GATED).gated == "manual"  # metadata of gated repos is public


def test_list_models_search_filter_and_pagination(hf, hub):
    found = list(hf.list_models(search="tiny-llama", filter="mlx"))
    assert [m.id for m in found] == [REPO]
    assert "safetensors" in found[0].tags and found[0].library_name == "mlx"
    assert list(hf.list_models(search="no-such-model")) == []
    assert [m.id for m in hf.list_models(author="acme")] == [
        GATED
    ]  # private repo hidden without a token
    assert sorted(m.id for m in hf.list_models(author="acme", token=TOKEN)) == [GATED, PRIVATE]
    assert {m.id for m in hf.list_models(filter=["mlx", "llama"])} == {GATED, REPO}
    assert list(hf.list_models(filter="gguf")) == []

    expanded = list(hf.list_models(search="tiny", expand=["siblings", "sha", "safetensors"]))
    assert expanded[0].sha == hub.commit_sha(REPO)
    assert {s.rfilename for s in expanded[0].siblings} >= {"config.json", "model.safetensors"}

    hub.page_size = 1  # forces Link: rel="next" pagination
    hub.clear_requests()
    assert {m.id for m in hf.list_models()} == {REPO, GATED}
    assert len(hub.requests_for("/api/models")) == 2
    assert len(list(hf.list_models(limit=1))) == 1


def test_list_repo_tree(hf, hub, files):
    entries = {e.path: e for e in hf.list_repo_tree(REPO, recursive=True)}
    assert set(entries) == set(files) | {"sub"}
    assert isinstance(entries["sub"], hf.hf_api.RepoFolder)
    weights = entries["model.safetensors"]
    assert weights.size == len(files["model.safetensors"])
    assert weights.lfs.sha256 == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert (
        entries["config.json"].blob_id == git_blob_sha1(files["config.json"])
        and entries["config.json"].lfs is None
    )

    top = {e.path for e in hf.list_repo_tree(REPO)}
    assert top == {"README.md", "config.json", "tokenizer_config.json", "model.safetensors", "sub"}
    assert [e.path for e in hf.list_repo_tree(REPO, path_in_repo="sub")] == ["sub/notes.txt"]
    assert sorted(hf.list_repo_files(REPO)) == sorted(files)
    with pytest.raises(hf.errors.RevisionNotFoundError):
        list(hf.list_repo_tree(REPO, revision="does-not-exist"))


# --------------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------------


def test_hf_hub_download_and_cache_layout(hf, hub, files, tmp_path):
    commit = hub.commit_sha(REPO)
    hub.clear_requests()
    path = Path(hf.hf_hub_download(REPO, "model.safetensors"))
    assert path.read_bytes() == files["model.safetensors"]
    assert [(r.method, r.range) for r in hub.requests] == [("HEAD", None), ("GET", None)]

    cfg = Path(hf.hf_hub_download(REPO, "config.json"))
    nested = Path(hf.hf_hub_download(REPO, "sub/notes.txt"))
    assert (
        cfg.read_bytes() == files["config.json"] and nested.read_bytes() == files["sub/notes.txt"]
    )

    repo_dir = _cache_repo(tmp_path)
    assert (repo_dir / "refs" / "main").read_text() == commit
    assert path == repo_dir / "snapshots" / commit / "model.safetensors"
    sha256 = hashlib.sha256(files["model.safetensors"]).hexdigest()
    blobs = sorted(p.name for p in (repo_dir / "blobs").iterdir())
    assert blobs == sorted(
        [sha256, git_blob_sha1(files["config.json"]), git_blob_sha1(files["sub/notes.txt"])]
    )
    for link, blob in ((path, sha256), (cfg, git_blob_sha1(files["config.json"]))):
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        assert link.resolve() == (repo_dir / "blobs" / blob).resolve()
    assert nested.is_symlink() and os.readlink(nested).startswith("../../../")
    assert not list(repo_dir.rglob("*.incomplete"))

    hub.clear_requests()  # cached: only the metadata HEAD, no body
    assert Path(hf.hf_hub_download(REPO, "model.safetensors")) == path
    assert [r.method for r in hub.requests] == ["HEAD"]
    hub.clear_requests()  # pinned to a commit and cached: no request at all
    assert Path(hf.hf_hub_download(REPO, "model.safetensors", revision=commit)) == path
    assert hub.requests == []


def test_snapshot_download(hf, hub, files, tmp_path):
    hub.clear_requests()
    folder = Path(hf.snapshot_download(REPO))
    commit = hub.commit_sha(REPO)
    assert folder == _cache_repo(tmp_path) / "snapshots" / commit
    for name, data in files.items():
        assert (folder / name).read_bytes() == data
    assert (_cache_repo(tmp_path) / "trees" / f"{commit}.json").is_file()
    paths = [r.path for r in hub.requests]
    assert paths[0] == f"/api/models/{REPO}/revision/main"
    assert paths[1].startswith(f"/api/models/{REPO}/tree/{commit}?recursive=true")
    assert len(hub.requests_for(f"/resolve/{commit}/", "HEAD")) == len(files)
    assert len(hub.requests_for(f"/resolve/{commit}/", "GET")) == len(files)

    local = tmp_path / "local"
    hf.snapshot_download(REPO, local_dir=local, allow_patterns=["*.json"])
    assert (local / "config.json").read_bytes() == files["config.json"] and not (
        local / "model.safetensors"
    ).exists()


def test_get_hf_file_metadata(hf, hub, files):
    commit = hub.commit_sha(REPO)
    meta = hf.get_hf_file_metadata(hf.hf_hub_url(REPO, "model.safetensors"))
    assert meta.commit_hash == commit
    assert meta.etag == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert meta.size == len(files["model.safetensors"]) and meta.xet_file_data is None
    assert meta.location == hf.hf_hub_url(REPO, "model.safetensors")
    meta = hf.get_hf_file_metadata(hf.hf_hub_url(REPO, "config.json", revision=commit))
    assert (meta.commit_hash, meta.etag, meta.size) == (
        commit,
        git_blob_sha1(files["config.json"]),
        len(files["config.json"]),
    )


def test_resolve_headers_and_ranges(hub, files):
    url = hub.url(REPO, "model.safetensors")
    data = files["model.safetensors"]
    status, headers, body = _head(url)
    sha256 = hashlib.sha256(data).hexdigest()
    assert status == 200 and body == b""
    assert headers["ETag"] == f'"{sha256}"' and headers["X-Linked-Etag"] == f'"{sha256}"'
    assert headers["X-Linked-Size"] == headers["Content-Length"] == str(len(data))
    assert headers["Accept-Ranges"] == "bytes" and headers["X-Repo-Commit"] == hub.commit_sha(REPO)
    assert not [k for k in headers if k.lower().startswith("x-xet")]
    status, headers, _ = _head(hub.url(REPO, "config.json"))
    assert (
        headers["ETag"] == f'"{git_blob_sha1(files["config.json"])}"'
        and "X-Linked-Etag" not in headers
    )

    status, headers, body = _open(url, headers={"Range": "bytes=1000-"})
    assert status == 206 and body == data[1000:]
    assert headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert _open(url, headers={"Range": "bytes=10-19"})[2] == data[10:20]
    assert _open(url, headers={"Range": "bytes=-5"})[2] == data[-5:]
    status, headers, _ = _open(url, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    assert ("GET", f"/{REPO}/resolve/main/model.safetensors", "bytes=1000-") in hub.requests


def _served_when_settled(hub, name: str) -> int:
    """bytes_served once every body has been sent (the client may have its bytes before the
    server thread counts them)."""
    deadline = time.monotonic() + 10
    while hub.bodies_in_flight() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert hub.bodies_in_flight() == 0
    return hub.bytes_served(name)


def test_bytes_served_counts_body_bytes_of_whole_partial_and_cut_responses(hub, files):
    url = hub.url(REPO, "model.safetensors")
    size = len(files["model.safetensors"])
    assert hub.bytes_served("model.safetensors") == 0
    _head(url)
    assert _served_when_settled(hub, "model.safetensors") == 0  # headers are not body
    _open(url, headers={"Range": "bytes=1000-"})
    assert _served_when_settled(hub, "model.safetensors") == size - 1000
    hub.drop_after("model.safetensors", 70_000)
    with pytest.raises(Exception):  # noqa: B017 - urllib's error for a short body varies
        _open(url)
    assert _served_when_settled(hub, "model.safetensors") == size - 1000 + 70_000
    _open(hub.url(REPO, "config.json"))
    assert _served_when_settled(hub, f"{REPO}/config.json") == len(files["config.json"])
    assert hub.bytes_served("model.safetensors") == size - 1000 + 70_000
    hub.clear_requests()
    assert hub.bytes_served("model.safetensors") == 0


# --------------------------------------------------------------------------------------------------
# Errors and auth
# --------------------------------------------------------------------------------------------------


def test_not_found_errors(hf, hub, tmp_path):
    errors = hf.errors
    with pytest.raises(errors.RepositoryNotFoundError) as e:
        hf.hf_hub_download("nobody/nothing", "config.json")
    assert not isinstance(e.value, errors.GatedRepoError) and e.value.response.status_code == 404
    with pytest.raises(errors.RepositoryNotFoundError):
        hf.model_info("nobody/nothing")
    with pytest.raises(errors.EntryNotFoundError) as e:
        hf.hf_hub_download(REPO, "missing.bin")
    assert isinstance(e.value, errors.RemoteEntryNotFoundError)
    commit = hub.commit_sha(REPO)
    assert (_cache_repo(tmp_path) / ".no_exist" / commit / "missing.bin").exists()
    with pytest.raises(errors.RevisionNotFoundError):
        hf.hf_hub_download(REPO, "config.json", revision="no-such-branch")
    with pytest.raises(errors.RevisionNotFoundError):
        hf.model_info(REPO, revision="no-such-branch")
    with pytest.raises(
        errors.RepositoryNotFoundError
    ):  # private without a token looks like a missing repo
        hf.hf_hub_download(PRIVATE, "config.json")
    assert (
        Path(hf.hf_hub_download(PRIVATE, "config.json", token=TOKEN)).read_bytes()
        == b'{"private": true}'
    )


def test_gated_repo_and_tokens(hf, hub, monkeypatch):
    errors = hf.errors
    with pytest.raises(errors.GatedRepoError) as e:
        hf.hf_hub_download(GATED, "config.json")
    assert e.value.response.status_code == 401 and "restricted" in str(e.value)
    with pytest.raises(
        errors.HfHubHTTPError
    ) as e:  # an unknown token is refused everywhere, like on the Hub
        hf.hf_hub_download(REPO, "config.json", token="hf_wrong")
    assert e.value.response.status_code == 401 and not isinstance(
        e.value, errors.RepositoryNotFoundError
    )
    assert (
        Path(hf.hf_hub_download(GATED, "weights.npz", token=TOKEN)).read_bytes() == b"\x00" * 1000
    )
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the client picks HF_TOKEN up at request time
    assert Path(hf.hf_hub_download(GATED, "config.json")).read_bytes() == b"{}"
    monkeypatch.delenv("HF_TOKEN")

    hub.add_repo(
        GATED, {"config.json": b"{}", "new.bin": b"1"}, gated="auto", allowed_tokens={OTHER_TOKEN}
    )
    with pytest.raises(errors.GatedRepoError) as e:
        hf.hf_hub_download(GATED, "new.bin", token=TOKEN)
    assert e.value.response.status_code == 403
    with pytest.raises(
        ValueError
    ) as e:  # hf wraps HEAD errors in ValueError when force_download=True
        hf.hf_hub_download(GATED, "new.bin", token=TOKEN, force_download=True)
    assert isinstance(e.value.__cause__, errors.GatedRepoError)
    # ...and falls back to the cached copy (refs/main -> old snapshot) when the HEAD is refused:
    assert Path(hf.hf_hub_download(GATED, "config.json", token=TOKEN)).read_bytes() == b"{}"
    assert Path(hf.hf_hub_download(GATED, "new.bin", token=OTHER_TOKEN)).read_bytes() == b"1"

    me = hf.whoami(token=TOKEN)
    assert me["name"] == hub.user and me["type"] == "user"
    with pytest.raises(errors.HfHubHTTPError) as e:
        hf.whoami(token="hf_wrong")
    assert e.value.response.status_code == 401


# --------------------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------------------


def test_dropped_connection_is_resumed_with_range(hub, files, tmp_path, monkeypatch):
    # hf resumes from the bytes it has written, which advance in DOWNLOAD_CHUNK_SIZE steps (10 MiB by default).
    configure_hf_client(
        monkeypatch, hub.endpoint, tmp_path / "hf-home", download_chunk_size=SMALL_CHUNK
    )
    import huggingface_hub as hf

    hub.drop_after("model.safetensors", 1_000_000)
    path = hf.hf_hub_download(REPO, "model.safetensors")
    assert Path(path).read_bytes() == files["model.safetensors"]
    gets = hub.requests_for("model.safetensors", "GET")
    assert [g.range for g in gets] == [None, f"bytes={1_000_000 // SMALL_CHUNK * SMALL_CHUNK}-"]
    assert hub.pending_faults() == []
    assert not list(_cache_repo(tmp_path).rglob("*.incomplete"))


def test_dropped_connection_with_default_chunk_restarts_from_zero(hf, hub, files):
    hub.drop_after("model.safetensors", 1_000_000)
    assert (
        Path(hf.hf_hub_download(REPO, "model.safetensors")).read_bytes()
        == files["model.safetensors"]
    )
    assert [g.range for g in hub.requests_for("model.safetensors", "GET")] == [None, None]


def test_connection_reset_is_not_retried_by_hf(hf, hub, tmp_path):
    import httpx2

    hub.drop_after("model.safetensors", 200_000, reset=True)
    with pytest.raises(httpx2.ReadError):
        hf.hf_hub_download(REPO, "model.safetensors")
    assert len(hub.requests_for("model.safetensors", "GET")) == 1
    assert not list(
        _cache_repo(tmp_path).rglob("*.incomplete")
    )  # the partial file is deleted, never resumed


def test_corrupt_serves_different_bytes_of_same_length(hf, hub, files):
    hub.corrupt("model.safetensors")
    path = Path(
        hf.hf_hub_download(REPO, "model.safetensors")
    )  # huggingface_hub does not verify the sha256
    got = path.read_bytes()
    assert len(got) == len(files["model.safetensors"]) and got != files["model.safetensors"]
    assert (
        hashlib.sha256(got).hexdigest() != path.resolve().name
    )  # blob named by the announced sha256
    again = Path(hf.hf_hub_download(REPO, "model.safetensors", force_download=True))
    assert again.read_bytes() == files["model.safetensors"]  # the fault counted down


def test_stall_delays_the_body(hf, hub, files):
    hub.stall("model.safetensors", after_bytes=500_000, seconds=1.0)
    start = time.monotonic()
    path = hf.hf_hub_download(REPO, "model.safetensors")
    assert time.monotonic() - start >= 0.95
    assert Path(path).read_bytes() == files["model.safetensors"]


def test_stall_longer_than_read_timeout_is_resumed(hub, files, tmp_path, monkeypatch):
    configure_hf_client(
        monkeypatch,
        hub.endpoint,
        tmp_path / "hf-home",
        download_timeout=0.5,
        download_chunk_size=SMALL_CHUNK,
    )
    import huggingface_hub as hf

    hub.stall("model.safetensors", after_bytes=3 * SMALL_CHUNK, seconds=5)
    start = time.monotonic()
    path = hf.hf_hub_download(REPO, "model.safetensors")
    assert time.monotonic() - start < 4
    assert Path(path).read_bytes() == files["model.safetensors"]
    assert [g.range for g in hub.requests_for("model.safetensors", "GET")] == [
        None,
        f"bytes={3 * SMALL_CHUNK}-",
    ]


def test_fail_503(hf, hub, files):
    errors = hf.errors
    hub.fail(
        "config.json", 503, method="HEAD"
    )  # first metadata call fails, hf retries it since nothing is cached
    assert Path(hf.hf_hub_download(REPO, "config.json")).read_bytes() == files["config.json"]
    assert len(hub.requests_for("config.json", "HEAD")) == 2

    hub.fail("sub/notes.txt", 503, method="GET")  # a 5xx on the body GET is not retried
    with pytest.raises(errors.HfHubHTTPError) as e:
        hf.hf_hub_download(REPO, "sub/notes.txt")
    assert e.value.response.status_code == 503

    hub.fail(f"/api/models/{REPO}", 503, times=None)
    with pytest.raises(errors.HfHubHTTPError) as e:
        hf.model_info(REPO)
    assert e.value.response.status_code == 503
    hub.clear_faults()
    assert hf.model_info(REPO).id == REPO


def test_fail_429_on_get_is_retried(hf, hub, files):
    hub.fail("config.json", 429, method="GET", headers={"Retry-After": "0"})
    assert Path(hf.hf_hub_download(REPO, "config.json")).read_bytes() == files["config.json"]
    assert len(hub.requests_for("config.json", "GET")) == 2


def test_throttle(hub):
    hub.add_repo("acme/medium", {"medium.bin": b"x" * 100_000})
    url = hub.url("acme/medium", "medium.bin")
    hub.throttle(200_000)
    start = time.monotonic()
    assert _open(url)[2] == b"x" * 100_000
    assert time.monotonic() - start >= 0.45
    hub.throttle(None)
    start = time.monotonic()
    _open(url)
    assert time.monotonic() - start < 0.3


# --------------------------------------------------------------------------------------------------
# Server behaviour
# --------------------------------------------------------------------------------------------------


def test_add_repo_from_folder_and_revisions(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "tokenizer.model").write_bytes(b"spm" * 10)
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    hub = HubServer()
    first = hub.add_repo("acme/folder", folder)
    assert first == hub.add_repo("acme/folder", folder)  # stable for the same content
    assert set(hub.repo("acme/folder").head().files) == {"config.json", "sub/tokenizer.model"}
    assert hub.file("acme/folder", "sub/tokenizer.model").is_lfs  # *.model is LFS
    assert not hub.file("acme/folder", "config.json").is_lfs
    big = hub.add_repo("acme/big", {"big.json": b"0" * (10 * 1024 * 1024 + 1)})
    assert hub.file("acme/big", "big.json").is_lfs and len(big) == 40

    second = hub.add_repo("acme/folder", {"config.json": b'{"v": 2}'}, revision="v2")
    assert second != first
    assert (
        hub.commit_sha("acme/folder", "main") == first
        and hub.commit_sha("acme/folder", "v2") == second
    )
    third = hub.add_repo(
        "acme/folder", {"config.json": b'{"v": 3}'}
    )  # moves main, old commit stays
    with hub:
        assert _open(hub.url("acme/folder", "config.json"))[2] == b'{"v": 3}'
        assert _open(hub.url("acme/folder", "config.json", revision=first))[2] == b"{}"
        assert _open(hub.url("acme/folder", "config.json", revision="v2"))[2] == b'{"v": 2}'
        status, headers, _ = _head(hub.url("acme/folder", "config.json"))
        assert headers["X-Repo-Commit"] == third
        status, headers, _ = _head(hub.url("acme/folder", "nope.txt"))
        assert (
            status == 404
            and headers["X-Error-Code"] == "EntryNotFound"
            and headers["X-Repo-Commit"] == third
        )
        assert (
            _head(hub.url("acme/folder", "config.json", revision="v9"))[1]["X-Error-Code"]
            == "RevisionNotFound"
        )
        assert _head(hub.url("acme/none", "config.json"))[1]["X-Error-Code"] == "RepoNotFound"
        refs = json.loads(_open(f"{hub.endpoint}/api/models/acme/folder/refs")[2])
        assert {b["name"]: b["targetCommit"] for b in refs["branches"]} == {
            "main": third,
            "v2": second,
        }


def test_stop_leaves_no_threads_and_frees_connections(hf, hub):
    hf.hf_hub_download(REPO, "config.json")  # leaves a pooled keep-alive connection open
    hub.stall("model.safetensors", after_bytes=0, seconds=30)
    outcome = []

    def fetch():
        try:
            _open(hub.url(REPO, "model.safetensors"))
            outcome.append("complete")
        except Exception as e:  # the stalled response is cut by stop()
            outcome.append(type(e).__name__)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while len(hub.threads()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(hub.threads()) >= 3  # serve loop + keep-alive connection + stalled download
    start = time.monotonic()
    hub.stop()
    assert time.monotonic() - start < 2
    assert hub.threads() == [] and not hub.running
    assert not [t for t in threading.enumerate() if t.name.startswith("hub-server:")]
    worker.join(5)
    assert not worker.is_alive() and outcome == ["IncompleteRead"]


def test_subprocess_client_with_env_vars(hub, files, tmp_path):
    script = textwrap.dedent(
        f"""
        import hashlib, json, os
        from huggingface_hub import hf_hub_download, model_info, snapshot_download, list_models
        out = {{}}
        out["endpoint"] = __import__("huggingface_hub").constants.ENDPOINT
        p = hf_hub_download({REPO!r}, "model.safetensors")
        out["weights"] = hashlib.sha256(open(p, "rb").read()).hexdigest()
        out["weights_path"] = p
        folder = snapshot_download({REPO!r})
        out["files"] = sorted(
            os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
        )
        out["sha"] = model_info({REPO!r}).sha
        out["found"] = [m.id for m in list_models(search="tiny", filter="mlx")]
        print(json.dumps(out))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(hub.client_env(tmp_path / "sub-home"))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["endpoint"] == hub.endpoint
    assert out["weights"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert out["weights_path"].startswith(str(tmp_path / "sub-home" / "hub"))
    assert out["files"] == sorted(files)
    assert out["sha"] == hub.commit_sha(REPO) and out["found"] == [REPO]
