"""Find and validate a local model before any of it is loaded.

A model is named either by a folder on disk or by a Hugging Face repo id already in the local cache.
Nothing here touches the network, imports MLX or runs code shipped with a model; it reads JSON and
safetensors headers only, so a bad folder is reported in milliseconds with a specific reason.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import safetensors_header
from .errors import (
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

# Decoder-only Llama-family architectures whose mlx-lm KV caches can be trimmed, which the engine's
# per-conversation cache reuse relies on.
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "granite", "olmo2")

# A Llama 3.1 model declares 131,072 tokens of context; a KV cache that large would not fit most
# Macs. Unless the user picks a context, the engine uses at most this many tokens.
DEFAULT_CONTEXT_CAP = 8192

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs to know about a model before loading it."""

    path: Path
    name: str
    config: dict[str, Any] = field(repr=False)
    model_type: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_context: int
    weight_bytes: int
    kv_bytes_per_value: int
    quantization: dict[str, int] | None
    chat_template: str | None = field(repr=False)
    has_sentencepiece: bool
    has_tokenizer_json: bool
    repo_id: str | None = None
    revision: str | None = None
    parameters: int = 0
    half_float_bytes: int = 0  # weights stored as float16 or bfloat16

    def widened(self) -> ModelInfo:
        """This model as it is computed with its 16-bit floats widened to float32 (and so its keys
        and values): what it then takes in memory."""
        return replace(self, weight_bytes=self.weight_bytes + self.half_float_bytes, half_float_bytes=0,
                       kv_bytes_per_value=4)

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.kv_bytes_per_value

    @property
    def default_context(self) -> int:
        return min(self.max_context, DEFAULT_CONTEXT_CAP)

    @property
    def ref(self) -> str:
        return self.repo_id or str(self.path)

    @property
    def source(self) -> str:
        """How history records the model: repo id (with revision) or folder path."""
        if self.repo_id:
            return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id
        return str(self.path)


def resolve_model(ref: str | Path) -> ModelInfo:
    """Validate a model named by folder path or cached repo id ("org/name" or "org/name@rev")."""
    text = str(ref).strip()
    if not text:
        raise ModelNotFound("No model given.")
    path = Path(text).expanduser()
    if path.is_dir():
        return validate_folder(path)
    if path.exists():
        raise ModelFolderError(f"{text} is a file, not a model folder.")
    converted = _converted_model(text)
    if converted is not None:
        return validate_folder(converted)
    if REPO_ID_RE.match(text) and not text.startswith((".", "/", "~")):
        repo_id, _, revision = text.partition("@")
        folder = cached_snapshot(repo_id, revision or None)
        info = validate_folder(folder, repo_id=repo_id, revision=_snapshot_revision(folder))
        _refuse_damaged(folder, repo_id)
        return info
    raise ModelNotFound(f"No model folder at {text}.")


def _refuse_damaged(snapshot: Path, repo_id: str) -> None:
    """A cached file whose bytes do not match the hash it is named after (another tool's partial or
    damaged copy) is refused, as the library's listing refuses it. Hashes are remembered by path,
    size and mtime, so only the first load of a file another tool put there reads it whole."""
    from .library.verify import verify_snapshot

    problem = verify_snapshot(snapshot).problem(repo_id)
    if problem:
        raise WeightsMismatch(f"{repo_id} is {problem}.")


