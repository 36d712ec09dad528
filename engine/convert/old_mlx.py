"""The old mlx-examples Llama layout (weights.npz + Meta's params) to a standard mlx-lm folder.

mlx-examples' llms/llama/convert.py saved Meta's checkpoint as-is: Meta's tensor names, Meta's
params.json as config.json, and optionally Linear layers quantized by MLX (weight/scales/biases).
mlx-lm no longer loads that. Here the tensors are renamed to mlx-lm's (Hugging Face's) names and
streamed one at a time from the npz into model.safetensors, so memory stays near one tensor.

Meta's q/k rows are in the interleaved rotary layout (MLX's RoPE traditional=True), mlx-lm's llama
uses the half-split one. We permute q/k rows the way Hugging Face's conversion does, so the folder is
an ordinary Llama folder for any tool. Only rows move: quantization groups run along columns, so a
quantized weight and its scales and biases permute together and keep their exact values.

The feed-forward width and the number of KV heads are taken from the weights' shapes (w1's rows,
wk's rows over the head size), as mlx-examples' own loader took hidden_dim from w1: its config.json
is Meta's params.json, whose multiple_of formula or missing n_kv_heads need not fit the weights
(fine-tunes, grouped-query models). A disagreement is logged, not refused.

The npz is read without unpickling (allow_pickle=False, object arrays refused from their header):
a pickle can run code when loaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import shutil
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .common import (
    LLAMA2_CHAT_TEMPLATE,
    ConversionError,
    ConversionProgress,
    ProgressCallback,
    check_cancel,
    check_free_disk,
    check_result,
    llama_tokenizer_config,
    models_dir,
    safe_name,
    staging,
    write_json,
)

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.npz"
TOKENIZER_FILE = "tokenizer.model"
LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "USE_POLICY.md")
# Meta's checkpoints carry precomputed rotary frequencies; the model recomputes them.
IGNORED_TENSORS = frozenset({"rope.freqs"})
LLAMA2_CONTEXT = 4096
W1, WK = "layers.0.feed_forward.w1.weight", "layers.0.attention.wk.weight"

LAYER_MODULES = {
    "attention.wq": "self_attn.q_proj",
    "attention.wk": "self_attn.k_proj",
    "attention.wv": "self_attn.v_proj",
    "attention.wo": "self_attn.o_proj",
    "feed_forward.w1": "mlp.gate_proj",
    "feed_forward.w2": "mlp.down_proj",
    "feed_forward.w3": "mlp.up_proj",
    "attention_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
TOP_MODULES = {"tok_embeddings": "model.embed_tokens", "norm": "model.norm", "output": "lm_head"}
LAYER_RE = re.compile(r"layers\.(\d+)\.(.+)\.(weight|scales|biases)")
TOP_RE = re.compile(r"(\w+)\.(weight|scales|biases)")

SAFETENSORS_DTYPES = {np.dtype("<f2"): "F16", np.dtype("<f4"): "F32", np.dtype("<u4"): "U32"}
FLOAT_DTYPES = (np.dtype("<f2"), np.dtype("<f4"))
NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


@dataclass(frozen=True)
class _Params:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_dim: int
    vocab_size: int
    norm_eps: float
    rope_theta: float
    interleaved_rope: bool
    quantization: dict[str, Any] | None
    float_dtype: str


@dataclass(frozen=True)
class _Tensor:
    old: str
    new: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def convert_old_mlx(
    source: Path,
    name: str | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Convert an old-layout folder (weights.npz, params-style config.json, tokenizer.model) into
    models_dir()/<name>; returns that folder. Raises ConversionError, or ConversionCancelled."""
    source = Path(source).expanduser().resolve()
    name = safe_name(name or source_label(source))
    _require_files(source)
    raw = _read_config(source)
    npz_path = source / WEIGHTS_FILE
    with _open_npz(npz_path) as npz:
        headers = _read_headers(npz)
        params = _params(raw, headers)
        tensors = _plan(params, headers)
        check_free_disk(models_dir(), npz_path.stat().st_size)
        check_cancel(cancel)
        with staging(name) as stage:
            _write_weights(npz, tensors, params, stage / "model.safetensors", on_progress, cancel)
            chat = any("chat" in n.lower() for n in (name, source_label(source)))
            token_ids = _write_tokenizer(source, stage, chat, params, on_progress)
            write_json(stage / "config.json", {**_hf_config(params, raw), **token_ids})
            _check_result(stage)
    return models_dir() / name


