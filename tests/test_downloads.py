"""Downloads against tests/hub_server.py with the REAL huggingface_hub client: verified, resumable,
into the standard Hugging Face cache, with one clear message per kind of failure.

Every test gets a fresh server and a fresh cache; the weights are a tiny model's (~110 KB), so a
throttled server (bytes per second) makes progress, pause, stall and kill timing testable in a
second or two. Hearth writes each piece as it arrives, so a partial file holds every byte received.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hub_server import configure_hf_client, running_hub

from engine.library import catalog, downloads, hub, library
from engine.library.downloads import (
    DISK_MARGIN_BYTES,
    PROGRESS_INTERVAL_S,
    DownloadDone,
    DownloadJob,
    DownloadProgress,
)

ROOT = Path(__file__).resolve().parents[1]
REPO = "mlx-community/tiny-llama-4bit"
GATED = "meta-llama/tiny-llama-gated"
OLD = "mlx-community/tiny-llama-old-layout"
TOKEN = "hf_hearth_test_token"
WEIGHTS = "model.safetensors"
CHUNK = 8 * 1024
# What an mlx-lm model needs, and so what Hearth fetches from the repo below (not the README,
# .gitattributes or the pickle).
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
               "tokenizer.model", "tokenizer_config.json"}
WAIT_S = 30


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def repo_files(tiny) -> dict[str, bytes]:
    folder = tiny["spm_legacy"]
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert set(files) == MODEL_FILES
    files["README.md"] = b"---\nlibrary_name: mlx\ntags:\n- mlx\n- llama\n---\n# A tiny test Llama\n"
    files[".gitattributes"] = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    files["original/consolidated.pth"] = b"\x80\x04pickled weights Hearth never fetches"
    return files


@pytest.fixture
def server(repo_files):
    with running_hub(tokens={TOKEN}) as hub_server:
        hub_server.add_repo(REPO, repo_files)
        yield hub_server
    assert hub_server.internal_errors == []


@pytest.fixture
def hf_home(server, tmp_path, monkeypatch) -> Path:
    """The real huggingface_hub pointed at the server; the HF cache is <hf_home>/hub."""
    home = tmp_path / "hf-home"
    configure_hf_client(monkeypatch, server.endpoint, home)
    yield home
    import huggingface_hub

    huggingface_hub.close_session()


# ------------------------------------------------------------------------------------ helpers


def repo_dir(home: Path, repo_id: str = REPO) -> Path:
    return home / "hub" / ("models--" + repo_id.replace("/", "--"))


def weights_sha(server, repo_id: str = REPO) -> str:
    sha = server.file(repo_id, WEIGHTS).sha256
    assert sha  # stored with LFS
    return sha


def partial_of(server, home: Path, repo_id: str = REPO) -> Path:
    return repo_dir(home, repo_id) / "blobs" / (weights_sha(server, repo_id) + ".incomplete")


def wait_for(condition, what: str, timeout: float = WAIT_S, every: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


class Recorder:
    """An on_event sink that keeps (arrival time, event)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, object]] = []
        self.changed = threading.Event()

    def __call__(self, event) -> None:
        self.items.append((time.monotonic(), event))
        self.changed.set()

    @property
    def progress(self) -> list[DownloadProgress]:
        return [e for _, e in self.items if isinstance(e, DownloadProgress)]

    def weights_bytes_seen(self) -> bool:
        return any(e.file == WEIGHTS and e.state == "downloading" for e in self.progress)


def start(job: DownloadJob) -> tuple[threading.Thread, list[DownloadDone]]:
    result: list[DownloadDone] = []
    thread = threading.Thread(target=lambda: result.append(job.run()), daemon=True)
    thread.start()
    return thread, result


def finish(thread: threading.Thread, result: list[DownloadDone]) -> DownloadDone:
    thread.join(WAIT_S)
    assert not thread.is_alive(), "the download did not end"
    return result[0]


def job(repo_id: str = REPO, **kwargs) -> DownloadJob:
    kwargs.setdefault("backoff_s", 0.05)
    kwargs.setdefault("stall_after_s", 5.0)
    return DownloadJob(repo_id, **kwargs)


def assert_installed(server, home: Path, repo_files: dict[str, bytes], done: DownloadDone,
                     repo_id: str = REPO) -> None:
    """The standard cache layout, every file byte-identical to the Hub's, and listed as usable."""
    assert done.status == "complete", done.error
    commit = server.commit_sha(repo_id)
    folder = repo_dir(home, repo_id)
    assert done.path == str(folder / "snapshots" / commit)
    assert (folder / "refs" / "main").read_text() == commit
    snapshot = folder / "snapshots" / commit
    assert {p.name for p in snapshot.iterdir()} == MODEL_FILES
    for name in MODEL_FILES:
        link = snapshot / name
        hub_file = server.file(repo_id, name)
        assert link.is_symlink() and os.readlink(link) == f"../../blobs/{hub_file.etag}", name
        assert link.read_bytes() == repo_files[name], name
    assert not list(folder.rglob("*.incomplete"))
    total = sum(len(repo_files[n]) for n in MODEL_FILES)
    assert done.done_bytes == done.total_bytes == total
    model = library.find(repo_id)
    assert model.usable and model.problem is None and model.kind == "hub"
    assert model.size_bytes == total
    assert model.path == snapshot


def served_bytes(server, name: str = WEIGHTS) -> int:
    """Body bytes of the file the server has sent, once it has finished sending (a client may
    hold the last bytes before the server thread counts them)."""
    wait_for(lambda: server.bodies_in_flight() == 0, "the server to finish sending")
    return server.bytes_served(name)


def gets(server, name: str) -> list:
    return [r for r in server.requests_for("/resolve/", "GET") if r.path.endswith("/" + name)]