def _converted_model(name: str) -> Path | None:
    """A model Hearth converted (GGUF, old MLX layout, ...), named by its folder in <data>/models."""
    if "/" in name or name.startswith("."):
        return None
    from . import paths

    folder = paths.data_dir() / "models" / name
    return folder if folder.is_dir() else None


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot folder of a repo in the Hugging Face cache, without going online.

    Read straight from the cache layout (refs/<branch> -> snapshots/<commit>): huggingface_hub's
    own offline lookup also demands every file of its cached tree listing, READMEs included, which
    Hearth neither needs nor downloads. Whether the folder is a usable model is validate_folder's job.
    """
    wanted = f"{repo_id}@{revision}" if revision else repo_id
    repo = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    ref = revision or "main"
    commit = ref if re.fullmatch(r"[0-9a-f]{40}", ref) else _read_ref(repo / "refs" / ref)
    snapshot = repo / "snapshots" / commit if commit else None
    if snapshot is not None and snapshot.is_dir():
        missing = _missing_from_listing(repo, commit, snapshot)
        if missing:
            raise ModelNotFound(
                f"The download of {wanted} in the local Hugging Face cache did not finish: "
                f"{', '.join(missing[:3])} {'is' if len(missing) == 1 else 'are'} missing. Hearth works "
                f"offline: finish the download first."
            )
        return snapshot
    if any((repo / "blobs").glob("*.incomplete")):
        raise ModelNotFound(
            f"The download of {wanted} in the local Hugging Face cache did not finish. Hearth works "
            f"offline: finish the download first (hearth download {repo_id})."
        )
    raise ModelNotFound(
        f"{wanted} is not downloaded: it is not in the local Hugging Face cache ({hub_cache_dir()}). "
        f"Hearth works offline: download it first, or give the path of a model folder."
    )


# Files a model needs; a README or an image missing from a snapshot does not matter.
_NEEDED = re.compile(r"^(config\.json|model.*\.safetensors|model\.safetensors\.index\.json|tokenizer.*|"
                     r"special_tokens_map\.json|chat_template\.jinja)$")


def _missing_from_listing(repo: Path, commit: str, snapshot: Path) -> list[str]:
    """Model files that huggingface_hub's recorded listing of this commit has but the snapshot lacks."""
    try:
        listing = json.loads((repo / "trees" / f"{commit}.json").read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return sorted(name for name in listing if _NEEDED.match(name) and not (snapshot / name).exists())


def _read_ref(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now rather than when huggingface_hub
    was imported (same precedence: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG)."""
    hub = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(os.path.expandvars(os.path.expanduser(hub))) if hub else hf_home() / "hub"


def hf_home() -> Path:
    """The Hugging Face home (token, caches), read from the environment at call time."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home)))


def _label(path: Path) -> str:
    """How messages name a folder: "org/name" for a Hugging Face cache snapshot (whose folder name
    is just a commit hash), the folder name otherwise."""
    repo = path.parent.parent.name
    if path.parent.name == "snapshots" and repo.startswith("models--"):
        return "/".join(repo[len("models--"):].split("--"))
    return path.name


def _snapshot_revision(folder: Path) -> str | None:
    # Cache layout: models--org--name/snapshots/<commit>/
    return folder.name if folder.parent.name == "snapshots" else None


def validate_folder(path: Path, repo_id: str | None = None, revision: str | None = None) -> ModelInfo:
    path = path.resolve()
    config = read_config(path)
    model_type = _check_model_type(path, config)
    tokenizer_config = _read_optional_json(path / "tokenizer_config.json")
    _refuse_custom_code(path, config, tokenizer_config)
    weight_files = _weight_files(path, config)
    tensors = safetensors_header.read_headers(weight_files)
    has_spm = (path / "tokenizer.model").is_file()
    has_json = (path / "tokenizer.json").is_file()
    if has_spm:
        _check_sentencepiece(path / "tokenizer.model")
    if not (has_spm or has_json):
        raise MissingTokenizer(
            f"{_label(path)} has no tokenizer: neither tokenizer.json nor tokenizer.model is there."
        )
    shape = _architecture(path, config)
    _check_quantization(path, config)
    _check_weights_match(path, config, tensors, shape)
    return ModelInfo(
        path=path,
        name=repo_id or path.name,
        config=config,
        model_type=model_type,
        num_layers=shape["num_layers"],
        num_kv_heads=shape["num_kv_heads"],
        head_dim=shape["head_dim"],
        vocab_size=shape["vocab_size"],
        max_context=_max_context(config),
        weight_bytes=sum(t.nbytes for t in tensors.values()),
        kv_bytes_per_value=_activation_bytes(config, tensors),
        quantization=_quantization(config),
        chat_template=_chat_template(path, tokenizer_config),
        has_sentencepiece=has_spm,
        has_tokenizer_json=has_json,
        repo_id=repo_id,
        revision=revision,
        parameters=_parameter_count(tensors, config, shape),
        half_float_bytes=sum(t.nbytes for t in tensors.values() if t.dtype in ("F16", "BF16")),
    )


def _check_sentencepiece(file: Path) -> None:
    """A sentencepiece model is a protobuf whose first field is its pieces (tag 0x0A). Checked here,
    because transformers answers a damaged one with advice to install tiktoken."""
    try:
        with open(file, "rb") as f:
            head = f.read(2)
    except OSError as exc:
        raise MissingTokenizer(f"tokenizer.model in {_label(file.parent)} cannot be read ({exc.strerror or exc}).") from exc
    if len(head) < 2 or head[0] != 0x0A:
        raise MissingTokenizer(f"tokenizer.model in {_label(file.parent)} is not a sentencepiece model: it is "
                               f"damaged or in another format. Replace it with the model's own tokenizer.model.")


def _parameter_count(
    tensors: dict[str, safetensors_header.TensorInfo], config: dict[str, Any], shape: dict[str, int]
) -> int:
    """Weights as the model was trained: a packed quantized matrix counts its unpacked elements,
    at the bits of its own module (mixed recipes and undeclared 8-bit embeddings included)."""
    total = 0
    for name, info in tensors.items():
        module = name.rsplit(".", 1)[0]
        if name.endswith((".scales", ".biases")) and module + ".weight" in tensors:
            continue
        elements = 1
        for dim in info.shape:
            elements *= dim
        quant = module_quantization(module, tensors, config, shape) if name.endswith(".weight") else None
        total += elements * 32 // quant["bits"] if quant and info.dtype == "U32" else elements
    return total


# JSON and template files beside the weights are small; anything larger is not what it claims to be
# (and a config.json linked to /dev/zero must not be read until memory runs out).
MAX_TEXT_FILE_BYTES = 16 << 20
_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def read_small_text(path: Path, limit: int = MAX_TEXT_FILE_BYTES) -> str:
    """A text file's contents, only if it is an ordinary file of at most `limit` bytes (a FIFO
    would block, a device never end). Raises ConfigError naming the file, OSError, or
    UnicodeDecodeError."""
    info = os.stat(path)  # follows links, as opening would
    kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), None)
    if kind is not None:
        raise ConfigError(f"{path.name} in {_label(path.parent)} cannot be read: it is {kind}, not a file "
                          f"(Hearth reads only ordinary files).")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"{path.name} in {_label(path.parent)} is larger than {limit >> 20} MiB, far more "
                          f"than such a file holds; it is not a model's {path.name}.")
    return data.decode("utf-8")