def source_label(source: Path) -> str:
    """A model name for a folder: the repo name for a Hugging Face cache snapshot (whose folder is
    just a commit hash), the folder name otherwise."""
    repo = source.parent.parent.name
    if source.parent.name == "snapshots" and repo.startswith("models--"):
        return repo.split("--")[-1]
    return source.name


# --- reading the source ---


def _require_files(source: Path) -> None:
    if not source.is_dir():
        raise ConversionError(f"{source} is not a folder.")
    missing = [f for f in (WEIGHTS_FILE, "config.json", TOKENIZER_FILE) if not (source / f).is_file()]
    if missing:
        raise ConversionError(
            f"{source.name} is not an old-layout MLX Llama folder: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing."
        )


def _read_config(source: Path) -> dict[str, Any]:
    try:
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"config.json in {source.name} cannot be read: {exc}") from exc
    if not isinstance(config, dict) or "dim" not in config or "n_layers" not in config:
        raise ConversionError(
            f"config.json in {source.name} is not Meta's params format (dim, n_layers, n_heads...), "
            f"so this is not the old MLX layout."
        )
    if config.get("model_type", "llama") != "llama":
        raise ConversionError(
            f"{source.name} is a {config['model_type']!r} model; only Llama models in the old MLX "
            f"layout can be converted."
        )
    return config


@contextlib.contextmanager
def _open_npz(path: Path) -> Iterator[zipfile.ZipFile]:
    """The npz as the zip of .npy files it is; read with numpy's npy reader, never np.load's
    fallbacks (a non-zip file would be tried as a pickle)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _damaged(exc) from exc
    with archive:
        yield archive


def _damaged(exc: Exception) -> ConversionError:
    return ConversionError(f"{WEIGHTS_FILE} is damaged or truncated ({exc}); download it again.")


def _read_headers(npz: zipfile.ZipFile) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array, from the .npy headers only (no data, no pickles)."""
    headers = {}
    for member in npz.namelist():
        if not member.endswith(".npy"):
            raise ConversionError(f"{WEIGHTS_FILE} holds {member!r}, which is not a numpy array.")
        try:
            with npz.open(member) as f:
                headers[member[: -len(".npy")]] = _npy_header(f, member)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as exc:
            raise _damaged(exc) from exc
    return headers


def _npy_header(f: BinaryIO, member: str) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    reader = NPY_HEADER_READERS.get(version)
    if reader is None:
        raise ConversionError(f"{WEIGHTS_FILE}: {member} uses npy format {version}, not supported.")
    shape, _fortran, dtype = reader(f)
    if dtype.hasobject:
        raise ConversionError(
            f"{WEIGHTS_FILE}: {member} holds Python objects (a pickle), not numbers. Hearth never "
            f"loads pickles, because opening one can run arbitrary code."
        )
    return tuple(int(d) for d in shape), dtype


# --- checking params against the tensors ---


