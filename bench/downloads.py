"""Downloads benchmark: Hearth's verified download against a plain huggingface_hub download, and the
time to list a Hugging Face cache holding 50 models.

- Throughput: one repo (a random ~256 MiB model.safetensors built here once, in bench/.cache/, plus
  small JSON files) served by tests/hub_server.py on 127.0.0.1 without throttling, downloaded into a
  fresh cache by Hearth's DownloadJob (SHA-256 and size checks, fsync, cache layout included) and by
  huggingface_hub.snapshot_download of the same files, alternating, in the same run; before each
  one, os.sync() writes back what the previous one left in the page cache, so no run pays for
  another's writes. The figure is Hearth's throughput as a share of huggingface_hub's (goal >= 0.9).
  huggingface_hub neither hashes nor fsyncs, so Hearth's verification and durability are in the cost;
  a second baseline, huggingface_hub followed by an fsync of the files it wrote, shows how much of
  the difference is the disk (when the disk is slower than the loopback transfer, it is most of it).
- Listing: library.installed_models() over a cache of 50 mlx models (16-layer 4-bit tiny Llamas,
  laid out as huggingface_hub lays them out), against huggingface_hub.scan_cache_dir() of the same
  cache (what `hf cache scan` does) in the same run. The first listing hashes every model file
  (the check against the Hub's hashes) and is reported on its own; later ones find the hashes in
  Hearth's memo (keyed by path, size and mtime).

Run alone with `python -m bench.downloads` (or from run_all once listed there).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

from bench import common

REPO = "bench/random-llama-256m"
WEIGHTS_BYTES = 256 * 1024 * 1024
ROUNDS = 9
LIST_MODELS = 50
LIST_REPEATS = 7
GOAL = 0.9
FRAME_MS = 16.0


# ------------------------------------------------------------------------------ the repos


def _bench_repo() -> Path:
    """bench/.cache/download-repo: a random model.safetensors (one U8 tensor) and small JSON files."""
    folder = common.CACHE / "download-repo"
    weights = folder / "model.safetensors"
    if weights.is_file() and weights.stat().st_size >= WEIGHTS_BYTES:
        return folder
    scratch = common.CACHE / f".building-download-repo-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    header = json.dumps({"pad.weight": {"dtype": "U8", "shape": [WEIGHTS_BYTES],
                                        "data_offsets": [0, WEIGHTS_BYTES]},
                         "__metadata__": {"format": "mlx"}}).encode()
    header += b" " * (-len(header) % 8)
    with open(scratch / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        left = WEIGHTS_BYTES
        while left:
            n = min(left, 16 * 1024 * 1024)
            f.write(os.urandom(n))
            left -= n
    config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "vocab_size": 512, "quantization": {"bits": 4, "group_size": 32}}
    (scratch / "config.json").write_text(json.dumps(config, indent=2))
    (scratch / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>", "bos_token": "<s>"}))
    (scratch / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    (scratch / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": WEIGHTS_BYTES}, "weight_map": {"pad.weight": "model.safetensors"}}))
    (scratch / "README.md").write_text("---\nlibrary_name: mlx\n---\n# Random weights for a benchmark\n")
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)
    return folder


def _tiny_model() -> Path:
    """A 16-layer 4-bit tiny Llama (real mlx-lm folder: headers with a realistic tensor count)."""
    spec = common.ModelSpec(hidden_size=64, num_layers=16, intermediate_size=128, num_heads=4, num_kv_heads=2)
    return common.model_folder(spec)


def _cache_repo(cache: Path, repo_id: str, folder: Path, commit: str) -> None:
    """The repo laid out as huggingface_hub lays it out: blobs, snapshot symlinks, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        etag = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / etag).write_bytes(data)
        (snapshot / path.name).symlink_to(f"../../blobs/{etag}")


# ------------------------------------------------------------------------------- timing


@contextlib.contextmanager
def _client(server, home: Path):
    """huggingface_hub pointed at the server, with its cache in home (and Hearth's data beside it)."""
    import pytest
    from hub_server import configure_hf_client

    with pytest.MonkeyPatch.context() as mp:
        configure_hf_client(mp, server.endpoint, home)
        mp.setenv("HEARTH_HOME", str(home / "hearth"))
        yield
    import huggingface_hub

    huggingface_hub.close_session()


def _hearth_download(server, home: Path) -> float:
    from engine.library.downloads import DownloadJob

    with _client(server, home):
        os.sync()
        start = time.perf_counter()
        done = DownloadJob(REPO).run()
        seconds = time.perf_counter() - start
    if done.status != "complete":
        raise RuntimeError(f"Hearth's download failed: {done.error}")
    return seconds


