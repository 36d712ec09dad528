"""Hugging Face fp16/bf16 Llama folders quantized to 4-bit with mlx-lm's own code.

What `mlx_lm.convert --quantize` does (lazy load, quantize_model, save_model, save_config), taken
apart so a conversion can report progress and be cancelled between layers. Weights load lazily and
each layer is quantized as it is evaluated, so memory stays near the output size plus what one layer
pulls in. Tokenizer files are copied as they are; a Llama 2 chat model without a chat template (Meta's
own repos ship none) gets Meta's, for other tools reading the folder: Hearth builds Llama 2 prompt ids
itself either way.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from .. import safetensors_header
from ..errors import HearthError
from ..model_folder import validate_folder
from .common import (
    LLAMA2_CHAT_TEMPLATE,
    ConversionError,
    ConversionProgress,
    ProgressCallback,
    check_cancel,
    check_free_disk,
    check_free_memory,
    check_result,
    llama_tokenizer_config,
    models_dir,
    safe_name,
    staging,
    write_json,
)
from .old_mlx import source_label

DEFAULT_BITS = 4
DEFAULT_GROUP_SIZE = 64
TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
)
OTHER_FILES = ("generation_config.json", "LICENSE", "LICENSE.txt", "LICENSE.md", "USE_POLICY.md")
FLOAT_DTYPES = ("F16", "BF16", "F32")
CAST_DTYPES = ("float16", "bfloat16", "float32")
SUPPORTED_BITS = (2, 3, 4, 5, 6, 8)
SUPPORTED_GROUP_SIZES = (32, 64, 128)
LLAMA2_CHAT = re.compile(r"llama[-_ ]?2.*chat", re.IGNORECASE)


def quantize_hf(
    source: Path,
    name: str | None = None,
    *,
    bits: int = DEFAULT_BITS,
    group_size: int = DEFAULT_GROUP_SIZE,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Quantize a Hugging Face safetensors Llama folder into models_dir()/<name>; returns that
    folder. Raises ConversionError, or ConversionCancelled."""
    source = Path(source).expanduser().resolve()
    name = safe_name(name or source_label(source))
    _check_settings(bits, group_size)
    config, tensors = _check_source(source)
    llama2_chat = _is_llama2_chat(source, name, config)
    _report(on_progress, "checking", 1, 1)
    _check_resources(source, tensors, bits, group_size)
    check_cancel(cancel)
    with staging(name) as stage:
        model = _load_lazily(source)
        _report(on_progress, "loading", 1, 1)
        model, config = _quantize(model, config, bits, group_size, on_progress, cancel)
        _save(model, config, stage)
        _report(on_progress, "writing", 1, 1)
        check_cancel(cancel)
        _copy_tokenizer(source, stage, llama2_chat)
        _report(on_progress, "tokenizer", 1, 1)
        _check_result(stage)
    return models_dir() / name


# --- checks before any weight is read ---


def _check_settings(bits: int, group_size: int) -> None:
    if bits not in SUPPORTED_BITS or group_size not in SUPPORTED_GROUP_SIZES:
        raise ConversionError(
            f"MLX quantizes to {', '.join(map(str, SUPPORTED_BITS))} bits in groups of "
            f"{', '.join(map(str, SUPPORTED_GROUP_SIZES))}; {bits} bits in groups of {group_size} "
            f"is not possible."
        )


def _check_source(source: Path) -> tuple[dict[str, Any], dict[str, safetensors_header.TensorInfo]]:
    """Hearth's own folder checks (model type, custom code, shards, tokenizer, shapes), then the
    ones particular to quantizing."""
    if not source.is_dir():
        raise ConversionError(f"{source} is not a folder.")
    try:
        info = validate_folder(source)
    except HearthError as exc:
        raise ConversionError(f"{source_label(source)} cannot be quantized: {exc}") from exc
    config = dict(info.config)
    tensors = safetensors_header.read_headers(_weight_files(source))
    not_float = sorted({t.dtype for t in tensors.values() if t.dtype not in FLOAT_DTYPES})
    if info.quantization or config.get("quantization_config") or not_float:
        why = ", ".join(not_float) or "its config says so"
        raise ConversionError(
            f"{source_label(source)} is already quantized ({why}); Hearth quantizes fp16/bf16 "
            f"models only. If mlx-lm can load it, use it as it is."
        )
    return config, tensors


