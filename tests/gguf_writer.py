"""Write GGUF files from tiny model folders the way llama.cpp's converter does, for import tests.

Mirrors convert_hf_to_gguf.py for a Llama model: llama.* metadata, the tokenizer vocabulary as
gguf.vocab reads it (SentencePieceVocab for tokenizer.model, BpeVocab plus merges for a byte-level
tokenizer.json), special ids and chat template through gguf.SpecialVocab, 1-D tensors (norms) kept
F32, and the rows of q and k permuted with llama.cpp's LlamaModel.permute for its rotary layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np

T = gguf.GGMLQuantizationType

# mlx-lm name (without ".weight") -> GGUF name, for the global tensors and per layer.
GLOBAL_NAMES = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
LAYER_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(mlx_name: str) -> str:
    """'model.layers.3.mlp.up_proj.weight' -> 'blk.3.ffn_up.weight'."""
    module = mlx_name.removesuffix(".weight")
    if module in GLOBAL_NAMES:
        return GLOBAL_NAMES[module] + ".weight"
    _, _, layer, rest = module.split(".", 3)
    return f"blk.{layer}.{LAYER_NAMES[rest]}.weight"


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute: half-split rotary rows -> interleaved pairs."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def source_weights(folder: Path) -> dict[str, np.ndarray]:
    """The float32 weights of an unquantized tiny model folder, by mlx-lm name."""
    import mlx.core as mx

    return {name: np.array(value.astype(mx.float32)) for name, value in mx.load(str(folder / "model.safetensors")).items()}


def roundtrip(values: np.ndarray, qtype: T) -> np.ndarray:
    """What a GGUF tensor of this type holds for these float values, back as float32."""
    return gguf.quants.dequantize(gguf.quants.quantize(values, qtype), qtype).astype(np.float32)


def q8_1_bytes(values: np.ndarray) -> np.ndarray:
    """Q8_1 blocks (d and s, then 32 int8; 40 bytes as gguf counts them): a type llama.cpp uses for
    activations only, which gguf can neither write nor dequantize."""
    blocks = values.reshape(-1, 32).astype(np.float32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / 127
    q = np.round(blocks / np.where(d == 0, 1, d)).astype(np.int8)
    s = (d * q.sum(axis=1, keepdims=True)).astype(np.float32)
    raw = np.concatenate([d.view(np.uint8), s.view(np.uint8), q.view(np.uint8)], axis=1)
    return raw.reshape(values.shape[0], -1)


# Where each K-quant block keeps its float16 super-block scales (the rest is packed integers).
K_QUANT_HALVES = {"Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def random_k_quant(rows: int, cols: int, qtype_name: str, seed: int = 0) -> np.ndarray:
    """Random but valid K-quant blocks (gguf cannot write K-quants): random packed values and
    sub-block scales, and small float16 super-block scales."""
    qtype = T[qtype_name]
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(rows * cols // block, size), dtype=np.uint8)
    for offset in K_QUANT_HALVES[qtype_name]:
        halves = rng.uniform(0.0005, 0.002, size=(blocks.shape[0], 1)).astype(np.float16)
        blocks[:, offset : offset + 2] = halves.view(np.uint8)
    return blocks.reshape(rows, -1)


def write_gguf(
    folder: Path,
    dest: Path,
    *,
    tensor_type: str = "F32",
    types: dict[str, str] | None = None,
    name: str = "tiny-llama",
    architecture: str = "llama",
    tokenizer_model: str | None = None,
    pre: str | None = None,
    chat_template: bool = True,
    drop: tuple[str, ...] = (),
    extra_tensors: dict[str, np.ndarray] | None = None,
    raw_tensors: dict[str, tuple[str, np.ndarray]] | None = None,
) -> Path:
    """A GGUF file at dest holding folder's model.

    tensor_type: the GGML type of every 2-D tensor ("F32", "F16", "Q8_0", "Q4_0", ...); types
    overrides it per GGUF tensor name ("Q8_1" writes blocks gguf cannot dequantize).
    tokenizer_model overrides tokenizer.ggml.model, pre tokenizer.ggml.pre; chat_template=False leaves the template out
    (as TheBloke's Llama 2 files did); drop leaves tensors out (e.g. "output.weight");
    raw_tensors replaces tensors by (type name, blocks) given as they are."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    writer = gguf.GGUFWriter(str(dest), architecture)
    _add_hparams(writer, config, name)
    _add_vocab(writer, folder, tokenizer_model, pre, chat_template)
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    for mlx_name, values in sorted(source_weights(folder).items()):
        target = gguf_name(mlx_name)
        if target in drop:
            continue
        if ".q_proj." in mlx_name:
            values = llama_cpp_permute(values, heads)
        elif ".k_proj." in mlx_name:
            values = llama_cpp_permute(values, kv_heads)
        if target in (raw_tensors or {}):
            qtype_name, blocks = raw_tensors[target]
            writer.add_tensor(target, blocks, raw_dtype=T[qtype_name])
            continue
        qtype = "F32" if values.ndim == 1 else (types or {}).get(target, tensor_type)
        _add_tensor(writer, target, values, qtype)
    for target, values in (extra_tensors or {}).items():
        _add_tensor(writer, target, values, "F32")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


def _add_tensor(writer: gguf.GGUFWriter, target: str, values: np.ndarray, qtype_name: str) -> None:
    qtype = T[qtype_name]
    data = q8_1_bytes(values) if qtype is T.Q8_1 else gguf.quants.quantize(values, qtype)
    writer.add_tensor(target, data, raw_dtype=qtype)


def _add_hparams(writer: gguf.GGUFWriter, config: dict, name: str) -> None:
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_rope_dimension_count(config["hidden_size"] // config["num_attention_heads"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config["rope_theta"])


def _add_vocab(
    writer: gguf.GGUFWriter, folder: Path, tokenizer_model: str | None, pre: str | None, chat_template: bool
) -> None:
    spm = (folder / "tokenizer.model").is_file()
    vocab = gguf.vocab.SentencePieceVocab(folder) if spm else gguf.vocab.BpeVocab(folder)
    tokens, scores, toktypes = zip(*vocab.all_tokens(), strict=True)
    writer.add_tokenizer_model(tokenizer_model or ("llama" if spm else "gpt2"))
    writer.add_tokenizer_pre(pre or ("default" if spm else "llama-bpe"))
    writer.add_token_list(list(tokens))
    if spm:
        writer.add_token_scores(list(scores))
    writer.add_token_types(list(toktypes))
    special = gguf.SpecialVocab(folder, load_merges=not spm, n_vocab=len(tokens))
    if not chat_template:
        special.chat_template = None
    special.add_to_gguf(writer, quiet=True)
