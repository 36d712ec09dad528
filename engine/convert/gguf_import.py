"""Import a GGUF file (llama.cpp, Ollama, LM Studio) of the llama architecture as an mlx-lm folder.

Everything is read with the `gguf` package's GGUFReader, which maps the file and gives each tensor's
raw blocks, one tensor at a time (progress and cancel between tensors, memory bounded by one output
shard rather than the whole file).

Weights, by GGML type:
- Q4_0, Q4_1, Q8_0: their 32-value blocks are exactly MLX's affine quantization with group size 32
  (scale d, bias -8d / m / -128d), so they are repacked bit for bit into (weight, scales, biases):
  the same arrays `mx.load` makes of them, without its all-or-nothing failure on other types.
- F32, F16, BF16: kept as floats (an import does not silently lower a file's precision).
- Any other type gguf can dequantize (K-quants, Q5_x, IQ*...): dequantized to floats, then quantized
  by MLX at group size 32 with the nearest bit width MLX has (Q5_x -> 5, Q6_K -> 6, most others -> 4).
  That adds rounding error, so it is reported (progress message, log, hearth-import.json).
- Types gguf cannot dequantize: ConversionError before anything is written.
Quantized layers all use group size 32; config.json's "quantization" holds the commonest bit width
and an entry per layer that differs (mlx-lm and model_folder both read such per-layer entries).
Floats (norms, float matrices, scales) are stored in one compute dtype: float32 for an all-F32 file,
float16 when anything is quantized or F16, else bfloat16. Mixing would make MLX promote activations
to float32 (twice the KV cache).

Rotary layout: llama.cpp's converter permutes the rows of q and k (each head's half-split rotary
pairs become interleaved, Meta's original layout). The rows are put back, so the folder has the
Hugging Face layout that mlx-lm's llama uses by default (rope_traditional false), like every other
mlx-lm llama folder. Only rows move, so quantized groups (along columns) stay intact.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import common
from .common import ConversionError, ConversionProgress, ProgressCallback
from .gguf_tokenizer import tokenizer_files_for

log = logging.getLogger(__name__)

GROUP_SIZE = 32
# Converted arrays wait in memory until their shard is written: smaller shards, less memory.
SHARD_BYTES = 512 * 2**20
ROW_CHUNK = 4096  # rows dequantized at a time, so a large tensor never sits whole in float32
NOTE_FILE = "hearth-import.json"

NATIVE_BITS = {"Q4_0": 4, "Q4_1": 4, "Q8_0": 8}
FLOAT_TYPES = ("F32", "F16", "BF16")
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# Nearest MLX bit width for the types MLX cannot take as they are; anything else dequantizable -> 4.
REQUANT_BITS = {"Q5_0": 5, "Q5_1": 5, "Q5_K": 5, "Q6_K": 6, "Q8_1": 8, "Q8_K": 8}

GLOBAL_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
LAYER_TENSORS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
LAYER_RE = re.compile(r"^blk\.(\d+)\.(\w+)\.weight$")
# Tensors llama.cpp itself ignores (old conversions stored rotary tables per layer).
IGNORED_RE = re.compile(r"^blk\.\d+\.attn_rot_embd\.weight$")

@dataclass(frozen=True)
class TensorPlan:
    """How one GGUF tensor becomes mlx-lm weights."""

    gguf_name: str
    module: str  # mlx-lm module path, e.g. model.layers.0.self_attn.q_proj
    ggml_type: str
    kind: str  # "float", "native" (repacked as is) or "requantize"
    bits: int | None
    rows: int
    cols: int | None  # None for 1-D tensors
    heads: int | None  # q/k: number of heads whose rows llama.cpp permuted

    @property
    def elements(self) -> int:
        return self.rows * (self.cols or 1)

    def output_bytes(self, float_bytes: int) -> int:
        """Bytes in the converted folder (quantized: packed values plus a scale and a bias per group)."""
        if self.kind == "float":
            return self.elements * float_bytes
        return self.elements * self.bits // 8 + 2 * float_bytes * self.elements // GROUP_SIZE


def import_gguf(
    path: Path,
    name: str | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Convert a llama-architecture GGUF file into models_dir()/<name> (default: the file's stem).

    Raises ConversionError (nothing is left behind) for a file that is not GGUF or is truncated,
    another architecture, a tensor type gguf cannot dequantize, a tokenizer that cannot be rebuilt
    or too little disk; ConversionCancelled when cancel is set."""
    path = Path(path).expanduser()
    report = _Reporter(on_progress)
    report("reading", 0, 1, f"Reading {path.name}")
    reader = open_gguf(path)
    meta = Metadata(reader, path)
    tensors = {t.name: t for t in reader.tensors}
    config = model_config(meta, tensors)
    plans = plan_tensors(tensors, config)
    tokenizer_files = tokenizer_files_for(meta, config)
    config.update(quantization_config(plans))
    dtype = _compute_dtype(plans)
    config["torch_dtype"] = dtype
    common.check_free_disk(common.models_dir(), _needed_bytes(plans, dtype, tokenizer_files))
    common.check_free_memory(_working_memory(plans, dtype), "import this GGUF file")
    note = _import_note(path, plans)
    if note["requantized"]:
        report("requantizing", 0, len(plans), note["summary"])
        log.warning("%s: %s", path.name, note["summary"])

    target_name = name or path.stem
    with common.staging(target_name) as stage:
        for file_name, content in tokenizer_files.items():
            (stage / file_name).write_bytes(content)
        write_weights(stage, reader, plans, dtype, report, cancel)
        common.write_json(stage / "config.json", config)
        common.write_json(stage / NOTE_FILE, note)
    report("done", 1, 1, note["summary"])
    return common.models_dir() / common.safe_name(target_name)