def read_config(path: Path) -> dict[str, Any]:
    config_path = path / "config.json"
    if not os.path.lexists(config_path):
        raise ConfigError(f"{_label(path)} has no config.json, so it is not an mlx-lm model folder.")
    try:
        config = json.loads(read_small_text(config_path))
    except OSError as exc:
        raise ConfigError(
            f"config.json in {_label(path)} cannot be read ({exc.strerror or exc})."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config.json in {_label(path)} cannot be read: it is not UTF-8 text.") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config.json in {_label(path)} is not valid JSON (line {exc.lineno}, column {exc.colno})."
        ) from exc
    if not isinstance(config, dict):
        raise ConfigError(f"config.json in {_label(path)} is not a JSON object.")
    return config


def _read_optional_json(path: Path) -> dict[str, Any]:
    if not os.path.lexists(path):
        return {}
    try:
        data = json.loads(read_small_text(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{path.name} in {_label(path.parent)} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _check_model_type(path: Path, config: dict[str, Any]) -> str:
    model_type = config.get("model_type")
    if not model_type:
        if (path / "weights.npz").exists():
            raise LegacyNpzLayout(_legacy_message(path))
        raise ConfigError(f"config.json in {_label(path)} does not say which model_type it is.")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModelType(
            f"{_label(path)} is a {model_type!r} model; Hearth runs Llama-family models "
            f"({', '.join(SUPPORTED_MODEL_TYPES)})."
        )
    return str(model_type)


def _legacy_message(path: Path) -> str:
    return (
        f"{_label(path)} is in the old MLX layout (weights.npz with a params-style config.json), "
        f"which mlx-lm no longer loads. It needs converting to safetensors first."
    )


def _weight_files(path: Path, config: dict[str, Any]) -> list[Path]:
    files = sorted(path.glob("model*.safetensors"))
    if not files:
        raise _no_safetensors_error(path)
    index = _read_optional_json(path / "model.safetensors.index.json")
    shards = set((index.get("weight_map") or {}).values())
    missing = sorted(s for s in shards if not (path / s).exists())
    if missing:
        raise WeightsMismatch(
            f"{_label(path)} is incomplete: {len(missing)} weight file(s) listed in "
            f"model.safetensors.index.json are missing ({', '.join(missing[:3])})."
        )
    # mlx-lm loads every model*.safetensors; one the index does not list (seen in real uploads:
    # a 7B file beside 13B shards) would silently mix in foreign weights.
    stray = sorted(f.name for f in files if shards and f.name not in shards)
    if stray:
        raise WeightsMismatch(
            f"{_label(path)} holds {', '.join(stray[:3])}, which model.safetensors.index.json does not "
            f"list: a stray weights file that mlx-lm would mix into the model. Remove it."
        )
    return files


def _no_safetensors_error(path: Path) -> NoSafetensors:
    if (path / "weights.npz").exists():
        return LegacyNpzLayout(_legacy_message(path))
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        return PickleWeights(
            f"{_label(path)} only has pickle-format weights ({', '.join(pickles[:3])}). Hearth never "
            f"loads pickles, because opening one can run arbitrary code; use a safetensors version."
        )
    others = sorted(p.name for p in path.glob("*.safetensors"))
    if others:
        return NoSafetensors(
            f"{_label(path)} has safetensors files ({', '.join(others[:3])}) but none named "
            f"model*.safetensors, the mlx-lm layout."
        )
    return NoSafetensors(f"{_label(path)} has no weights: no model*.safetensors file is there.")


def _refuse_custom_code(path: Path, config: dict[str, Any], tokenizer_config: dict[str, Any]) -> None:
    reason = None
    if config.get("model_file"):
        reason = f"config.json names a model file, {config['model_file']!r}"
    elif custom := _custom_tokenizer(tokenizer_config.get("auto_map")):
        reason = f"tokenizer_config.json maps AutoTokenizer to {custom}"
    elif custom := _custom_tokenizer(config.get("auto_map")):
        reason = f"config.json maps AutoTokenizer to {custom}"
    if reason:
        raise ModelFolderError(
            f"{_label(path)} needs Python code shipped with the model to load ({reason}). Hearth never "
            f"runs code that comes with a model."
        )


def _custom_tokenizer(auto_map: Any) -> str | None:
    """The custom tokenizer class(es) an auto_map asks for, if any."""
    if isinstance(auto_map, dict):
        auto_map = auto_map.get("AutoTokenizer")
    elif not isinstance(auto_map, (list, tuple)):  # the old list form is always AutoTokenizer
        return None
    if isinstance(auto_map, (list, tuple)):
        names = [str(n) for n in auto_map if n]
        return ", ".join(names) or None
    return str(auto_map) if auto_map else None


def _config_int(path: Path, config: dict[str, Any], *keys: str) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    raise ConfigError(f"config.json in {_label(path)} lacks a valid {keys[0]}.")


def _optional_config_int(path: Path, config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ConfigError(f"config.json in {_label(path)} has an invalid {key}: {value!r}.")


def _architecture(path: Path, config: dict[str, Any]) -> dict[str, int]:
    hidden = _config_int(path, config, "hidden_size", "dim")
    heads = _config_int(path, config, "num_attention_heads", "n_heads")
    kv_heads = _optional_config_int(path, config, "num_key_value_heads") or heads
    head_dim = _optional_config_int(path, config, "head_dim") or hidden // heads
    return {
        "hidden_size": hidden,
        "num_layers": _config_int(path, config, "num_hidden_layers", "n_layers"),
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "vocab_size": _config_int(path, config, "vocab_size"),
        "attention_width": heads * head_dim,
        "intermediate_size": _optional_config_int(path, config, "intermediate_size") or 0,
    }


def _check_weights_match(
    path: Path,
    config: dict[str, Any],
    tensors: dict[str, safetensors_header.TensorInfo],
    shape: dict[str, int],
) -> None:
    layer_ids = {int(m.group(1)) for name in tensors if (m := re.search(r"layers\.(\d+)\.", name))}
    if layer_ids and max(layer_ids) + 1 != shape["num_layers"]:
        raise WeightsMismatch(
            f"The weights in {_label(path)} have {max(layer_ids) + 1} layers but config.json says "
            f"{shape['num_layers']}."
        )
    _check_embedding(path, config, tensors, shape)
    norm = tensors.get("model.norm.weight")
    if norm is not None and norm.shape and norm.shape[0] != shape["hidden_size"]:
        raise WeightsMismatch(
            f"The weights in {_label(path)} do not match config.json: the final norm has "
            f"{norm.shape[0]} values, but hidden_size {shape['hidden_size']} calls for {shape['hidden_size']}."
        )
    kv_rows = shape["num_kv_heads"] * shape["head_dim"]
    for name, info in tensors.items():
        if name.endswith(("self_attn.k_proj.weight", "self_attn.v_proj.weight")) and info.shape:
            if info.shape[0] != kv_rows:
                raise WeightsMismatch(
                    f"The weights in {_label(path)} do not match config.json: {name} has "
                    f"{info.shape[0]} rows, but num_key_value_heads {shape['num_kv_heads']} x "
                    f"head_dim {shape['head_dim']} call for {kv_rows}."
                )


def _check_embedding(path: Path, config: dict[str, Any],
                     tensors: dict[str, safetensors_header.TensorInfo], shape: dict[str, int]) -> None:
    embed_name = next((n for n in tensors if n.endswith("embed_tokens.weight")), None)
    embed = tensors.get(embed_name) if embed_name else None
    if embed is None or len(embed.shape) != 2:
        return
    rows, cols = embed.shape
    hidden = shape["hidden_size"]
    quant = module_quantization(embed_name.rsplit(".", 1)[0], tensors, config, shape)
    expected_cols = hidden * quant["bits"] // 32 if quant and embed.dtype == "U32" else hidden
    if rows != shape["vocab_size"] or cols != expected_cols:
        raise WeightsMismatch(
            f"The weights in {_label(path)} do not match config.json: the embedding is {rows} x {cols}, "
            f"but vocab_size {shape['vocab_size']} and hidden_size {hidden} "
            f"call for {shape['vocab_size']} x {expected_cols}."
        )


# The input width of each Llama-family linear module, by the last part of its path. mlx-lm reads it
# off the unquantized module (infer_quant_config); these are the same numbers, from config.json.
_INPUT_WIDTH = {
    "embed_tokens": "hidden_size", "lm_head": "hidden_size",
    "q_proj": "hidden_size", "k_proj": "hidden_size", "v_proj": "hidden_size",
    "qkv_proj": "hidden_size", "o_proj": "attention_width",
    "gate_proj": "hidden_size", "up_proj": "hidden_size", "gate_up_proj": "hidden_size",
    "down_proj": "intermediate_size",
}


def module_quantization(
    module: str,
    tensors: dict[str, safetensors_header.TensorInfo],
    config: dict[str, Any],
    shape: dict[str, int],
) -> dict[str, int] | None:
    """Bits and group size of one module, found as mlx-lm's loader finds them: a per-module entry in
    config.json's "quantization" first, then the shapes of the module's packed weight and scales.
    None for a module that is not quantized."""
    quant = config.get("quantization")
    override = quant.get(module) if isinstance(quant, dict) else None
    if override is False:
        return None
    if isinstance(override, dict) and isinstance(override.get("bits"), int):
        return {"bits": override["bits"], "group_size": int(override.get("group_size") or 64)}
    weight, scales = tensors.get(f"{module}.weight"), tensors.get(f"{module}.scales")
    if weight is None or scales is None or not weight.shape or not scales.shape:
        return None
    width = shape.get(_INPUT_WIDTH.get(module.rsplit(".", 1)[-1], ""), 0)
    if width <= 0 or weight.shape[-1] * 32 % width or width % scales.shape[-1]:
        return _quantization(config)  # an unknown module: the folder's default, as mlx-lm starts with
    return {"bits": weight.shape[-1] * 32 // width, "group_size": width // scales.shape[-1]}


def _max_context(config: dict[str, Any]) -> int:
    for key in ("max_position_embeddings", "max_seq_len", "n_positions"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return 4096  # Llama 2's window, the conservative guess when a config says nothing.


def _quantization(config: dict[str, Any]) -> dict[str, int] | None:
    """The folder's default quantization (checked by _check_quantization)."""
    quant = config.get("quantization")
    if isinstance(quant, dict) and "bits" in quant:
        return {"bits": quant["bits"], "group_size": quant.get("group_size", 64)}
    return None


def _check_quantization(path: Path, config: dict[str, Any]) -> None:
    """Bits and group sizes must be whole numbers, at the top level and in per-module entries."""
    quant = config.get("quantization")
    if quant is None:
        return
    if not isinstance(quant, dict):
        raise ConfigError(f"config.json in {_label(path)} has an invalid quantization: {quant!r}.")
    entries = [("quantization", quant)] + [
        (f"quantization.{k}", v) for k, v in quant.items() if isinstance(v, dict)
    ]
    for where, entry in entries:
        for key in ("bits", "group_size"):
            value = entry.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(
                    f"config.json in {_label(path)} has an invalid {where}.{key}: {value!r} "
                    f"(a positive whole number is needed)."
                )


def _activation_bytes(config: dict[str, Any], tensors: dict[str, safetensors_header.TensorInfo]) -> int:
    """Bytes per KV-cache value: the dtype of the model's float weights (norms, scales)."""
    for name, info in tensors.items():
        if name.endswith(("norm.weight", ".scales")) and info.dtype in ("F16", "BF16", "F32"):
            return safetensors_header.DTYPE_BYTES[info.dtype]
    return 2


def _chat_template(path: Path, tokenizer_config: dict[str, Any]) -> str | None:
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        try:
            return read_small_text(jinja)
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelFolderError(f"chat_template.jinja in {_label(path)} cannot be read: {exc}") from exc
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template.strip() else None
