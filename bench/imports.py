"""Imports benchmark: import time and peak memory for a ~1 GB GGUF file and a ~1 GB fp16 folder,
against the time to simply copy the same bytes.

Inputs (random weights, no downloads), built once into bench/.cache/ in a folder named after every
parameter that shapes them and a digest of the code that writes them:
- a Llama with hidden 2048, MLP 5632, 16 heads / 16 KV heads (head_dim 128, like Llama 2 7B's
  attention), sentencepiece vocabulary of 512, 20 layers: 1.03 G parameters;
- that network as a GGUF file of Q8_0 tensors (tests/gguf_writer.py, the way llama.cpp's converter
  writes it, norms F32): ~1.09 GB. Q8_0 is one of the usual Llama 2 downloads (TheBloke's
  *.Q8_0.gguf) and takes the importer's main path: blocks repacked bit for bit as MLX 8-bit;
- the same network as a Q4_K_M-style file (Q4_K, with Q6_K for the output matrix and for attn_v /
  ffn_down in llama.cpp's "more bits" layers; random valid K-quant blocks): ~0.6 GB. Q4_K_M is the
  commonest Llama 2 download, and MLX cannot take K-quants, so every matrix goes through gguf's
  dequantize, then MLX's quantize (the mixed-type path);
- its first 10 layers as a Hugging Face folder like meta-llama/Llama-2-7b-hf: float16 weights in
  two model-0000N-of-00002.safetensors shards with an index, tokenizer.model: ~1.03 GB, which
  quantize_hf turns into 4-bit group-64 weights.

Each import runs in a child process (so its peak RSS is its own) with HEARTH_HOME in a scratch folder
under bench/.cache/ (the same filesystem as the sources). The child reports the time of the call,
the time including an fsync of every file it wrote, its peak RSS (VmHWM, exact), the peaks of its
anonymous and file-backed RSS (sampled every 5 ms; GGUFReader maps the file, so pages of the source
it has read count in its RSS) and MLX's peak allocation.

Baseline: shutil.copyfile of the same source file(s) into the same scratch folder, then fsync, in the
same run. Copies and imports alternate (copy, import, import, copy, ...) over ROUNDS rounds; before
each one, os.sync() writes back what the previous one left dirty. The sources are read once first,
so every copy and import reads them from the page cache. Figures: median (import + fsync) /
(copy + fsync), peak RSS / source bytes (and / output bytes). The issue sets no goal: all recorded.

Run alone with `python -m bench.imports`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/imports.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

VARIANT = "spm_legacy"
HIDDEN = 2048
INTERMEDIATE = 5632
HEADS = 16
KV_HEADS = 16
GGUF_LAYERS = 20  # 1.03 G parameters: Q8_0 ~1.09 GB
HF_LAYERS = 10  # 0.52 G parameters: float16 ~1.03 GB
SEED = 0
BUILD_VERSION = "1"  # bump when the way the inputs are written below changes
ROUNDS = 3
RESULT_TAG = "IMPORTS-RESULT "
CHILD_TIMEOUT = 600.0

Q8_GGUF = "llama-bench-Q8_0.gguf"
MIXED_GGUF = "llama-bench-Q4_K_M.gguf"
HF_FOLDER = "Llama-bench-hf"


# ------------------------------------------------------------------------------ the inputs


def _inputs_key() -> str:
    import gguf
    import mlx.core as mx
    import mlx_lm

    digest = hashlib.sha256(BUILD_VERSION.encode())
    for name in ("tiny_models.py", "gguf_writer.py"):
        digest.update((common.TESTS / name).read_bytes())
    digest.update(f"mlx {mx.__version__} mlx-lm {mlx_lm.__version__} gguf {_gguf_version(gguf)}".encode())
    return (f"imports-{VARIANT}-h{HIDDEN}-i{INTERMEDIATE}-a{HEADS}-kv{KV_HEADS}-gguf{GGUF_LAYERS}"
            f"-hf{HF_LAYERS}-s{SEED}-{digest.hexdigest()[:10]}")


def _gguf_version(gguf) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gguf")
    except PackageNotFoundError:
        return getattr(gguf, "__version__", "?")


def _inputs_ready(folder: Path) -> bool:
    return all((folder / name).exists() for name in (Q8_GGUF, MIXED_GGUF, HF_FOLDER, "build.json"))


def inputs() -> tuple[Path, dict]:
    """The cached inputs folder (built in a child process if absent) and its build.json."""
    folder = common.CACHE / _inputs_key()
    if not _inputs_ready(folder):
        common.CACHE.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(common.CACHE).free
        if free < 10e9:  # the float32 network (4.1 GB) while the three inputs (2.7 GB) are written
            raise RuntimeError(f"building the import inputs needs ~7 GB free, {free / 1e9:.1f} GB are")
        print(f"   building {folder.name} (random 1 G-parameter Llama, once; ~2 minutes)...", flush=True)
        _run_child(["--build", str(folder)], env=dict(os.environ))
    return folder, json.loads((folder / "build.json").read_text(encoding="utf-8"))


def build_inputs(folder: Path) -> None:
    """Write the three inputs into a scratch folder, then rename it to folder."""
    import tiny_models

    scratch = folder.parent / f".building-{os.getpid()}-{folder.name}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    base = scratch / "base-float32"
    times = {}
    tic = time.perf_counter()
    tiny_models.build_model(base, VARIANT, quantize=False, seed=SEED, hidden_size=HIDDEN,
                            num_layers=GGUF_LAYERS, num_heads=HEADS, num_kv_heads=KV_HEADS,
                            intermediate_size=INTERMEDIATE)
    times["random_float32_model_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    _write_q8_gguf(base, scratch / Q8_GGUF)
    times["q8_0_gguf_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    _write_mixed_gguf(base, scratch / MIXED_GGUF)
    times["q4_k_m_gguf_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    _write_hf_folder(base, scratch / HF_FOLDER)
    times["hf_fp16_folder_s"] = time.perf_counter() - tic
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    shutil.rmtree(base)
    info = {"times": times, "build_s": sum(times.values()), "vocab_size": config["vocab_size"],
            "gguf_parameters": _parameters(GGUF_LAYERS, config["vocab_size"]),
            "hf_parameters": _parameters(HF_LAYERS, config["vocab_size"])}
    (scratch / "build.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)


def _parameters(layers: int, vocab: int) -> int:
    head_dim = HIDDEN // HEADS
    attention = 2 * HIDDEN * HEADS * head_dim + 2 * HIDDEN * KV_HEADS * head_dim
    per_layer = attention + 3 * HIDDEN * INTERMEDIATE + 2 * HIDDEN
    return layers * per_layer + 2 * vocab * HIDDEN + HIDDEN


def _write_q8_gguf(base: Path, dest: Path) -> None:
    import gguf_writer

    gguf_writer.write_gguf(base, dest, tensor_type="Q8_0", name="llama-bench")


def _matrix_shapes(vocab: int) -> dict[str, tuple[int, int]]:
    """(rows, columns) of every 2-D GGUF tensor of the network."""
    head_dim = HIDDEN // HEADS
    shapes = {"token_embd.weight": (vocab, HIDDEN), "output.weight": (vocab, HIDDEN)}
    for i in range(GGUF_LAYERS):
        shapes.update({
            f"blk.{i}.attn_q.weight": (HEADS * head_dim, HIDDEN),
            f"blk.{i}.attn_k.weight": (KV_HEADS * head_dim, HIDDEN),
            f"blk.{i}.attn_v.weight": (KV_HEADS * head_dim, HIDDEN),
            f"blk.{i}.attn_output.weight": (HIDDEN, HEADS * head_dim),
            f"blk.{i}.ffn_gate.weight": (INTERMEDIATE, HIDDEN),
            f"blk.{i}.ffn_up.weight": (INTERMEDIATE, HIDDEN),
            f"blk.{i}.ffn_down.weight": (HIDDEN, INTERMEDIATE),
        })
    return shapes


def _q4_k_m_type(name: str) -> str:
    """llama.cpp's Q4_K_M choice: Q6_K for output and for attn_v / ffn_down in its use_more_bits
    layers (the first and last eighth, and every third one between), Q4_K elsewhere."""
    if name == "output.weight":
        return "Q6_K"
    if name.startswith("blk.") and name.split(".")[2] in ("attn_v", "ffn_down"):
        i, n = int(name.split(".")[1]), GGUF_LAYERS
        if i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2:
            return "Q6_K"
    return "Q4_K"


def _write_mixed_gguf(base: Path, dest: Path) -> None:
    import gguf_writer

    vocab = json.loads((base / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    raw = {}
    for seed, (name, (rows, cols)) in enumerate(sorted(_matrix_shapes(vocab).items()), start=SEED):
        qtype = _q4_k_m_type(name)
        raw[name] = (qtype, gguf_writer.random_k_quant(rows, cols, qtype, seed=seed))
    gguf_writer.write_gguf(base, dest, raw_tensors=raw, name="llama-bench")


def _write_hf_folder(base: Path, dest: Path) -> None:
    """Layers 0..HF_LAYERS-1 of base as a float16 Hugging Face folder in two shards."""
    import mlx.core as mx

    weights = mx.load(str(base / "model.safetensors"))
    names = sorted(k for k in weights
                   if not k.startswith("model.layers.") or int(k.split(".")[2]) < HF_LAYERS)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    dest.mkdir(parents=True)
    for shard, keys in shards.items():
        mx.save_safetensors(str(dest / shard), {k: weights[k].astype(mx.float16) for k in keys},
                            metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (dest / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    config.update(num_hidden_layers=HF_LAYERS, torch_dtype="float16",
                  _name_or_path="meta-llama/Llama-bench-hf")
    (dest / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for name in ("tokenizer.model", "tokenizer_config.json", "generation_config.json"):
        shutil.copyfile(base / name, dest / name)


# ------------------------------------------------------------------------------ the child


def _status() -> dict[str, int]:
    """/proc/self/status memory lines, in bytes."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                values[key] = int(rest.split()[0]) * 1024
    return values