# --------------------------------------------------------------------------- reading the file


def open_gguf(path: Path) -> Any:
    """A GGUFReader for path, or a ConversionError saying why the file cannot be one."""
    from gguf import GGUFReader

    if not path.is_file():
        raise ConversionError(f"There is no file at {path}.")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ConversionError(f"{path.name} is not a GGUF file (it does not start with the GGUF signature).")
    try:
        reader = GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError, IndexError... on any malformed byte
        raise ConversionError(
            f"{path.name} cannot be read as GGUF ({exc}): the file is damaged or truncated "
            f"(an interrupted download?). Download it again."
        ) from exc
    if reader.byte_order != "I":
        raise ConversionError(f"{path.name} is a big-endian GGUF file, which Hearth cannot import.")
    size = path.stat().st_size
    for tensor in reader.tensors:
        end = tensor.data_offset + tensor.n_bytes
        if end > size:
            raise ConversionError(
                f"{path.name} is truncated: tensor {tensor.name} needs {end:,} bytes but the file has "
                f"{size:,}. Download it again."
            )
    return reader


class Metadata:
    """The GGUF key/value metadata, read on demand."""

    def __init__(self, reader: Any, path: Path) -> None:
        self.fields = reader.fields
        self.file_name = path.name
        self.stem = path.stem
        self._values: dict[str, Any] = {}  # decoded once: a vocabulary is 100,000+ strings

    def get(self, key: str, default: Any = None) -> Any:
        field = self.fields.get(key)
        if field is None:
            return default
        if key not in self._values:
            try:
                self._values[key] = field.contents()
            except (UnicodeDecodeError, ValueError, IndexError) as exc:
                raise ConversionError(f"{self.file_name} has unreadable metadata {key}: {exc}") from exc
        return self._values[key]

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise ConversionError(f"{self.file_name} lacks the metadata {key}, which a llama model needs.")
        return value

    def int(self, key: str, default: int | None = None) -> int:
        value = self.get(key, default) if default is not None else self.require(key)
        if isinstance(value, list):  # per-layer values: fine only when they are all the same
            if not value or len(set(value)) != 1:
                raise ConversionError(f"{self.file_name} gives {key} per layer ({value[:4]}...); Hearth "
                                      f"imports models whose layers all have the same shape.")
            value = value[0]
        return int(value)


def logical_shape(tensor: Any) -> tuple[int, ...]:
    """Numpy (row-major) shape: GGUF lists dimensions fastest first, so reversed."""
    return tuple(int(d) for d in reversed(tensor.shape))


# --------------------------------------------------------------------------- config