def child_env(server, home: Path, hearth_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(server.client_env(home), HEARTH_HOME=str(hearth_home))
    return env


# A download in a child process; its DownloadDone is printed as JSON.
CHILD_DOWNLOAD = """
import dataclasses, json, sys
from engine.library.downloads import DownloadJob
{before}
done = DownloadJob(sys.argv[1], backoff_s=0.05, max_attempts=2).run()
print(json.dumps(dataclasses.asdict(done)))
"""


# ------------------------------------------------------------------------------- the download


def test_download_puts_verified_model_files_in_the_standard_cache(server, hf_home, repo_files):
    done = job().run()
    assert_installed(server, hf_home, repo_files, done)
    fetched = {r.path.rsplit("/", 1)[1] for r in server.requests_for("/resolve/", "GET")}
    assert fetched == MODEL_FILES  # never the README, .gitattributes or the pickle
    assert not server.requests_for("/resolve/", "HEAD")  # the listing had every size and hash
    record = library.state.load()["downloads"][REPO]
    assert record["state"] == "complete" and record["commit"] == server.commit_sha(REPO)


def test_hashes_computed_while_downloading_are_remembered_so_listing_reads_no_file_again(server, hf_home):
    from engine import paths
    from engine.library import verify

    assert job().run().status == "complete"
    memo = json.loads((paths.data_dir() / verify.MEMO_FILE).read_text())["files"]
    blobs = {p.name: p for p in (repo_dir(hf_home) / "blobs").iterdir()}
    assert {Path(k).name for k in memo} == set(blobs)
    for name, blob in blobs.items():
        entry = memo[str(blob.resolve())]
        assert entry.get("sha256", entry.get("git-sha1")) == name
        assert (entry["size"], entry["mtime_ns"]) == (blob.stat().st_size, blob.stat().st_mtime_ns)
    assert library.find(REPO).verification == "verified"


def test_progress_events_are_plain_data_that_add_up_to_the_real_sizes(server, hf_home, repo_files):
    server.throttle(120_000)  # ~1 s for the weights: several progress events
    events = Recorder()
    done = job(on_event=events).run()
    assert done.status == "complete", done.error
    assert isinstance(events.items[-1][1], DownloadDone)
    progress = events.progress
    total = sum(len(repo_files[n]) for n in MODEL_FILES)
    assert progress[-1].done_bytes == progress[-1].total_bytes == total == done.done_bytes
    assert progress[-1].files_done == len(MODEL_FILES) - 1 and progress[-1].files_total == len(MODEL_FILES)
    sized = [p for p in progress if p.state != "checking"]
    assert sized and all(p.total_bytes == total for p in sized)
    done_bytes = [p.done_bytes for p in progress]
    assert done_bytes == sorted(done_bytes) and done_bytes[0] == 0
    moving = [p for p in progress if p.state == "downloading" and p.file == WEIGHTS]
    assert len(moving) >= 2
    assert all(0 < p.done_bytes < total and p.speed_bps > 0 and p.eta_s is not None for p in moving)
    # The ETA is what is left at the measured speed.
    p = moving[-1]
    assert p.eta_s == pytest.approx((total - p.done_bytes) / p.speed_bps)
    # At most a few a second: an ordinary progress event comes PROGRESS_INTERVAL_S after the last event.
    times = [t for t, e in events.items]
    for (t0, _), (t1, e1) in zip(events.items, events.items[1:], strict=False):
        if isinstance(e1, DownloadProgress) and e1.state == "downloading":
            assert t1 - t0 >= PROGRESS_INTERVAL_S * 0.8, (t1 - t0, e1)
    assert len(moving) <= (times[-1] - times[0]) / PROGRESS_INTERVAL_S + 1
    # Plain data: every event survives JSON (what crosses to the UI thread or another process).
    for _, event in events.items:
        assert json.loads(json.dumps(dataclasses.asdict(event))) == dataclasses.asdict(event)


def test_pause_then_resume_continues_from_the_bytes_on_disk(server, hf_home, repo_files):
    server.throttle(40_000)
    partial = partial_of(server, hf_home)
    first = job()
    thread, result = start(first)
    wait_for(lambda: partial.exists() and partial.stat().st_size >= 3 * CHUNK, "some weights on disk")
    first.pause()
    done = finish(thread, result)
    assert done.status == "paused" and done.error is None
    size = partial.stat().st_size
    weights = len(repo_files[WEIGHTS])
    assert 0 < size < weights
    # The figures are the bytes really on disk, not a chunk more.
    on_disk = sum(p.stat().st_size for p in (repo_dir(hf_home) / "blobs").iterdir())
    assert done.done_bytes == on_disk
    paused = library.find(REPO)
    assert not paused.usable and paused.problem.startswith("download paused (")
    assert not (repo_dir(hf_home) / "refs" / "main").exists()

    wait_for(lambda: server.bodies_in_flight() == 0, "the server to notice the closed connection")
    server.throttle(None)
    served = served_bytes(server)
    server.clear_requests()
    events = Recorder()
    done = job(on_event=events).run()
    assert_installed(server, hf_home, repo_files, done)
    assert [r.range for r in gets(server, WEIGHTS)] == [f"bytes={size}-"]
    assert served + served_bytes(server) <= 1.1 * weights
    already = {n for n in MODEL_FILES if (n != WEIGHTS and not gets(server, n))}
    assert already  # files finished before the pause are not fetched again
    downloading = [e for e in events.progress if e.state in ("downloading", "verifying")]
    assert downloading[0].done_bytes >= size  # progress resumes from what is there


def test_cancel_discards_the_partial_download(server, hf_home):
    server.throttle(40_000)
    partial = partial_of(server, hf_home)
    first = job()
    thread, result = start(first)
    wait_for(lambda: partial.exists() and partial.stat().st_size >= CHUNK, "some weights on disk")
    first.cancel()
    done = finish(thread, result)
    assert done.status == "cancelled"
    assert not repo_dir(hf_home).exists()  # a first download: the whole repo folder goes
    assert REPO not in library.state.load()["downloads"]
    assert all(m.ref != REPO for m in library.installed_models())

    server.throttle(None)
    server.clear_requests()
    assert job().run().status == "complete"
    assert [r.range for r in gets(server, WEIGHTS)] == [None]  # nothing was kept to resume from


def test_a_killed_download_resumes_and_verifies(server, hf_home, repo_files, tmp_path):
    server.throttle(30_000)
    partial = partial_of(server, hf_home)
    script = CHILD_DOWNLOAD.format(before="")
    proc = subprocess.Popen([sys.executable, "-c", script, REPO], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(server, hf_home, Path(os.environ["HEARTH_HOME"])))
    try:
        wait_for(lambda: partial.exists() and partial.stat().st_size >= 2 * CHUNK or proc.poll() is not None,
                 "the child to write some weights")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    size = partial.stat().st_size
    assert 0 < size < len(repo_files[WEIGHTS])
    model = library.find(REPO)
    assert not model.usable
    on_disk = sum(p.stat().st_size for p in (repo_dir(hf_home) / "blobs").iterdir())
    total = sum(len(repo_files[n]) for n in MODEL_FILES)
    assert model.problem == f"download not finished ({100 * on_disk // total}%): resume it to use this model"
    assert 100 * on_disk // total > 0

    wait_for(lambda: server.bodies_in_flight() == 0, "the server to notice the closed connection")
    server.throttle(None)
    served = served_bytes(server)
    server.clear_requests()
    done = job().run()
    assert_installed(server, hf_home, repo_files, done)
    assert [r.range for r in gets(server, WEIGHTS)] == [f"bytes={size}-"]
    # What the killed process had received but not written is all the resume costs.
    assert served + served_bytes(server) <= 1.1 * len(repo_files[WEIGHTS])


def test_a_stray_weights_file_the_index_does_not_list_is_not_fetched(server, hf_home, repo_files):
    files = dict(repo_files, **{"model-7b.safetensors": repo_files[WEIGHTS] + b"\0" * 1000})
    server.add_repo(REPO, files)
    done = job().run()
    assert_installed(server, hf_home, repo_files, done)  # exactly the model's files, usable
    assert gets(server, "model-7b.safetensors") == []


def test_pieces_are_written_as_they_arrive_without_touching_huggingface_hub(server, tmp_path, monkeypatch,
                                                                          repo_files):
    """Each piece the connection delivers is written at once (progress, pauses and the stall
    detector react to it); huggingface_hub's settings (its 10 MiB DOWNLOAD_CHUNK_SIZE, which left
    all three blind for 10 s at 1 MB/s) are neither used nor changed."""
    from huggingface_hub import constants

    configure_hf_client(monkeypatch, server.endpoint, tmp_path / "hf-home")
    default = constants.DOWNLOAD_CHUNK_SIZE
    server.throttle(60_000)  # ~2 s: several progress events while the weights arrive
    sizes: set[int] = set()
    partial = partial_of(server, tmp_path / "hf-home")

    def on_event(event) -> None:
        if isinstance(event, DownloadProgress) and event.state == "downloading" and partial.exists():
            sizes.add(partial.stat().st_size)

    assert job(on_event=on_event).run().status == "complete"
    assert len([s for s in sizes if 0 < s < len(repo_files[WEIGHTS])]) >= 4
    assert constants.DOWNLOAD_CHUNK_SIZE == default
    assert served_bytes(server) == len(repo_files[WEIGHTS])


def test_large_files_are_hashed_beside_the_transfer(server, hf_home, repo_files, monkeypatch):
    """Files of BACKGROUND_HASH_BYTES or more are hashed on a helper thread: the same verdicts."""
    monkeypatch.setattr(downloads, "BACKGROUND_HASH_BYTES", 1)
    server.corrupt(WEIGHTS)
    done = job().run()
    assert done.error_kind == "ChecksumMismatch" and f"{WEIGHTS} does not match its SHA-256" in done.error
    server.throttle(60_000)
    partial = partial_of(server, hf_home)
    first = job()
    thread, result = start(first)
    wait_for(lambda: partial.exists() and partial.stat().st_size >= 2 * CHUNK, "some weights on disk")
    first.pause()
    assert finish(thread, result).status == "paused"
    server.throttle(None)
    done = job().run()
    assert_installed(server, hf_home, repo_files, done)
    assert not [t for t in threading.enumerate() if t.name.startswith("hearth-verify")]


# ------------------------------------------------------------------------- faults and retries


def test_a_connection_closed_mid_file_is_resumed(server, hf_home, repo_files):
    server.drop_after(WEIGHTS, 50_000)  # FIN after 50,000 bytes of the body
    done = job().run()
    assert_installed(server, hf_home, repo_files, done)
    ranges = [r.range for r in gets(server, WEIGHTS)]
    assert ranges == [None, "bytes=50000-"]  # every byte received was kept
    assert server.pending_faults() == []
    assert served_bytes(server) == len(repo_files[WEIGHTS])


def test_a_reset_connection_is_retried_by_hearth_from_the_partial_file(server, hf_home, repo_files):
    server.throttle(150_000)  # the client reads each piece well before the reset arrives
    server.drop_after(WEIGHTS, 50_000, reset=True)  # huggingface_hub itself gives up on a reset
    partial = partial_of(server, hf_home)
    sizes: list[int] = []
    events = Recorder()

    def on_event(event) -> None:
        if isinstance(event, DownloadProgress) and event.state == "retrying":
            sizes.append(partial.stat().st_size)
        events(event)

    done = job(on_event=on_event).run()
    assert_installed(server, hf_home, repo_files, done)
    retrying = [e for e in events.progress if e.state == "retrying"]
    assert len(retrying) == 1 and "connection lost; retrying in" in retrying[0].message
    assert "attempt 2 of" in retrying[0].message
    assert len(sizes) == 1 and 0 < sizes[0] <= 50_000
    assert [r.range for r in gets(server, WEIGHTS)] == [None, f"bytes={sizes[0]}-"]
    assert served_bytes(server) <= 1.1 * len(repo_files[WEIGHTS])


def test_server_errors_are_retried_with_growing_backoff(server, hf_home, repo_files):
    server.fail(f"/resolve/{server.commit_sha(REPO)}/{WEIGHTS}", 503, times=3, method="GET")
    events = Recorder()
    done = job(on_event=events, backoff_s=0.1, max_attempts=5).run()
    assert_installed(server, hf_home, repo_files, done)
    messages = [e.message for e in events.progress if e.state == "retrying"]
    assert messages == [f"the Hub answered 503; retrying in {d} s (attempt {n} of 5)"
                        for d, n in (("0.1", 2), ("0.2", 3), ("0.4", 4))]


def test_a_connection_that_keeps_failing_ends_in_a_clear_failure(server, hf_home, repo_files):
    server.throttle(400_000)
    server.drop_after(WEIGHTS, 30_000, times=None, reset=True)
    done = job(max_attempts=3).run()
    assert done.status == "failed" and done.error_kind == "Offline"
    assert done.error.startswith(f"Cannot reach {server.endpoint} while downloading {REPO}")
    assert len(gets(server, WEIGHTS)) == 3
    assert not (repo_dir(hf_home) / "refs" / "main").exists()
    model = library.find(REPO)
    assert not model.usable and model.problem.startswith("download failed (")
    assert partial_of(server, hf_home).stat().st_size > 0  # kept for a resume


def test_a_stall_is_reported_then_the_download_goes_on(server, hf_home, repo_files):
    server.stall(WEIGHTS, 20_000, seconds=1.2)
    events = Recorder()
    done = job(on_event=events, stall_after_s=0.3).run()
    assert_installed(server, hf_home, repo_files, done)
    states = [e.state for e in events.progress]
    stalled = states.index("stalled")
    assert "downloading" in states[stalled:] or "verifying" in states[stalled:]
    assert events.progress[stalled].message.startswith("no data for")
    assert events.progress[stalled].file == WEIGHTS
    assert len(gets(server, WEIGHTS)) == 1  # shorter than the read timeout: the same response went on


def test_a_quick_download_is_never_reported_stalled(server, hf_home, repo_files):
    events = Recorder()
    assert job(on_event=events, stall_after_s=2.0).run().status == "complete"
    assert "stalled" not in {e.state for e in events.progress}


@pytest.mark.parametrize("name, kind", [(WEIGHTS, "SHA-256"), ("tokenizer_config.json", "checksum")])
def test_a_file_with_wrong_content_fails_verification_and_is_not_installed(server, hf_home, repo_files,
                                                                          name, kind):
    server.corrupt(name)  # same length, same headers: only a hash can tell
    done = job().run()
    assert done.status == "failed" and done.error_kind == "ChecksumMismatch"
    assert f"{name} does not match its {kind} on the Hub" in done.error
    assert done.error.startswith(f"Download of {REPO} failed verification")
    blobs = repo_dir(hf_home) / "blobs"
    etag = server.file(REPO, name).etag
    assert not (blobs / etag).exists() and not (blobs / (etag + ".incomplete")).exists()
    assert not (repo_dir(hf_home) / "refs" / "main").exists()
    assert not (repo_dir(hf_home) / "snapshots" / server.commit_sha(REPO) / name).exists()
    model = library.find(REPO)
    assert not model.usable and "download failed" in model.problem

    server.clear_requests()
    done = job().run()
    assert_installed(server, hf_home, repo_files, done)
    assert [r.range for r in gets(server, name)] == [None]  # the bad bytes were not kept


# ----------------------------------------------------------------------------------- errors


def test_a_gated_repo_asks_for_a_token_and_downloads_with_one(server, hf_home, repo_files):
    server.add_repo(GATED, repo_files, gated=True)
    done = job(GATED).run()
    assert done.status == "failed" and done.error_kind == "GatedRepo"
    assert f"{GATED} is gated: accept its license on {server.endpoint}/{GATED}" in done.error
    assert "hearth token" in done.error
    assert not repo_dir(hf_home, GATED).exists()  # refused at the first file: nothing half-installed
    assert all(m.ref != GATED for m in library.installed_models())

    token_file = hf_home / "token"
    assert not token_file.exists()
    with pytest.raises(hub.HubError, match="401"):
        hub.save_token("hf_not_a_valid_token")
    assert not token_file.exists()
    assert hub.save_token(f"  {TOKEN}\n") == server.user
    assert token_file.read_text() == TOKEN
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    import huggingface_hub

    assert huggingface_hub.get_token() == TOKEN  # where huggingface_hub (and mlx-lm) look for it

    done = job(GATED).run()
    assert_installed(server, hf_home, repo_files, done, GATED)


def test_a_refused_token_has_its_own_message(server, hf_home, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_revoked_token")
    done = job().run()
    assert done.status == "failed" and done.error_kind == "HubError"
    assert "refused the token" in done.error and "(401)" in done.error and "hearth token" in done.error


def test_an_unknown_repo_is_reported_as_not_found(server, hf_home):
    done = job("mlx-community/no-such-model").run()
    assert done.status == "failed" and done.error_kind == "RepoNotFound"
    assert done.error == "mlx-community/no-such-model does not exist on the Hub (404)."
    assert not repo_dir(hf_home, "mlx-community/no-such-model").exists()
    assert library.state.load()["downloads"] == {}


def test_an_unreachable_hub_is_reported_as_offline(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"  # nothing listens there any more
    configure_hf_client(monkeypatch, endpoint, tmp_path / "hf-home")
    done = job().run()
    assert done.status == "failed" and done.error_kind == "Offline"
    assert done.error == (f"Cannot reach {endpoint} while looking up {REPO}: check the connection, "
                          f"then resume.")
    assert not (tmp_path / "hf-home" / "hub").exists()


def test_offline_mode_is_named_as_the_reason(server, hf_home, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    done = job().run()
    assert done.status == "failed" and done.error_kind == "Offline"
    assert "offline mode is on (HF_HUB_OFFLINE is set)" in done.error
    assert server.requests == []


def test_too_little_free_disk_stops_before_anything_is_written(server, hf_home, repo_files):
    seen: list[Path] = []

    def free(path: Path) -> int:
        seen.append(path)
        return 150_000_000

    done = job(free_bytes=free).run()
    assert done.status == "failed" and done.error_kind == "DiskFull"
    total = sum(len(repo_files[n]) for n in MODEL_FILES)
    assert done.error == (f"Not enough disk space for {REPO}: it needs {total / 1e3:.2f} kB more (plus "
                          f"{DISK_MARGIN_BYTES / 1e6:.2f} MB to spare) and 150.00 MB are free on {seen[0]}.")
    assert not repo_dir(hf_home).exists()
    # Only the shard index was read (into memory) to know which weights the model needs.
    assert [r.path.rsplit("/", 1)[1] for r in server.requests_for("/resolve/")] == ["model.safetensors.index.json"]
    assert library.state.load()["downloads"] == {}
    assert job(free_bytes=lambda path: 10**12).run().status == "complete"


def test_a_disk_that_fills_up_mid_download_stops_cleanly(server, hf_home, repo_files):
    limit = 50_000  # bytes per file: the small files fit, the weights do not
    before = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    """)
    script = CHILD_DOWNLOAD.format(before=before)
    proc = subprocess.run([sys.executable, "-c", script, REPO], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=child_env(server, hf_home, Path(os.environ["HEARTH_HOME"])))
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout.splitlines()[-1])
    assert done["status"] == "failed" and done["error_kind"] == "DiskFull"
    assert done["error"] == f"The disk is full while downloading {REPO}: free some space, then resume."
    blobs = repo_dir(hf_home) / "blobs"
    sha = weights_sha(server)
    assert not (blobs / sha).exists()  # never renamed into place
    assert (blobs / (sha + ".incomplete")).stat().st_size == limit
    assert not (repo_dir(hf_home) / "refs" / "main").exists()
    assert not (repo_dir(hf_home) / "snapshots" / server.commit_sha(REPO) / WEIGHTS).exists()
    model = library.find(REPO)
    assert not model.usable and model.problem.startswith("download failed (")

    server.clear_requests()  # space freed: the same command resumes
    done = job().run()
    assert_installed(server, hf_home, repo_files, done)
    assert [r.range for r in gets(server, WEIGHTS)] == [f"bytes={limit}-"]


def test_an_old_layout_repo_is_refused_before_downloading(server, hf_home, repo_files):
    server.add_repo(OLD, {"config.json": b'{"dim": 64, "n_layers": 2}', "weights.npz": b"\0" * 4096,
                          "tokenizer.model": repo_files["tokenizer.model"]})
    done = job(OLD).run()
    assert done.status == "failed" and done.error_kind == "HubError"
    assert done.error == (f"{OLD} is in the old MLX layout (weights.npz), which mlx-lm no longer loads; it "
                          f"has to be converted after download.")
    assert server.requests_for("/resolve/") == []
    assert not repo_dir(hf_home, OLD).exists()


def test_an_update_keeps_the_installed_snapshot_usable_until_it_is_verified(server, hf_home, repo_files):
    assert job().run().status == "complete"
    old_commit = server.commit_sha(REPO)
    changed = dict(repo_files)
    changed[WEIGHTS] = repo_files[WEIGHTS][:-1] + bytes([repo_files[WEIGHTS][-1] ^ 1])
    new_commit = server.add_repo(REPO, changed)
    assert new_commit != old_commit

    server.throttle(40_000)
    partial = partial_of(server, hf_home)
    update = job()
    thread, result = start(update)
    wait_for(lambda: partial.exists() and partial.stat().st_size >= CHUNK, "part of the new weights")
    update.pause()
    assert finish(thread, result).status == "paused"
    model = library.find(REPO)
    assert model.usable and model.path == repo_dir(hf_home) / "snapshots" / old_commit
    from engine.model_folder import resolve_model

    assert resolve_model(REPO).path == model.path

    server.throttle(None)
    done = job().run()
    assert done.status == "complete" and done.path.endswith(new_commit)
    model = library.find(REPO)
    assert model.usable and model.path.name == new_commit
    assert (model.path / WEIGHTS).read_bytes() == changed[WEIGHTS]


# ------------------------------------------------------------- the standard cache, both ways


def test_the_downloaded_model_loads_and_generates(server, hf_home, repo_files):
    assert job().run().status == "complete"
    import huggingface_hub
    import mlx_lm

    from engine.engine import Engine
    from engine.generation import GenerationRequest
    from engine.sampling import SamplingSettings

    server.clear_requests()
    # mlx-lm finds it where it looks itself: Hearth's layout is the standard one.
    folder = huggingface_hub.snapshot_download(REPO, local_files_only=True)
    model, tokenizer = mlx_lm.load(folder)
    assert tokenizer.encode("hello")
    engine = Engine().start()
    try:
        loaded = engine.load(REPO).wait()
        assert loaded.finish_reason == "done", loaded.error
        answer = engine.generate(GenerationRequest([{"role": "user", "content": "Hi"}],
                                                   SamplingSettings(temperature=0, max_tokens=5))).wait()
        assert answer.finish_reason in ("stop", "length"), answer.error
        assert 0 < answer.generation_tokens <= 5
    finally:
        engine.shutdown()
    assert server.requests == []  # loading and generating asked the Hub for nothing


def test_a_model_fetched_by_huggingface_hub_is_listed_and_loads(server, hf_home, repo_files):
    import huggingface_hub

    from engine.model_folder import resolve_model

    folder = Path(huggingface_hub.snapshot_download(REPO))  # what `hf download` / mlx-lm do
    model = library.find(REPO)
    assert model.usable and model.path == folder.resolve()
    assert resolve_model(REPO).path == folder.resolve()
    # Hearth then finds every file already there (same blobs), and fetches nothing.
    server.clear_requests()
    assert job().run().status == "complete"
    assert server.requests_for("/resolve/") == []


def test_huggingface_hub_reuses_what_hearth_downloaded(server, hf_home, repo_files):
    assert job().run().status == "complete"
    import huggingface_hub

    server.clear_requests()
    path = huggingface_hub.hf_hub_download(REPO, WEIGHTS)
    assert Path(path).read_bytes() == repo_files[WEIGHTS]
    assert [r.method for r in server.requests] == ["HEAD"]  # found in the cache: no GET
    info = huggingface_hub.scan_cache_dir(hf_home / "hub")
    (cached,) = [r for r in info.repos if r.repo_id == REPO]
    assert cached.size_on_disk == sum(len(repo_files[n]) for n in MODEL_FILES)
    assert {f.file_name for r in cached.revisions for f in r.files} == MODEL_FILES
    assert not info.warnings


def test_a_repo_whose_tree_listing_huggingface_hub_cached_still_loads(server, hf_home, repo_files):
    import huggingface_hub

    from engine.model_folder import resolve_model

    huggingface_hub.snapshot_download(REPO, allow_patterns=["config.json"])  # e.g. an mlx-lm config peek
    assert list((repo_dir(hf_home) / "trees").iterdir())
    assert job().run().status == "complete"
    assert library.find(REPO).usable  # listed as ready...
    assert resolve_model(REPO).repo_id == REPO  # ...so `hearth chat REPO` must load it


def test_no_connection_is_made_outside_the_download_calls(server, hf_home, monkeypatch):
    attempts: list[tuple[str, object]] = []
    inside = threading.local()
    real_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family != socket.AF_UNIX:
            attempts.append(("download" if getattr(inside, "on", False) else "outside", address))
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    download = job()
    real_run = download.run

    def run():
        inside.on = True
        try:
            return real_run()
        finally:
            inside.on = False

    from engine.model_folder import resolve_model

    library.installed_models()
    catalog.load()
    assert attempts == []
    assert run().status == "complete"
    assert attempts and all(kind == "download" and address[:2] == ("127.0.0.1", server.port)
                            for kind, address in attempts)
    attempts.clear()
    server.clear_requests()
    assert library.find(REPO).usable
    assert resolve_model(REPO).repo_id == REPO
    library.mark_used(REPO)
    assert attempts == [] and server.requests == []


# -------------------------------------------------------------------------------- the catalog


def test_catalog_check_marks_unusable_and_gated_repos(server, hf_home, repo_files, tmp_path, monkeypatch,
                                                      capsys):
    server.add_repo(OLD, {"config.json": b"{}", "weights.npz": b"\0" * 4096})
    server.add_repo(GATED, repo_files, gated=True)
    base = json.loads(catalog.CATALOG_FILE.read_text(encoding="utf-8"))["models"][0]
    entries = [dict(base, id=f"e{i}", name=f"Entry {i}", repo_id=repo, source="mlx", file=None,
                    download_bytes=1, gated=False)
               for i, repo in enumerate([REPO, OLD, GATED, "mlx-community/vanished"])]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"version": 1, "models": entries}), encoding="utf-8")
    monkeypatch.setattr(catalog, "CATALOG_FILE", path)

    from app.cli import main

    assert main(["catalog"]) == 0
    assert server.requests == []  # the shipped view is offline
    assert len([line for line in capsys.readouterr().out.splitlines() if f"[{REPO}]" in line]) == 1

    checked = {e.repo_id: e for e in catalog.check_online(catalog.load())}
    assert checked[REPO].usable and checked[REPO].download_bytes == sum(len(repo_files[n]) for n in MODEL_FILES)
    assert not checked[OLD].usable and "old MLX layout (weights.npz)" in checked[OLD].problem
    assert checked[GATED].usable and checked[GATED].gated
    assert not checked["mlx-community/vanished"].usable
    assert checked["mlx-community/vanished"].problem == "mlx-community/vanished does not exist on the Hub (404)."

    assert main(["catalog", "--check"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("[")[1].split("]")[0]: line for line in out.splitlines() if "[" in line}
    assert "UNUSABLE" not in lines[REPO]
    assert "UNUSABLE: " + checked[OLD].problem in lines[OLD]
    assert "(gated: needs a token)" in lines[GATED]
    assert "does not exist on the Hub" in lines["mlx-community/vanished"]


def test_search_finds_mlx_models_on_the_hub(server, hf_home, repo_files):
    server.add_repo("someone/tiny-pytorch", {"config.json": b"{}", "pytorch_model.bin": b"\0" * 10},
                    library_name="transformers")
    results = catalog.search_hub("tiny")
    assert [r.repo_id for r in results] == [REPO]
    assert results[0].weight_bytes and results[0].fit() is not None
    with pytest.raises(Exception, match="Give some words"):
        catalog.search_hub("  ")


# ---------------------------------------------------------------------------- the terminal


def hearth(server, hf_home: Path, *args: str, prelude: str = "", stdin: str | None = None,
           **popen) -> subprocess.Popen:
    """`python -m app.cli ARGS` in a child process against the server (after the Python lines in
    prelude, if any)."""
    command = [sys.executable, "-m", "app.cli"]
    if prelude:
        command = [sys.executable, "-c", "import sys, runpy\n" + prelude
                   + "sys.argv = ['hearth', *sys.argv[1:]]\n"
                   + "runpy.run_module('app.cli', run_name='__main__', alter_sys=True)\n"]
    return subprocess.Popen([*command, *args], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=child_env(server, hf_home, Path(os.environ["HEARTH_HOME"])), **popen)


def hearth_run(server, hf_home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = hearth(server, hf_home, *args, stdin=stdin)
    out, err = proc.communicate(stdin, timeout=60)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_hearth_download_ctrl_c_pauses_and_running_it_again_resumes(server, hf_home, repo_files):
    server.throttle(30_000)
    partial = partial_of(server, hf_home)
    proc = hearth(server, hf_home, "download", REPO)
    try:
        wait_for(lambda: partial.exists() and partial.stat().st_size >= 2 * CHUNK or proc.poll() is not None,
                 "the download to start")
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    size = partial.stat().st_size
    total = sum(len(repo_files[n]) for n in MODEL_FILES)
    on_disk = sum(p.stat().st_size for p in (repo_dir(hf_home) / "blobs").iterdir())
    assert out == ""
    assert f"Paused at {100 * on_disk // total}%; run `hearth download {REPO}` again to resume." in err
    assert "Traceback" not in err
    assert "downloading" in err  # the progress bar was drawn
    assert library.find(REPO).problem.startswith("download paused (")

    server.throttle(None)
    server.clear_requests()
    again = hearth_run(server, hf_home, "download", REPO)
    assert again.returncode == 0, again.stderr
    assert again.stdout == REPO + "\n"
    assert [r.range for r in gets(server, WEIGHTS)] == [f"bytes={size}-"]
    assert library.find(REPO).usable


def test_hearth_models_rm_import_search_and_token(server, hf_home, repo_files, tiny, tmp_path):
    download = hearth_run(server, hf_home, "download", REPO)
    assert download.returncode == 0 and download.stdout == REPO + "\n", download.stderr
    total = sum(len(repo_files[n]) for n in MODEL_FILES)

    models = hearth_run(server, hf_home, "models")
    assert models.returncode == 0, models.stderr
    (line,) = [line for line in models.stdout.splitlines() if REPO in line]
    assert f"{REPO}  {total / 1e9:.2f} GB" in line and "fit:" in line and "params" in line
    assert "last used: never" in line

    search = hearth_run(server, hf_home, "search", "tiny")
    assert search.returncode == 0 and search.stdout.startswith(REPO + "  "), search.stderr

    token = hearth_run(server, hf_home, "token", stdin=TOKEN + "\n")
    assert token.returncode == 0, token.stderr
    assert (hf_home / "token").read_text() == TOKEN
    assert stat.S_IMODE((hf_home / "token").stat().st_mode) == 0o600
    bad = hearth_run(server, hf_home, "token", stdin="hf_wrong\n")
    assert bad.returncode == 1 and bad.stderr.startswith("hearth: error: The Hub refused the token")
    assert (hf_home / "token").read_text() == TOKEN

    folder = tmp_path / "my-model"
    import shutil

    shutil.copytree(tiny["bpe_llama3"], folder)
    imported = hearth_run(server, hf_home, "import", str(folder))
    assert imported.returncode == 0 and imported.stdout == f"{folder}\n", imported.stderr

    rm = hearth_run(server, hf_home, "rm", REPO)
    assert rm.returncode == 0, rm.stderr
    assert f"Removed {REPO} ({total / 1e9:.2f} GB freed)" in rm.stderr
    assert not repo_dir(hf_home).exists()
    rm_folder = hearth_run(server, hf_home, "rm", str(folder))
    assert rm_folder.returncode == 0 and "was left as it is" in rm_folder.stderr
    assert (folder / "model.safetensors").exists()
    left = hearth_run(server, hf_home, "models")
    assert REPO not in left.stdout and str(folder) not in left.stdout

    missing = hearth_run(server, hf_home, "download", "mlx-community/no-such-model")
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith(
        "hearth: error: mlx-community/no-such-model does not exist on the Hub (404).")
    assert missing.stdout == ""


# ------------------------------------------------------------------- two processes at once


class Reader:
    """Collects a child's stream on a thread, so a test can wait for a line while it runs."""

    def __init__(self, stream) -> None:
        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for chunk in iter(lambda: stream.read(1), ""):
            self.text += chunk

    def join(self) -> str:
        self._thread.join(WAIT_S)
        return self.text


def run_to_end(proc: subprocess.Popen, err: Reader | None = None) -> tuple[int, str, str]:
    """Wait for a child (never forever: a hang fails the test); its exit code, stdout, stderr."""
    try:
        out = proc.stdout.read() if proc.stdout else ""
        proc.wait(WAIT_S * 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err.join() if err else proc.stderr.read()


def assert_verified_install(server, home: Path, repo_files: dict[str, bytes]) -> None:
    snapshot = repo_dir(home) / "snapshots" / server.commit_sha(REPO)
    assert all((snapshot / n).read_bytes() == repo_files[n] for n in MODEL_FILES)
    assert not list(repo_dir(home).rglob("*.incomplete"))
    model = library.find(REPO)
    assert model.usable and model.verification == "verified" and model.path == snapshot


def waiting_shares(stderr: str) -> list[int]:
    """The percentages of the progress lines a waiting download drew."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("waiting")]
    return [int(line.split()[1].rstrip("%")) for line in lines]


def test_two_downloads_of_one_repo_started_together_both_end_with_the_verified_model(server, hf_home,
                                                                                    repo_files):
    server.throttle(40_000)  # ~3 s for the weights: the two overlap
    procs = [hearth(server, hf_home, "download", REPO) for _ in range(2)]
    results = [run_to_end(p) for p in procs]
    for code, out, err in results:
        assert code == 0, err
        assert out == REPO + "\n" and "Traceback" not in err
    assert_verified_install(server, hf_home, repo_files)
    # One of them fetched each file; the other waited for it, and no byte was written twice.
    weights = len(repo_files[WEIGHTS])
    assert served_bytes(server) <= 1.1 * weights
    assert len(gets(server, WEIGHTS)) == 1


def start_second_while_the_first_holds_the_weights(server, hf_home) -> tuple[subprocess.Popen,
                                                                             subprocess.Popen, Reader]:
    """Two `hearth download REPO`: the first is fetching the weights (slowed to a crawl, so it
    cannot finish early) when the second reaches them and waits."""
    server.throttle(20_000)
    partial = partial_of(server, hf_home)
    first = hearth(server, hf_home, "download", REPO)
    wait_for(lambda: partial.exists() and partial.stat().st_size >= 2 * CHUNK or first.poll() is not None,
             "the first download to write some weights")
    server.throttle(500)
    second = hearth(server, hf_home, "download", REPO)
    second_err = Reader(second.stderr)
    wait_for(lambda: "another download is fetching model.safetensors; waiting for it" in second_err.text
             or second.poll() is not None, "the second download to wait")
    assert first.poll() is None and second.poll() is None
    return first, second, second_err


def test_a_second_download_waits_for_the_first_and_shows_its_progress(server, hf_home, repo_files):
    first, second, second_err = start_second_while_the_first_holds_the_weights(server, hf_home)
    server.throttle(20_000)  # ~5 s for the rest of the weights, watched by the second
    results = [run_to_end(first), run_to_end(second, second_err)]
    for code, out, err in results:
        assert code == 0 and out == REPO + "\n", err
    shares = waiting_shares(results[1][2])
    assert len(set(shares)) >= 2 and shares == sorted(shares)  # the first one's bytes, growing
    assert_verified_install(server, hf_home, repo_files)
    assert len(gets(server, WEIGHTS)) == 1
    assert served_bytes(server) == len(repo_files[WEIGHTS])


def test_a_waiting_download_takes_over_when_the_first_is_killed(server, hf_home, repo_files):
    first, second, second_err = start_second_while_the_first_holds_the_weights(server, hf_home)
    first.kill()  # its lock goes with it
    run_to_end(first)
    server.throttle(20_000)  # (unthrottled, the server would pour the rest into the dead socket)
    code, out, err = run_to_end(second, second_err)
    assert code == 0 and out == REPO + "\n", err
    assert_verified_install(server, hf_home, repo_files)
    ranges = [r.range for r in gets(server, WEIGHTS)]
    assert ranges[0] is None and len(ranges) == 2 and ranges[1].startswith("bytes=")
    assert int(ranges[1][len("bytes="):-1]) >= 2 * CHUNK  # it went on from the first one's file
    assert served_bytes(server) <= 1.1 * len(repo_files[WEIGHTS])


def test_huggingface_hub_waits_for_hearths_lock_on_a_blob(server, hf_home, repo_files):
    """Hearth writes a blob under the lock huggingface_hub takes for it, so `hf download` (or
    mlx-lm) started meanwhile does not fetch the same file beside it."""
    import huggingface_hub

    server.throttle(30_000)
    partial = partial_of(server, hf_home)
    hearth_job = job()
    thread, result = start(hearth_job)
    wait_for(lambda: partial.exists() and partial.stat().st_size >= 2 * CHUNK, "Hearth to write some weights")
    path = huggingface_hub.hf_hub_download(REPO, WEIGHTS)  # blocks on the lock, then finds the blob
    assert Path(path).read_bytes() == repo_files[WEIGHTS]
    assert finish(thread, result).status == "complete"
    assert len(gets(server, WEIGHTS)) == 1


# ------------------------------------------------------------------ damaged files in the cache


def test_a_damaged_blob_from_another_tool_is_listed_as_damaged_and_a_download_repairs_it(server, hf_home,
                                                                                         repo_files):
    import huggingface_hub

    huggingface_hub.snapshot_download(REPO)  # what `hf download` / mlx-lm leave
    blob = repo_dir(hf_home) / "blobs" / weights_sha(server)
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF  # one byte of the weights' data: same size, still loadable
    blob.write_bytes(bytes(data))

    models = hearth_run(server, hf_home, "models")
    assert models.returncode == 0, models.stderr
    (line,) = [line for line in models.stdout.splitlines() if REPO in line]
    assert "NOT USABLE: damaged: model.safetensors does not match its SHA-256 on the Hub" in line
    assert f"`hearth download {REPO}` fetches it again" in line

    server.clear_requests()
    again = hearth_run(server, hf_home, "download", REPO)
    assert again.returncode == 0 and again.stdout == REPO + "\n", again.stderr
    assert [r.range for r in gets(server, WEIGHTS)] == [None]  # the weights afresh, nothing else
    assert {r.path.rsplit("/", 1)[1] for r in server.requests_for("/resolve/", "GET")} == {WEIGHTS}
    assert blob.read_bytes() == repo_files[WEIGHTS]
    assert_verified_install(server, hf_home, repo_files)


# ------------------------------------------------------------------- faults end, never hang


def last_line(text: str) -> str:
    return text.replace("\r", "\n").strip().splitlines()[-1]


def test_a_full_disk_under_hearths_library_file_ends_the_download_with_one_line(server, hf_home,
                                                                               tmp_path, monkeypatch):
    """The reported hang: library.json cannot be written (ENOSPC), and the command used to wait
    forever on a dead worker thread."""
    from disk_faults import fill, small_tmpfs

    with small_tmpfs(tmp_path / "full-disk") as disk:
        monkeypatch.setenv("HEARTH_HOME", str(disk / "hearth"))
        from engine import paths

        paths.data_dir()  # the folders exist; then nothing more fits
        paths.logs_dir()
        fill(disk)
        code, out, err = run_to_end(hearth(server, hf_home, "download", REPO))
        assert code == 1 and out == ""
        record = disk / "hearth" / "data" / "library.json"
        assert last_line(err) == (f"hearth: error: Hearth cannot write its library file {record}: the disk is "
                                  f"full; free some space and try again.")
        assert "Traceback" not in err
        assert not repo_dir(hf_home).exists()  # it stopped before writing anything


def test_a_disk_that_fills_up_mid_download_ends_it_with_one_line_and_it_resumes(server, hf_home,
                                                                                repo_files, tmp_path,
                                                                                monkeypatch):
    """Another program fills the disk while the weights arrive: blob and library file alike get
    ENOSPC. The command ends with the disk's message; with space freed, the same command resumes."""
    from disk_faults import fill, small_tmpfs

    with small_tmpfs(hf_home, "2M") as disk:
        monkeypatch.setenv("HEARTH_HOME", str(disk / "hearth"))
        server.throttle(20_000)
        partial = partial_of(server, hf_home)
        # The free-space check wants 200 MB to spare, which this small disk never has: it is
        # passed (as on a disk with room) so that the disk fills during the transfer.
        proc = hearth(server, hf_home, "download", REPO,
                      prelude="import engine.library.downloads as d; d.DISK_MARGIN_BYTES = 0\n")
        wait_for(lambda: partial.exists() and partial.stat().st_size >= 2 * CHUNK or proc.poll() is not None,
                 "some weights on the disk")
        filler = fill(disk)
        code, out, err = run_to_end(proc)
        assert code == 1 and out == "", err
        assert last_line(err) == f"hearth: error: The disk is full while downloading {REPO}: free some space, then resume."
        assert "Traceback" not in err
        assert not (repo_dir(hf_home) / "blobs" / weights_sha(server)).exists()
        assert not library.find(REPO).usable

        filler.unlink()
        server.throttle(None)
        code, out, err = run_to_end(hearth(server, hf_home, "download", REPO,
                                           prelude="import engine.library.downloads as d; d.DISK_MARGIN_BYTES = 0\n"))
        assert code == 0 and out == REPO + "\n", err
        assert gets(server, WEIGHTS)[-1].range.startswith("bytes=")  # resumed, not restarted
        assert_verified_install(server, hf_home, repo_files)


def test_a_read_only_library_folder_ends_the_download_with_one_line(server, hf_home):
    from disk_faults import read_only

    from engine import paths

    data = paths.data_dir()
    with read_only(data):
        code, out, err = run_to_end(hearth(server, hf_home, "download", REPO))
    assert code == 1 and out == "" and "Traceback" not in err
    why = "its folder is on a read-only disk" if os.geteuid() == 0 else "permission denied"
    assert last_line(err).startswith(f"hearth: error: Hearth cannot write its library file "
                                     f"{data / 'library.json'}: {why}")


def test_a_read_only_hugging_face_cache_ends_the_download_with_one_line(server, hf_home):
    from disk_faults import read_only

    cache = hf_home / "hub"
    cache.mkdir(parents=True)
    with read_only(cache):
        code, out, err = run_to_end(hearth(server, hf_home, "download", REPO))
    assert code == 1 and out == "" and "Traceback" not in err
    why = "is on a read-only disk" if os.geteuid() == 0 else "may not be written (permission denied)"
    line = last_line(err)
    assert line.startswith(f"hearth: error: Cannot save while downloading {REPO}: {cache}/")
    assert line.endswith(f" {why}. Make it writable, or set HF_HOME to a folder that is.")
    assert not repo_dir(hf_home).exists()


def test_a_worker_whose_event_handler_fails_still_hands_over_a_result(server, hf_home, repo_files):
    """An on_event that raises (say a window closed and its object deleted under the job): the
    waiting side gets a failed result with the reason, never a thread that died silently."""
    def handler(event) -> None:
        if isinstance(event, DownloadDone):
            raise RuntimeError("Internal C++ object (DownloadManager) already deleted.")

    worker = downloads.start_worker(job(on_event=handler))
    done = worker.wait(WAIT_S)
    assert done is not None, "the worker did not end"
    assert done.status == "failed" and done.error_kind == "RuntimeError"
    assert done.error == (f"The download of {REPO} stopped unexpectedly: Internal C++ object "
                          f"(DownloadManager) already deleted.")
    # The download itself had finished: the files are in place and verified.
    assert_verified_install(server, hf_home, repo_files)


def test_download_file_fetches_one_verified_file(server, hf_home, repo_files):
    path = downloads.download_file(REPO, "tokenizer_config.json")
    assert path == repo_dir(hf_home) / "snapshots" / server.commit_sha(REPO) / "tokenizer_config.json"
    assert path.read_bytes() == repo_files["tokenizer_config.json"]
    with pytest.raises(hub.HubError, match=f"{REPO} has no file nope.gguf"):
        downloads.download_file(REPO, "nope.gguf")


def test_download_repo_stops_from_another_thread_and_resumes(server, hf_home, repo_files):
    server.throttle(20_000)
    stop = threading.Event()
    partial = partial_of(server, hf_home)
    events = Recorder()
    result: list[DownloadDone] = []
    thread = threading.Thread(target=lambda: result.append(downloads.download_repo(REPO, on_event=events,
                                                                                   stop=stop)))
    thread.start()
    wait_for(lambda: partial.exists() and partial.stat().st_size >= CHUNK, "some weights on disk")
    stop.set()
    thread.join(WAIT_S)
    assert result and result[0].status == "paused"
    assert isinstance(events.items[-1][1], DownloadDone)
    size = partial.stat().st_size
    server.throttle(None)
    done = downloads.download_repo(REPO)
    assert_installed(server, hf_home, repo_files, done)
    assert gets(server, WEIGHTS)[-1].range == f"bytes={size}-"


def test_download_repo_with_discard_on_stop_leaves_nothing(server, hf_home):
    server.throttle(20_000)
    stop = threading.Event()
    partial = partial_of(server, hf_home)
    result: list[DownloadDone] = []
    thread = threading.Thread(target=lambda: result.append(downloads.download_repo(REPO, stop=stop,
                                                                                   discard_on_stop=True)))
    thread.start()
    wait_for(lambda: partial.exists() and partial.stat().st_size >= CHUNK, "some weights on disk")
    stop.set()
    thread.join(WAIT_S)
    assert result and result[0].status == "cancelled"
    assert not repo_dir(hf_home).exists()


def test_discarding_a_paused_download_spares_a_file_another_process_is_writing(server, hf_home):
    """Settings > Downloads > Cancel on a paused row while `hearth download` of the same repo runs
    in a terminal: the terminal's partial file is left alone."""
    server.throttle(20_000)
    partial = partial_of(server, hf_home)
    first = job()
    thread, result = start(first)
    wait_for(lambda: partial.exists() and partial.stat().st_size >= CHUNK, "some weights on disk")
    first.pause()
    assert finish(thread, result).status == "paused"
    other = hearth(server, hf_home, "download", REPO)  # resumes the same partial file
    other_err = Reader(other.stderr)
    wait_for(lambda: partial.stat().st_size >= 3 * CHUNK or other.poll() is not None, "the other process")
    downloads.discard_partial(REPO)
    assert partial.exists() or (repo_dir(hf_home) / "blobs" / weights_sha(server)).exists()
    code, out, err = run_to_end(other, other_err)
    assert code == 0 and out == REPO + "\n", err
    assert library.find(REPO).usable

    downloads.discard_partial(REPO)  # nobody at work: a finished snapshot stays, records go
    assert library.find(REPO).usable