class _Sampler(threading.Thread):
    """Peaks of RssAnon and RssFile (VmHWM has only their sum)."""

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks = {"RssAnon": 0, "RssFile": 0}
        self.finished = threading.Event()

    def sample(self) -> None:
        status = _status()
        for key in self.peaks:
            self.peaks[key] = max(self.peaks[key], status.get(key, 0))

    def run(self) -> None:
        while not self.finished.is_set():
            self.sample()
            self.finished.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self.finished.set()
        self.join()
        self.sample()
        return self.peaks


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _estimate(kind: str, source: Path) -> int | None:
    """The memory the importer itself expects to need (what it checks against free memory)."""
    try:
        if kind == "gguf":
            from engine.convert import gguf_import as g

            reader = g.open_gguf(source)
            config = g.model_config(g.Metadata(reader, source), {t.name: t for t in reader.tensors})
            plans = g.plan_tensors({t.name: t for t in reader.tensors}, config)
            return g._working_memory(plans, g._compute_dtype(plans))
        from engine import safetensors_header
        from engine.convert import hf_quantize as h

        files = h._weight_files(source)
        tensors = safetensors_header.read_headers(files)
        output = sum(h._quantized_bytes(t, h.DEFAULT_BITS, h.DEFAULT_GROUP_SIZE) for t in tensors.values())
        return output + max(f.stat().st_size for f in files)
    except Exception:  # private helpers: a refactoring must not break the benchmark
        return None