def model_config(meta: Metadata, tensors: dict[str, Any]) -> dict[str, Any]:
    """config.json for mlx-lm's llama from the llama.* metadata."""
    arch = meta.require("general.architecture")
    if arch != "llama":
        raise ConversionError(
            f"{meta.file_name} holds a {arch!r} model; Hearth imports GGUF files of the llama "
            f"architecture (Llama 2, Llama 3, Code Llama and their fine-tunes)."
        )
    if meta.int("llama.expert_count", 0) > 0:
        raise ConversionError(f"{meta.file_name} is a mixture-of-experts model (Mixtral style), which "
                              f"Hearth does not import.")
    if "token_embd.weight" not in tensors:
        raise ConversionError(f"{meta.file_name} has no token_embd.weight tensor: it is incomplete.")
    hidden = meta.int("llama.embedding_length")
    heads = meta.int("llama.attention.head_count")
    head_dim = meta.int("llama.attention.key_length", hidden // heads)
    rope_dims = meta.int("llama.rope.dimension_count", head_dim)
    if rope_dims != head_dim:
        raise ConversionError(f"{meta.file_name} rotates {rope_dims} of {head_dim} dimensions per head; "
                              f"mlx-lm's llama rotates them all.")
    tokens = meta.require("tokenizer.ggml.tokens")
    vocab_rows = logical_shape(tensors["token_embd.weight"])[0]
    if len(tokens) > vocab_rows:
        raise ConversionError(f"{meta.file_name} lists {len(tokens)} tokens but its embedding has only "
                              f"{vocab_rows} rows.")
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": meta.int("llama.block_count"),
        "intermediate_size": meta.int("llama.feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": meta.int("llama.attention.head_count_kv", heads),
        "head_dim": head_dim,
        "rms_norm_eps": float(meta.require("llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(meta.get("llama.rope.freq_base", 10000.0)),
        "max_position_embeddings": meta.int("llama.context_length", 4096),
        "vocab_size": vocab_rows,
        "tie_word_embeddings": "output.weight" not in tensors,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
    }
    rope_scaling = _rope_scaling(meta, tensors, config)
    if rope_scaling:
        config["rope_scaling"] = rope_scaling
    config.update(_special_ids(meta, len(tokens)))
    return config


def _special_ids(meta: Metadata, n_tokens: int) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    bos = meta.get("tokenizer.ggml.bos_token_id")
    if bos is not None and 0 <= bos < n_tokens:
        ids["bos_token_id"] = int(bos)
    # Llama 3 instruct models end a turn with <|eot_id|>: generation must stop on it too.
    eos = [int(i) for i in (meta.get("tokenizer.ggml.eos_token_id"), meta.get("tokenizer.ggml.eot_token_id"))
           if i is not None and 0 <= i < n_tokens]
    eos = list(dict.fromkeys(eos))
    if eos:
        ids["eos_token_id"] = eos[0] if len(eos) == 1 else eos
    return ids


def _rope_scaling(
    meta: Metadata, tensors: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any] | None:
    kind = meta.get("llama.rope.scaling.type", "none")
    if "rope_freqs.weight" in tensors:
        return _llama3_rope_scaling(meta, tensors["rope_freqs.weight"], config)
    if kind in ("none", None):
        return None
    if kind == "linear":
        return {"type": "linear", "factor": float(meta.require("llama.rope.scaling.factor"))}
    raise ConversionError(f"{meta.file_name} uses {kind!r} rotary scaling, which Hearth cannot import.")


def llama3_rope_factors(scaling: dict[str, Any], head_dim: int, base: float) -> np.ndarray:
    """Per-frequency factors of Llama 3.1's rotary scaling, as llama.cpp stores them in rope_freqs
    (convert_hf_to_gguf.py) and as mlx-lm's Llama3RoPE applies them."""
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_context = scaling["original_max_position_embeddings"]
    wavelens = 2 * math.pi * base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    smooth = (old_context / wavelens - low) / (high - low)
    factors = np.where(wavelens > old_context / low, factor, 1.0)
    medium = (wavelens > old_context / high) & (wavelens < old_context / low)
    return np.where(medium, 1 / ((1 - smooth) / factor + smooth), factors)


def _llama3_rope_scaling(meta: Metadata, tensor: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Llama 3.1-style files store the rotary factors as a tensor, not the parameters mlx-lm wants:
    recover Meta's parameters and check they reproduce the stored factors."""
    stored = np.asarray(tensor.data, dtype=np.float64).reshape(-1)
    scaling = {
        "rope_type": "llama3",
        "factor": float(stored.max()),
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": meta.int("llama.rope.scaling.original_context_length", 8192),
    }
    expected = llama3_rope_factors(scaling, config["head_dim"], config["rope_theta"])
    if expected.shape != stored.shape or not np.allclose(expected, stored, rtol=1e-3):
        raise ConversionError(f"{meta.file_name} scales its rotary frequencies in a way Hearth does not "
                              f"recognise (rope_freqs is not Llama 3.1's scaling).")
    return scaling


# --------------------------------------------------------------------------- tensors


def plan_tensors(tensors: dict[str, Any], config: dict[str, Any]) -> list[TensorPlan]:
    """One plan per tensor; refuses unknown tensors, missing ones and undecodable types up front."""
    plans = []
    for tensor in tensors.values():
        if tensor.name == "rope_freqs.weight" or IGNORED_RE.match(tensor.name):
            continue
        module = _module_name(tensor.name, config["num_hidden_layers"])
        plans.append(_plan(tensor, module, _permuted_heads(module, config)))
    _check_complete({p.module for p in plans}, config)
    return plans


def _module_name(gguf_name: str, num_layers: int) -> str:
    if (match := LAYER_RE.match(gguf_name)) and match.group(2) in LAYER_TENSORS:
        layer = int(match.group(1))
        if layer < num_layers:
            return f"model.layers.{layer}.{LAYER_TENSORS[match.group(2)]}"
    elif gguf_name.endswith(".weight") and gguf_name[: -len(".weight")] in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[gguf_name[: -len(".weight")]]
    raise ConversionError(f"The GGUF file holds a tensor {gguf_name!r} that is not part of a llama model "
                          f"Hearth knows, so it cannot be imported faithfully.")


def _permuted_heads(module: str, config: dict[str, Any]) -> int | None:
    if module.endswith("self_attn.q_proj"):
        return config["num_attention_heads"]
    if module.endswith("self_attn.k_proj"):
        return config["num_key_value_heads"]
    return None


def _check_complete(modules: set[str], config: dict[str, Any]) -> None:
    expected = {"model.embed_tokens", "model.norm"} | {
        f"model.layers.{i}.{name}"
        for i in range(config["num_hidden_layers"])
        for name in LAYER_TENSORS.values()
    }
    if not config["tie_word_embeddings"]:
        expected.add("lm_head")
    missing = sorted(expected - modules)
    if missing:
        raise ConversionError(f"The GGUF file is incomplete: {len(missing)} tensor(s) are missing "
                              f"({', '.join(missing[:3])}).")


def _plan(tensor: Any, module: str, heads: int | None) -> TensorPlan:
    ggml_type = tensor.tensor_type.name
    shape = logical_shape(tensor)
    rows, cols = shape[0], (shape[1] if len(shape) == 2 else None)
    if len(shape) > 2 or (heads and rows % (2 * heads)):
        raise ConversionError(f"Tensor {tensor.name} has shape {shape}, which a llama model does not "
                              f"have.")
    if ggml_type in FLOAT_TYPES or cols is None:
        kind, bits = "float", None
    elif ggml_type in NATIVE_BITS:
        kind, bits = "native", NATIVE_BITS[ggml_type]
    elif cols % GROUP_SIZE == 0:
        kind, bits = "requantize", REQUANT_BITS.get(ggml_type, 4)
    else:
        kind, bits = "float", None
    if kind != "native" and ggml_type not in ("F32", "F16"):
        _check_dequantizable(tensor)
    return TensorPlan(tensor.name, module, ggml_type, kind, bits, rows, cols, heads)


def _check_dequantizable(tensor: Any) -> None:
    import gguf

    _block, type_size = gguf.GGML_QUANT_SIZES[tensor.tensor_type]
    try:
        gguf.quants.dequantize(np.zeros((1, type_size), dtype=np.uint8), tensor.tensor_type)
    except NotImplementedError:
        raise ConversionError(
            f"Tensor {tensor.name} is of type {tensor.tensor_type.name}, which the gguf package cannot "
            f"decode, so this file cannot be imported."
        ) from None


def quantization_config(plans: list[TensorPlan]) -> dict[str, Any]:
    """config.json's quantization: the commonest bit width, plus an entry per layer that differs."""
    bits = collections.Counter(p.bits for p in plans if p.kind != "float")
    if not bits:
        return {}
    default = bits.most_common(1)[0][0]
    quantization: dict[str, Any] = {"group_size": GROUP_SIZE, "bits": default}
    for plan in plans:
        if plan.kind != "float" and plan.bits != default:
            quantization[plan.module] = {"group_size": GROUP_SIZE, "bits": plan.bits}
    return {"quantization": quantization, "quantization_config": quantization}


def _compute_dtype(plans: list[TensorPlan]) -> str:
    types = {p.ggml_type for p in plans}
    if types == {"F32"}:
        return "float32"
    if any(p.kind != "float" for p in plans) or types & {"F16"} or not types <= set(FLOAT_TYPES):
        return "float16"
    return "bfloat16"


def _needed_bytes(plans: list[TensorPlan], dtype: str, tokenizer_files: dict[str, bytes]) -> int:
    weights = sum(p.output_bytes(DTYPE_BYTES[dtype]) for p in plans)
    return int(1.02 * weights) + sum(len(c) for c in tokenizer_files.values()) + 2**20


def _working_memory(plans: list[TensorPlan], dtype: str) -> int:
    """One shard being assembled, the tensor being converted, and a chunk of rows as float32."""
    sizes = [p.output_bytes(DTYPE_BYTES[dtype]) for p in plans]
    shard = min(SHARD_BYTES, sum(sizes))
    chunk = max((min(p.rows, ROW_CHUNK) * (p.cols or 1) * 4 for p in plans), default=0)
    return shard + max(sizes, default=0) + 2 * chunk


def _import_note(path: Path, plans: list[TensorPlan]) -> dict[str, Any]:
    """What the import did, for the user and for anyone wondering later (written beside config.json)."""
    requantized = {
        p.gguf_name: f"{p.ggml_type} -> MLX {p.bits}-bit" for p in plans if p.kind == "requantize"
    }
    dequantized = [p.gguf_name for p in plans if p.kind == "float" and p.ggml_type not in FLOAT_TYPES]
    counts = collections.Counter(p.ggml_type for p in plans if p.kind == "requantize")
    if counts:
        kinds = ", ".join(f"{n} x {t}" for t, n in sorted(counts.items()))
        summary = (f"{len(requantized)} of {len(plans)} tensors ({kinds}) have types MLX cannot use "
                   f"as they are; they were re-quantized to MLX's format (group size {GROUP_SIZE}), "
                   f"which adds a little rounding error on top of the file's own.")
    else:
        summary = f"All {len(plans)} tensors were taken over without re-quantizing."
    return {
        "source": str(path),
        "source_bytes": path.stat().st_size,
        "tensor_types": dict(collections.Counter(p.ggml_type for p in plans)),
        "requantized": requantized,
        "dequantized_to_float": dequantized,
        "rotary": "q/k rows un-permuted from llama.cpp's interleaved layout to the half-split one",
        "summary": summary,
    }


# --------------------------------------------------------------------------- converting


def write_weights(
    folder: Path,
    reader: Any,
    plans: list[TensorPlan],
    dtype_name: str,
    report: _Reporter,
    cancel: threading.Event | None,
) -> None:
    """Convert tensor by tensor into model*.safetensors shards."""
    import mlx.core as mx

    dtype = getattr(mx, dtype_name)
    tensors = {t.name: t for t in reader.tensors}
    shards = _ShardWriter(folder)
    for index, plan in enumerate(plans):
        common.check_cancel(cancel)
        stage = "requantizing" if plan.kind == "requantize" else "converting"
        report(stage, index, len(plans), plan.gguf_name)
        shards.add(convert_tensor(tensors[plan.gguf_name], plan, dtype))
    common.check_cancel(cancel)
    report("writing", len(plans), len(plans), "Writing the last weights file")
    shards.finish()


def convert_tensor(tensor: Any, plan: TensorPlan, dtype: Any) -> dict[str, Any]:
    """mlx-lm arrays for one GGUF tensor: <module>.weight, plus .scales and .biases if quantized."""
    import mlx.core as mx

    if plan.kind == "float":
        weight = mx.array(_float_values(tensor)).astype(dtype)
        return {plan.module + ".weight": _unpermute(weight, plan.heads)}
    if plan.kind == "native":
        parts = [mx.array(a) for a in repack_native(np.asarray(tensor.data), plan.ggml_type)]
    else:
        parts = _requantize(tensor, plan.bits, dtype)
    weight, scales, biases = (_unpermute(a, plan.heads) for a in parts)
    return {
        plan.module + ".weight": weight,
        plan.module + ".scales": scales.astype(dtype),
        plan.module + ".biases": biases.astype(dtype),
    }


def _float_values(tensor: Any) -> np.ndarray:
    import gguf

    data = np.asarray(tensor.data)
    if tensor.tensor_type.name in ("F32", "F16"):
        return data.reshape(logical_shape(tensor))
    return gguf.quants.dequantize(data, tensor.tensor_type).reshape(logical_shape(tensor))


def repack_native(blocks: np.ndarray, ggml_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q8_0 / Q4_0 / Q4_1 blocks (rows x bytes) as MLX affine (weight uint32, scales, biases) f16.

    Q8_0: d, 32 x int8 -> value d*q = d*(q+128) - 128d. Q4_0: d, 16 bytes of nibbles (low nibbles
    are values 0-15, high 16-31) -> d*(q-8). Q4_1: d, m, nibbles -> d*q + m. MLX packs values into
    little-endian uint32 words, lowest bits first."""
    rows = blocks.shape[0]
    if ggml_type == "Q8_0":
        b = blocks.reshape(rows, -1, 34)
        d = b[..., :2].copy().view(np.float16)[..., 0]
        values = b[..., 2:] ^ np.uint8(0x80)  # int8 q + 128 as uint8, without a wider temporary
        packed = values.reshape(rows, -1).view(np.uint32)
        return packed, d, (d.astype(np.float32) * -128).astype(np.float16)
    size = 18 if ggml_type == "Q4_0" else 20
    b = blocks.reshape(rows, -1, size)
    d = b[..., :2].copy().view(np.float16)[..., 0]
    nibbles = b[..., size - 16 :]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1)
    packed = (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)
    packed = packed.reshape(rows, -1).view(np.uint32)
    if ggml_type == "Q4_0":
        return packed, d, (d.astype(np.float32) * -8).astype(np.float16)
    return packed, d, b[..., 2:4].copy().view(np.float16)[..., 0]


def _requantize(tensor: Any, bits: int, dtype: Any) -> list[Any]:
    """Dequantize with gguf a chunk of rows at a time, quantize each chunk with MLX."""
    import gguf
    import mlx.core as mx

    data = np.asarray(tensor.data)
    chunks = []
    for start in range(0, data.shape[0], ROW_CHUNK):
        floats = gguf.quants.dequantize(data[start : start + ROW_CHUNK], tensor.tensor_type)
        chunk = mx.quantize(mx.array(floats).astype(dtype), group_size=GROUP_SIZE, bits=bits)
        mx.eval(chunk)
        chunks.append(chunk)
    return [mx.concatenate([c[i] for c in chunks]) for i in range(3)]


def unpermute_rows(rows: int, heads: int) -> np.ndarray:
    """Row order that undoes llama.cpp's q/k permutation (convert_hf_to_gguf.py LlamaModel.permute):
    within each head, llama.cpp row 2i+j holds Hugging Face row j*head_dim/2 + i."""
    head_dim = rows // heads
    return np.arange(rows).reshape(heads, head_dim // 2, 2).swapaxes(1, 2).reshape(-1)


def _unpermute(array: Any, heads: int | None) -> Any:
    import mlx.core as mx

    if heads is None:
        return array
    return array[mx.array(unpermute_rows(array.shape[0], heads))]


class _ShardWriter:
    """Collects arrays into safetensors shards of about SHARD_BYTES; names them at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pending: dict[str, Any] = {}
        self.pending_bytes = 0
        self.shards: list[tuple[Path, list[str]]] = []
        self.total_bytes = 0

    def add(self, arrays: dict[str, Any]) -> None:
        import mlx.core as mx

        size = sum(a.nbytes for a in arrays.values())
        if self.pending and self.pending_bytes + size > SHARD_BYTES:
            self._flush()
        mx.eval(list(arrays.values()))
        self.pending.update(arrays)
        self.pending_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        import mlx.core as mx

        part = self.folder / f"part-{len(self.shards)}.tmp.safetensors"
        mx.save_safetensors(str(part), self.pending, metadata={"format": "mlx"})
        self.shards.append((part, sorted(self.pending)))
        self.pending, self.pending_bytes = {}, 0

    def finish(self) -> None:
        if self.pending or not self.shards:
            self._flush()
        if len(self.shards) == 1:
            self.shards[0][0].rename(self.folder / "model.safetensors")
            return
        weight_map = {}
        count = len(self.shards)
        for number, (part, names) in enumerate(self.shards, start=1):
            final = f"model-{number:05d}-of-{count:05d}.safetensors"
            part.rename(self.folder / final)
            weight_map.update(dict.fromkeys(names, final))
        common.write_json(
            self.folder / "model.safetensors.index.json",
            {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map},
        )


# --------------------------------------------------------------------------- progress


class _Reporter:
    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback

    def __call__(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.callback is not None:
            self.callback(ConversionProgress(stage, done, total, message))