def _weight_files(source: Path) -> list[Path]:
    return sorted(source.glob("model*.safetensors"))


def _check_resources(
    source: Path, tensors: dict[str, safetensors_header.TensorInfo], bits: int, group_size: int
) -> None:
    output = sum(_quantized_bytes(t, bits, group_size) for t in tensors.values())
    largest_shard = max(f.stat().st_size for f in _weight_files(source))
    check_free_memory(output + largest_shard, "quantize this model")
    check_free_disk(models_dir(), output)


def _quantized_bytes(tensor: safetensors_header.TensorInfo, bits: int, group_size: int) -> int:
    """Size after mlx-lm's quantize_model: matrices whose rows split into whole groups are packed,
    with a scale and a bias per group in the original dtype; the rest stays as it is."""
    if len(tensor.shape) != 2 or tensor.shape[-1] % group_size:
        return tensor.nbytes
    elements = tensor.shape[0] * tensor.shape[1]
    per_value = tensor.nbytes // elements
    return elements * bits // 8 + 2 * (elements // group_size) * per_value


# --- loading, quantizing, writing (MLX, on the calling thread) ---


def _load_lazily(source: Path) -> Any:
    from mlx_lm.utils import load_model

    try:
        model, _ = load_model(source, lazy=True, strict=True)
    except (ValueError, FileNotFoundError) as exc:
        raise ConversionError(f"mlx-lm cannot load {source_label(source)}: {exc}") from exc
    return model


def _quantize(
    model: Any,
    config: dict[str, Any],
    bits: int,
    group_size: int,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> tuple[Any, dict[str, Any]]:
    """Quantize as mlx_lm.convert does, then evaluate layer by layer (progress, cancel)."""
    import mlx.core as mx
    from mlx.utils import tree_map
    from mlx_lm.utils import quantize_model

    dtype = config.get("torch_dtype") or config.get("dtype")
    if dtype in CAST_DTYPES:  # like mlx_lm.convert: the dtype the config declares
        target = getattr(mx, dtype)
        model.update(tree_map(lambda v: v.astype(target) if mx.issubdtype(v.dtype, mx.floating) else v,
                              model.parameters()))
    with contextlib.redirect_stdout(io.StringIO()):  # it prints bits per weight
        model, config = quantize_model(model, config, group_size, bits)
    layers = list(getattr(model, "layers", []))
    for done, layer in enumerate(layers, 1):
        check_cancel(cancel)
        mx.eval(layer.parameters())
        _report(on_progress, "quantizing", done, len(layers))
    check_cancel(cancel)
    mx.eval(model.parameters())
    return model, config


def _save(model: Any, config: dict[str, Any], stage: Path) -> None:
    from mlx_lm.utils import save_config, save_model

    save_model(stage, model, donate_model=True)
    save_config(config, stage / "config.json")


# --- tokenizer ---


def _is_llama2_chat(source: Path, name: str, config: dict[str, Any]) -> bool:
    names = (name, source_label(source), str(config.get("_name_or_path", "")))
    return any(LLAMA2_CHAT.search(n) for n in names)


def _copy_tokenizer(source: Path, stage: Path, llama2_chat: bool) -> None:
    for file in (*TOKENIZER_FILES, *OTHER_FILES):
        if (source / file).is_file():
            shutil.copyfile(source / file, stage / file)
    has_jinja = (stage / "chat_template.jinja").is_file()
    template = LLAMA2_CHAT_TEMPLATE if llama2_chat and not has_jinja else None
    path = stage / "tokenizer_config.json"
    if path.is_file():
        tokenizer_config = _read_json(path)
        if template and not tokenizer_config.get("chat_template"):
            write_json(path, {**tokenizer_config, "chat_template": template})
    elif (stage / "tokenizer.model").is_file():
        # Without tokenizer_config.json transformers would add no BOS at all.
        write_json(path, llama_tokenizer_config(template))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"{path.name} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ConversionError(f"{path.name} is not a JSON object.")
    return data


def _check_result(stage: Path) -> None:
    check_result(stage, "quantized")


def _report(
    on_progress: ProgressCallback | None, stage: str, done: int, total: int, message: str = ""
) -> None:
    if on_progress is not None:
        on_progress(ConversionProgress(stage, done, total, message))