def child_main(kind: str, source: Path, name: str) -> None:
    """One import in this process (HEARTH_HOME set by the parent); prints its figures as JSON."""
    import mlx.core as mx

    from engine.convert.common import models_dir
    from engine.convert.gguf_import import import_gguf
    from engine.convert.hf_quantize import quantize_hf

    models_dir()
    before = _status()
    sampler = _Sampler()
    sampler.start()
    tic = time.perf_counter()
    folder = import_gguf(source, name) if kind == "gguf" else quantize_hf(source, name)
    call_s = time.perf_counter() - tic
    _fsync_tree(folder)
    synced_s = time.perf_counter() - tic
    peaks = sampler.stop()
    status = _status()
    result = {
        "call_s": call_s, "synced_s": synced_s, "hwm": status["VmHWM"], "rss_before": before["VmRSS"],
        "anon_peak": peaks["RssAnon"], "file_peak": peaks["RssFile"], "mlx_peak": int(mx.get_peak_memory()),
        "output_bytes": _tree_bytes(folder), "estimate": _estimate(kind, source),
    }
    print(RESULT_TAG + json.dumps(result), flush=True)


def _run_child(args: list[str], env: dict[str, str]) -> dict | None:
    proc = subprocess.run([sys.executable, "-m", "bench.imports", *args], env=env, cwd=str(common.REPO),
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-6000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return None


# ------------------------------------------------------------------------------ the parent


def _files(source: Path) -> list[Path]:
    return [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file())


def _copy(source: Path, scratch: Path) -> tuple[float, float]:
    """(copy, copy + fsync) seconds for the source's file(s) into a fresh folder of scratch."""
    dest = scratch / "copy"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    os.sync()
    tic = time.perf_counter()
    for path in _files(source):
        shutil.copyfile(path, dest / path.name)
    copied = time.perf_counter() - tic
    _fsync_tree(dest)
    synced = time.perf_counter() - tic
    shutil.rmtree(dest)
    return copied, synced


def _import(kind: str, source: Path, scratch: Path, name: str) -> dict:
    home = scratch / "home"
    env = dict(os.environ)
    env.update(HEARTH_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
    os.sync()
    result = _run_child(["--child", kind, str(source), name], env)
    if result is None:
        raise RuntimeError(f"the {kind} import of {source.name} printed no result")
    shutil.rmtree(home / "data" / "models" / name)
    return result


def _warm(source: Path) -> None:
    for path in _files(source):
        with open(path, "rb") as f:
            while f.read(64 * 2**20):
                pass


def measure(kind: str, source: Path, scratch: Path) -> dict:
    copies: list[tuple[float, float]] = []
    imports: list[dict] = []
    for i in range(ROUNDS):
        steps = ["copy", "import"] if i % 2 == 0 else ["import", "copy"]
        for step in steps:
            if step == "copy":
                copies.append(_copy(source, scratch))
            else:
                imports.append(_import(kind, source, scratch, f"bench-{kind}-{i}"))
    size = _tree_bytes(source)
    copy_s = [c[0] for c in copies]
    copy_sync_s = [c[1] for c in copies]
    call_s = [r["call_s"] for r in imports]
    synced_s = [r["synced_s"] for r in imports]
    hwm = max(r["hwm"] for r in imports)
    output = imports[-1]["output_bytes"]
    return {
        "source_bytes": size, "output_bytes": output,
        "copy_s": copy_s, "copy_fsync_s": copy_sync_s, "import_s": call_s, "import_fsync_s": synced_s,
        "ratio": common.median(synced_s) / common.median(copy_sync_s),
        "ratio_no_fsync": common.median(call_s) / common.median(copy_s),
        "peak_rss": hwm, "peak_rss_per_source": hwm / size, "peak_rss_per_output": hwm / output,
        "rss_before": max(r["rss_before"] for r in imports),
        "anon_peak": max(r["anon_peak"] for r in imports), "file_peak": max(r["file_peak"] for r in imports),
        "mlx_peak": max(r["mlx_peak"] for r in imports), "estimate": imports[-1]["estimate"],
    }


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def _report(label: str, what: str, m: dict) -> None:
    common.row(f"{label}: {_gb(m['source_bytes'])} -> {_gb(m['output_bytes'])}", what)
    common.row("  copy + fsync (baseline)",
               f"{common.median(m['copy_fsync_s']):.2f} s ({common.spread(m['copy_fsync_s'])}); "
               f"copy alone {common.median(m['copy_s']):.2f} s")
    common.row("  import + fsync of its output",
               f"{common.median(m['import_fsync_s']):.2f} s ({common.spread(m['import_fsync_s'])}) "
               f"= {m['ratio']:.2f}x copy")
    common.row("  import call alone / copy alone",
               f"{common.median(m['import_s']):.2f} s = {m['ratio_no_fsync']:.2f}x")
    common.row("  peak RSS (VmHWM)",
               f"{_gb(m['peak_rss'])} = {m['peak_rss_per_source']:.2f}x source, "
               f"{m['peak_rss_per_output']:.2f}x output")
    common.row("    of which: before the call / anon / file-mapped",
               f"{_gb(m['rss_before'])} / {_gb(m['anon_peak'])} / {_gb(m['file_peak'])} "
               f"(peaks, sampled); MLX peak {_gb(m['mlx_peak'])}")
    if m["estimate"] is not None:
        common.row("  the importer's own memory estimate", _gb(m["estimate"]))


def run() -> dict:
    common.header("imports", "GGUF import and fp16 quantizing vs copying the same bytes "
                             f"(each import in a child process; {ROUNDS} alternating rounds)")
    started = time.perf_counter()
    folder, built = inputs()
    cases = [
        ("q8_0", "gguf", folder / Q8_GGUF),
        ("hf_fp16", "hf", folder / HF_FOLDER),
        ("q4_k_m", "gguf", folder / MIXED_GGUF),
    ]
    for _name, _kind, source in cases:
        _warm(source)
    results = {}
    with tempfile.TemporaryDirectory(dir=common.CACHE, prefix=".imports-") as tmp:
        for name, kind, source in cases:
            results[name] = measure(kind, source, Path(tmp))
    common.row("inputs", f"random Llama h{HIDDEN}/MLP {INTERMEDIATE}/{HEADS} heads, vocab "
                         f"{built['vocab_size']}; built once in {built['build_s']:.0f} s")
    _report(f"Q8_0 GGUF, {GGUF_LAYERS} layers ({built['gguf_parameters'] / 1e9:.2f} G params)",
            "import_gguf, native repack", results["q8_0"])
    _report(f"fp16 HF folder, {HF_LAYERS} layers ({built['hf_parameters'] / 1e9:.2f} G params)",
            "quantize_hf, 4-bit group 64", results["hf_fp16"])
    _report(f"Q4_K_M GGUF, {GGUF_LAYERS} layers", "import_gguf, dequantize + requantize",
            results["q4_k_m"])
    seconds = time.perf_counter() - started
    common.row("benchmark time", f"{seconds:.0f} s (building the inputs included if they were absent)")

    def more(figure: str, value: float) -> dict:
        return {"figure": figure, "value": value, "goal": "(recorded)", "met": None}

    q8, hf, mixed = results["q8_0"], results["hf_fp16"], results["q4_k_m"]
    return {
        "name": "imports",
        "figure": f"Q8_0 GGUF ({_gb(q8['source_bytes'])}) import time / copy time, both + fsync",
        "value": q8["ratio"],
        "goal": "(recorded; the issue sets no goal)",
        "met": None,
        "more": [
            more(f"fp16 folder ({_gb(hf['source_bytes'])}) quantize_hf time / copy time", hf["ratio"]),
            more(f"Q4_K_M GGUF ({_gb(mixed['source_bytes'])}) import time / copy time", mixed["ratio"]),
            more("Q8_0 GGUF import: peak RSS / source bytes", q8["peak_rss_per_source"]),
            more("fp16 quantize_hf: peak RSS / source bytes", hf["peak_rss_per_source"]),
            more("Q4_K_M GGUF import: peak RSS / source bytes", mixed["peak_rss_per_source"]),
        ],
        "inputs": {"folder": folder.name, **built},
        "results": results,
        "seconds": seconds,
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) > 1 and sys.argv[1] == "--build":
        build_inputs(Path(sys.argv[2]))
    else:
        run()