def _params(raw: dict[str, Any], headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> _Params:
    dim, n_heads = _int(raw, "dim"), _int(raw, "n_heads")
    head_dim = _int(raw, "head_dim") if raw.get("head_dim") is not None else dim // n_heads
    for key in (W1, WK, "tok_embeddings.weight"):
        if key not in headers or len(headers[key][0]) != 2:
            raise ConversionError(f"{WEIGHTS_FILE} has no 2-D {key}, which every Llama model has.")
    # The feed-forward width and the KV heads are what the weights have, as mlx-examples' loader
    # took them; params written by hand or for another checkpoint may say otherwise.
    hidden_dim = headers[W1][0][0]
    _note_disagreement("feed-forward width", _declared_hidden_dim(raw, dim), hidden_dim)
    n_kv_heads = _kv_heads(headers[WK][0][0], head_dim)
    declared_kv = _int(raw, "n_kv_heads") if raw.get("n_kv_heads") is not None else None
    _note_disagreement("number of KV heads", declared_kv, n_kv_heads)
    vocab_size = headers["tok_embeddings.weight"][0][0]
    declared = raw.get("vocab_size")
    if isinstance(declared, int) and declared > 0 and declared != vocab_size:  # Meta's params say -1
        raise _mismatch(f"the embedding has {vocab_size} rows but vocab_size is {declared}")
    if n_heads % n_kv_heads or head_dim % 2:
        raise _mismatch(f"{n_heads} heads, {n_kv_heads} KV heads and head size {head_dim} do not fit")
    return _Params(
        dim=dim,
        n_layers=_int(raw, "n_layers"),
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        hidden_dim=hidden_dim,
        vocab_size=vocab_size,
        norm_eps=_float(raw, "norm_eps", 1e-5),
        rope_theta=_float(raw, "rope_theta", 10000.0),
        # Meta's layout unless the config says otherwise (mlx-examples wrote false for models it
        # took from Hugging Face, whose q/k are already permuted).
        interleaved_rope=bool(raw.get("rope_traditional", True)),
        quantization=_quantization(raw),
        float_dtype=_float_dtype(headers),
    )


def _kv_heads(wk_rows: int, head_dim: int) -> int:
    if wk_rows % head_dim:
        raise _mismatch(f"{WK} has {wk_rows} rows, not a whole number of heads of size {head_dim}")
    return wk_rows // head_dim


def _note_disagreement(what: str, declared: int | None, actual: int) -> None:
    if declared is not None and declared != actual:
        log.warning("config.json calls for a %s of %d but the weights have %d; using the weights'",
                    what, declared, actual)


def _float_dtype(headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> str:
    floats = (str(dtype.newbyteorder("=")) for _, dtype in headers.values() if dtype.kind == "f")
    return next(floats, "float16")


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConversionError(f"config.json lacks a valid {key!r} (found {value!r}).")
    return value


def _float(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConversionError(f"config.json has an invalid {key!r}: {value!r}.")
    return float(value)


def _declared_hidden_dim(raw: dict[str, Any], dim: int) -> int | None:
    """The feed-forward width the params call for: hidden_dim, or Meta's formula from multiple_of."""
    if raw.get("hidden_dim") is not None:
        return _int(raw, "hidden_dim")
    if raw.get("multiple_of") is None:
        return None
    # meta-llama/llama, model.py FeedForward.
    multiple_of = _int(raw, "multiple_of")
    width = int(2 * (4 * dim) / 3)
    if raw.get("ffn_dim_multiplier") is not None:
        width = int(_float(raw, "ffn_dim_multiplier", 1.0) * width)
    return multiple_of * ((width + multiple_of - 1) // multiple_of)


def _quantization(raw: dict[str, Any]) -> dict[str, Any] | None:
    quant = raw.get("quantization")
    if quant is None:
        return None
    ok = isinstance(quant, dict) and all(
        isinstance(quant.get(k), int) and quant[k] > 0 for k in ("group_size", "bits")
    )
    if not ok or 32 % quant["bits"]:
        raise ConversionError(f"config.json has an unusable quantization entry: {quant!r}.")
    return quant


def _mismatch(detail: str) -> ConversionError:
    return ConversionError(f"The weights in {WEIGHTS_FILE} do not match config.json: {detail}.")


def _new_name(old: str) -> str | None:
    if m := LAYER_RE.fullmatch(old):
        module = LAYER_MODULES.get(m[2])
        return f"model.layers.{m[1]}.{module}.{m[3]}" if module else None
    if m := TOP_RE.fullmatch(old):
        module = TOP_MODULES.get(m[1])
        return f"{module}.{m[2]}" if module else None
    return None


def _logical_shapes(p: _Params) -> dict[str, tuple[int, ...]]:
    """Every module mlx-lm's llama has (new names), with its unquantized weight shape."""
    q_rows, kv_rows = p.n_heads * p.head_dim, p.n_kv_heads * p.head_dim
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens": (p.vocab_size, p.dim),
        "model.norm": (p.dim,),
        "lm_head": (p.vocab_size, p.dim),
    }
    per_layer = {
        "self_attn.q_proj": (q_rows, p.dim),
        "self_attn.k_proj": (kv_rows, p.dim),
        "self_attn.v_proj": (kv_rows, p.dim),
        "self_attn.o_proj": (p.dim, q_rows),
        "mlp.gate_proj": (p.hidden_dim, p.dim),
        "mlp.down_proj": (p.dim, p.hidden_dim),
        "mlp.up_proj": (p.hidden_dim, p.dim),
        "input_layernorm": (p.dim,),
        "post_attention_layernorm": (p.dim,),
    }
    for i in range(p.n_layers):
        shapes.update({f"model.layers.{i}.{m}": s for m, s in per_layer.items()})
    return shapes


def _plan(p: _Params, headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> list[_Tensor]:
    """Every tensor to write, in file order, after checking names, shapes and dtypes."""
    renamed = {old: _new_name(old) for old in headers if old not in IGNORED_TENSORS}
    unknown = sorted(old for old, new in renamed.items() if new is None)
    if unknown:
        raise ConversionError(
            f"{WEIGHTS_FILE} holds tensors a Llama model does not have: {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''}. It is not a Llama model in the old MLX layout."
        )
    by_new = {new: old for old, new in renamed.items()}
    tensors = []
    for module, shape in _logical_shapes(p).items():
        for suffix, want in _expected(p, module, shape, by_new).items():
            old = by_new.pop(f"{module}.{suffix}", None)
            if old is None:
                raise _mismatch(f"{module}.{suffix} is missing")
            tensors.append(_checked(old, f"{module}.{suffix}", headers[old], want))
    if by_new:  # e.g. a layer beyond n_layers
        raise _mismatch(f"{', '.join(sorted(by_new.values())[:3])} is more than the params describe")
    return tensors


def _expected(p: _Params, module: str, shape: tuple[int, ...], by_new: dict[str, str]) -> dict:
    """suffix -> (shape, allowed dtypes) for one module, quantized where its scales are present."""
    if f"{module}.scales" not in by_new:
        return {"weight": (shape, FLOAT_DTYPES)}
    if p.quantization is None:
        raise _mismatch(f"{module} is quantized but config.json has no quantization entry")
    bits, group = p.quantization["bits"], p.quantization["group_size"]
    if len(shape) != 2 or shape[1] % group:
        raise _mismatch(f"{module} has scales, but {list(shape)} does not split into groups of {group}")
    rows, cols = shape
    groups = (rows, cols // group)
    return {
        "weight": ((rows, cols * bits // 32), (np.dtype("<u4"),)),
        "scales": (groups, FLOAT_DTYPES),
        "biases": (groups, FLOAT_DTYPES),
    }


def _checked(old: str, new: str, header: tuple[tuple[int, ...], np.dtype], want: tuple) -> _Tensor:
    shape, dtype = header
    want_shape, dtypes = want
    if shape != want_shape:
        raise _mismatch(f"{old} is {list(shape)} but the params call for {list(want_shape)}")
    if dtype.newbyteorder("<") not in dtypes:
        raise _mismatch(f"{old} is stored as {dtype}, expected {' or '.join(str(d) for d in dtypes)}")
    return _Tensor(old, new, shape, dtype.newbyteorder("<"))


# --- writing ---


def _write_weights(
    npz: zipfile.ZipFile,
    tensors: list[_Tensor],
    p: _Params,
    path: Path,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> None:
    """Stream the tensors into one safetensors file: the header is known from the npy headers, so
    each tensor is read, permuted and written on its own."""
    with open(path, "wb") as out:
        out.write(_safetensors_header(tensors))
        for done, tensor in enumerate(tensors, 1):
            check_cancel(cancel)
            array = _read_array(npz, tensor)
            if p.interleaved_rope and tensor.new.split(".")[-2] in ("q_proj", "k_proj"):
                heads = p.n_heads if "q_proj" in tensor.new else p.n_kv_heads
                array = _half_split_rows(array, heads)
            out.write(memoryview(np.ascontiguousarray(array)).cast("B"))
            _report(on_progress, "writing", done, len(tensors), tensor.new)


def _read_array(npz: zipfile.ZipFile, tensor: _Tensor) -> np.ndarray:
    try:
        with npz.open(tensor.old + ".npy") as f:
            array = np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as exc:
        raise _damaged(exc) from exc
    if array.shape != tensor.shape:
        raise _damaged(ValueError(f"{tensor.old} does not read back as its header says"))
    return array.astype(tensor.dtype, copy=False)


def _half_split_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """Meta's interleaved rotary rows (pairs 2i, 2i+1) to the half-split ones (pairs i, i + d/2),
    as Hugging Face's convert_llama_weights_to_hf permute()."""
    rows, cols = w.shape
    return w.reshape(heads, rows // heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def _safetensors_header(tensors: list[_Tensor]) -> bytes:
    header: dict[str, Any] = {"__metadata__": {"format": "mlx"}}
    offset = 0
    for t in tensors:
        header[t.new] = {
            "dtype": SAFETENSORS_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    return len(text).to_bytes(8, "little") + text


def _write_tokenizer(
    source: Path, stage: Path, chat: bool, p: _Params, on_progress: ProgressCallback | None
) -> dict[str, int]:
    """Copy tokenizer.model (and license files), add tokenizer_config.json and
    generation_config.json; return the bos/eos ids for config.json."""
    import sentencepiece as spm

    shutil.copyfile(source / TOKENIZER_FILE, stage / TOKENIZER_FILE)
    try:
        sp = spm.SentencePieceProcessor(model_file=str(stage / TOKENIZER_FILE))
    except (RuntimeError, OSError) as exc:
        raise ConversionError(
            f"{TOKENIZER_FILE} in {source.name} is not a sentencepiece model: {exc}"
        ) from exc
    if sp.get_piece_size() > p.vocab_size or min(sp.bos_id(), sp.eos_id()) < 0:
        raise ConversionError(
            f"{TOKENIZER_FILE} in {source.name} does not belong to these weights: it has "
            f"{sp.get_piece_size()} tokens for an embedding of {p.vocab_size}, or no BOS/EOS."
        )
    template = LLAMA2_CHAT_TEMPLATE if chat else None
    write_json(stage / "tokenizer_config.json", llama_tokenizer_config(template))
    token_ids = {"bos_token_id": sp.bos_id(), "eos_token_id": sp.eos_id()}
    write_json(stage / "generation_config.json", token_ids)
    for license_file in LICENSE_FILES:
        if (source / license_file).is_file():
            shutil.copyfile(source / license_file, stage / license_file)
    _report(on_progress, "tokenizer", 1, 1, TOKENIZER_FILE)
    return token_ids


def _hf_config(p: _Params, raw: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": p.dim,
        "num_hidden_layers": p.n_layers,
        "num_attention_heads": p.n_heads,
        "num_key_value_heads": p.n_kv_heads,
        "head_dim": p.head_dim,
        "intermediate_size": p.hidden_dim,
        "hidden_act": "silu",
        "rms_norm_eps": p.norm_eps,
        "vocab_size": p.vocab_size,
        "max_position_embeddings": LLAMA2_CONTEXT,
        "rope_theta": p.rope_theta,
        # mlx-lm's llama ties by default, which would drop output.weight.
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": p.float_dtype,
    }
    if p.quantization is not None:
        config["quantization"] = raw["quantization"]
    return config


def _check_result(stage: Path) -> None:
    check_result(stage, "converted")


def _report(
    on_progress: ProgressCallback | None, stage: str, done: int, total: int, message: str
) -> None:
    if on_progress is not None:
        on_progress(ConversionProgress(stage, done, total, message))
