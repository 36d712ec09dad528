"""GGUF models other apps already downloaded: Ollama's blobs and LM Studio's folders.

Found offline, by reading their folders; offered for import (hearth import PATH --name NAME), never
changed. Ollama keeps each model as a content-addressed blob named by a manifest; LM Studio keeps
plain .gguf files under publisher/repo folders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .common import safe_name

GGUF_MAGIC = b"GGUF"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"


@dataclass(frozen=True)
class FoundModel:
    app: str  # "Ollama" or "LM Studio"
    name: str  # a name to import it under
    path: Path
    size_bytes: int


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def ollama_root() -> Path:
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models").expanduser()


def lmstudio_roots() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def find_models() -> list[FoundModel]:
    found = ollama_models(ollama_root())
    for root in lmstudio_roots():
        found += lmstudio_models(root)
    return found


def ollama_models(root: Path) -> list[FoundModel]:
    manifests = root / "manifests"
    if not manifests.is_dir():
        return []
    found = []
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        blob = _ollama_model_blob(root, manifest)
        if blob is not None and is_gguf(blob):
            model, tag = manifest.parent.name, manifest.name
            found.append(FoundModel("Ollama", safe_name(f"{model}-{tag}"), blob, blob.stat().st_size))
    return found


def _ollama_model_blob(root: Path, manifest: Path) -> Path | None:
    try:
        layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
    except (OSError, ValueError, AttributeError):
        return None
    for layer in layers:
        if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_LAYER:
            digest = str(layer.get("digest", "")).replace(":", "-")
            blob = root / "blobs" / digest
            return blob if blob.is_file() else None
    return None


def lmstudio_models(root: Path) -> list[FoundModel]:
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*.gguf")):
        if path.name.lower().startswith("mmproj") or not is_gguf(path):
            continue  # vision projectors are not chat models
        found.append(FoundModel("LM Studio", safe_name(path.stem), path, path.stat().st_size))
    return found