def _hf_download(server, home: Path, files: list[str], durable: bool = False) -> float:
    import huggingface_hub

    with _client(server, home):
        os.sync()
        start = time.perf_counter()
        folder = huggingface_hub.snapshot_download(REPO, allow_patterns=files)
        if durable:  # what Hearth also does: each file on disk before it counts
            for name in files:
                fd = os.open(os.path.realpath(os.path.join(folder, name)), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        seconds = time.perf_counter() - start
    return seconds


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return common.median(times)


def throughput(scratch: Path) -> dict:
    import huggingface_hub.utils as hf_utils
    from hub_server import HubServer

    hf_utils.disable_progress_bars()
    folder = _bench_repo()
    files = sorted(p.name for p in folder.iterdir() if p.name != "README.md")
    size = sum((folder / name).stat().st_size for name in files)
    runs = {
        "hearth": lambda server, home: _hearth_download(server, home),
        "hf": lambda server, home: _hf_download(server, home, files),
        "hf_fsync": lambda server, home: _hf_download(server, home, files, durable=True),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with HubServer() as server:
        server.add_repo(REPO, folder)
        for i in range(ROUNDS + 1):  # the first round warms the page cache and is not counted
            order = list(runs)[i % len(runs):] + list(runs)[:i % len(runs)]
            for name in order:
                home = scratch / f"{name}-{i}"
                seconds = runs[name](server, home)
                if i:
                    times[name].append(seconds)
                shutil.rmtree(home, ignore_errors=True)
        assert server.internal_errors == []
    hearth, hf, hf_fsync = (common.median(times[n]) for n in ("hearth", "hf", "hf_fsync"))
    return {"bytes": size, "hearth_s": times["hearth"], "hf_s": times["hf"], "hf_fsync_s": times["hf_fsync"],
            "hearth_mb_s": size / hearth / 1e6, "hf_mb_s": size / hf / 1e6, "hf_fsync_mb_s": size / hf_fsync / 1e6,
            "ratio": hf / hearth, "ratio_vs_durable": hf_fsync / hearth}


def listing(scratch: Path) -> dict:
    import huggingface_hub

    from engine.library import library

    model = _tiny_model()
    cache = scratch / "hf-home" / "hub"
    for i in range(LIST_MODELS):
        _cache_repo(cache, f"mlx-community/bench-model-{i:02d}", model, f"{i:040x}")
    old = {k: os.environ.get(k) for k in ("HF_HOME", "HF_HUB_CACHE", "HEARTH_HOME")}
    os.environ.update(HF_HOME=str(scratch / "hf-home"), HF_HUB_CACHE=str(cache),
                      HEARTH_HOME=str(scratch / "hearth"))
    try:
        start = time.perf_counter()
        models = library.installed_models()
        first = (time.perf_counter() - start) * 1000
        if len(models) != LIST_MODELS or not all(m.usable for m in models):
            raise RuntimeError(f"expected {LIST_MODELS} usable models, got {[(m.ref, m.problem) for m in models]}")
        listed = _median_ms(library.installed_models, LIST_REPEATS)
        scanned = _median_ms(lambda: huggingface_hub.scan_cache_dir(cache), LIST_REPEATS)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"models": LIST_MODELS, "first_list_ms": first, "list_ms": listed, "scan_cache_dir_ms": scanned,
            "ratio": listed / scanned,
            "tensors_per_model": _tensor_count(model)}


def _tensor_count(folder: Path) -> int:
    from engine import safetensors_header

    return len(safetensors_header.read_headers(sorted(folder.glob("model*.safetensors"))))


def run() -> dict:
    common.header("downloads", "Hearth's verified download vs huggingface_hub; listing a 50-model cache")
    need = 3 * WEIGHTS_BYTES
    free = shutil.disk_usage(common.CACHE.parent).free
    if free < need:
        raise RuntimeError(f"the download benchmark needs {need / 1e9:.1f} GB free, {free / 1e9:.1f} GB are")
    common.CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=common.CACHE, prefix=".downloads-") as tmp:
        scratch = Path(tmp)
        speed = throughput(scratch)
        lists = listing(scratch)
    met = speed["ratio"] >= GOAL
    common.row(f"repo: {speed['bytes'] / 1e6:,.0f} MB from 127.0.0.1",
               f"median of {ROUNDS} alternating rounds after a warm-up")
    common.row("huggingface_hub snapshot_download (baseline)",
               f"{common.median(speed['hf_s']):.2f} s = {speed['hf_mb_s']:,.0f} MB/s "
               f"({common.spread(speed['hf_s'])} s)")
    common.row("Hearth DownloadJob (SHA-256, size, fsync)",
               f"{common.median(speed['hearth_s']):.2f} s = {speed['hearth_mb_s']:,.0f} MB/s "
               f"({common.spread(speed['hearth_s'])} s)")
    common.row("huggingface_hub, then fsync of its files",
               f"{common.median(speed['hf_fsync_s']):.2f} s = {speed['hf_fsync_mb_s']:,.0f} MB/s "
               f"({common.spread(speed['hf_fsync_s'])} s)")
    common.row(f"Hearth throughput / huggingface_hub (goal >= {GOAL})",
               f"{speed['ratio']:.2f}: {common.verdict(met)}")
    common.row("Hearth throughput / huggingface_hub + fsync", f"{speed['ratio_vs_durable']:.2f}")
    common.row(f"scan_cache_dir, {lists['models']} models (baseline)", f"{lists['scan_cache_dir_ms']:.1f} ms")
    common.row(f"first installed_models, {lists['models']} models (hashes every file)",
               f"{lists['first_list_ms']:.1f} ms")
    common.row(f"installed_models, {lists['models']} models ({lists['tensors_per_model']} tensors each)",
               f"{lists['list_ms']:.1f} ms = {lists['ratio']:.2f}x scan_cache_dir, "
               f"{lists['list_ms'] / lists['models']:.2f} ms a model, {lists['list_ms'] / FRAME_MS:.1f} frames")
    return {
        "name": "downloads",
        "figure": "Hearth / huggingface_hub throughput",
        "value": speed["ratio"],
        "goal": f">= {GOAL}",
        "met": met,
        "more": [{"figure": f"list a cache of {lists['models']} models (ms)", "value": lists["list_ms"],
                  "goal": "(no goal)", "met": None}],
        "throughput": speed,
        "listing": lists,
    }


if __name__ == "__main__":
    run()
