"""The curated catalog (resources/catalog.json): models known to work, with sizes and fit.

Offline it is shown as shipped. When the user refreshes it online, each entry is checked against
the Hub's file list: a repo in the old weights.npz layout or without safetensors is marked unusable,
with the reason, and the download size is taken from the listing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import fit
from ..errors import HearthError
from ..model_folder import DEFAULT_CONTEXT_CAP
from . import downloads, hub

CATALOG_FILE = Path(__file__).resolve().parents[2] / "resources" / "catalog.json"
SOURCES = ("mlx", "old-mlx", "gguf", "hf")


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    repo_id: str
    source: str  # mlx: download and run; old-mlx / gguf / hf: download, then convert on import
    file: str | None  # the one file to fetch from a multi-file (GGUF) repo
    parameters: int
    context: int
    download_bytes: int
    weight_bytes: int  # in memory once loaded as 4-bit MLX
    kv_bytes_per_token: int
    license: str
    family: str
    notes: str = ""
    gated: bool = False
    recommended: bool = False
    usable: bool = True
    problem: str | None = None  # set by an online check

    def fit(self, context_length: int | None = None, available_bytes: int | None = None) -> fit.FitReport:
        context = context_length or min(self.context, DEFAULT_CONTEXT_CAP)
        return fit.estimate(self.weight_bytes, self.kv_bytes_per_token, context, available_bytes)


def load(path: Path | None = None) -> list[CatalogEntry]:
    path = path or CATALOG_FILE  # read at call time, so a test (or a packaged app) can point elsewhere
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HearthError(f"The model catalog {path} cannot be read: {exc}") from exc
    return [_entry(item) for item in data["models"]]


def _entry(item: dict[str, Any]) -> CatalogEntry:
    known = CatalogEntry.__dataclass_fields__
    entry = CatalogEntry(**{k: v for k, v in item.items() if k in known})
    if entry.source not in SOURCES:
        raise HearthError(f"Catalog entry {entry.id} has an unknown source {entry.source!r}.")
    return entry


def check_online(entries: list[CatalogEntry]) -> list[CatalogEntry]:
    """Each entry checked against the Hub's current file listing (network: only on request)."""
    return [_check(entry) for entry in entries]


def _check(entry: CatalogEntry) -> CatalogEntry:
    try:
        info = hub.call(lambda api: api.model_info(entry.repo_id, files_metadata=True),
                        what=f"checking {entry.repo_id}", repo_id=entry.repo_id)
    except hub.GatedRepo:
        return replace(entry, gated=True)
    except hub.HubError as exc:
        return replace(entry, usable=False, problem=str(exc))
    if getattr(info, "gated", False):  # the Hub lists gated repos' files; only downloads need a token
        entry = replace(entry, gated=True)
    siblings = [downloads._remote(s) for s in info.siblings or []]
    names = {f.name for f in siblings}
    if entry.source == "mlx":
        try:
            files = downloads.choose_files(entry.repo_id, siblings)
        except hub.HubError as exc:
            return replace(entry, usable=False, problem=str(exc))
        return replace(entry, download_bytes=sum(f.size for f in files))
    if entry.file and entry.file not in names:
        return replace(entry, usable=False, problem=f"{entry.repo_id} no longer has {entry.file}.")
    size = next((f.size for f in siblings if f.name == entry.file), entry.download_bytes)
    return replace(entry, download_bytes=size)


@dataclass(frozen=True)
class SearchResult:
    repo_id: str
    downloads: int
    likes: int
    weight_bytes: int | None  # from the Hub's safetensors summary, when it has one

    def fit(self, context_length: int = 4096) -> fit.FitReport | None:
        if not self.weight_bytes:
            return None
        # Without the config, estimate the KV cache from the size: about 0.5 MiB/token per 3.5 GB
        # (Llama 2 7B at 4-bit), scaling with size; a conservative guess until the files are listed.
        kv_per_token = int(0.5 * 1024**2 * self.weight_bytes / 3.5e9)
        return fit.estimate(self.weight_bytes, kv_per_token, context_length)


DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "U8": 1, "I8": 1, "F64": 8, "I64": 8}


def search_hub(text: str, limit: int = 20) -> list[SearchResult]:
    """mlx-format models on the Hub matching text, most downloaded first (network)."""
    text = text.strip()
    if not text:
        raise HearthError("Give some words to search for.")
    models = hub.call(lambda api: list(api.list_models(search=text, filter="mlx", sort="downloads",
                                                       limit=limit, expand=["downloads", "likes", "safetensors"])),
                      what=f"searching the Hub for {text!r}")
    return [SearchResult(m.id, m.downloads or 0, m.likes or 0, _weight_bytes(m)) for m in models]


def _weight_bytes(model: Any) -> int | None:
    summary = getattr(model, "safetensors", None)
    parameters = getattr(summary, "parameters", None) if summary is not None else None
    if not isinstance(parameters, dict):
        return None
    return sum(count * DTYPE_BYTES.get(dtype, 2) for dtype, count in parameters.items())
