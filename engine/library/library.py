"""Installed models: those in the Hugging Face cache that mlx-lm can load, plus imported folders.

A model is usable only when its folder validates (config, every weight shard present and whole,
tokenizer), no Hearth download of it is unfinished and, for a Hugging Face cache snapshot, every
model file matches the hash the Hub gave for it (verify.py); anything else is listed with its
problem, never as ready. Nothing here goes online.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import fit
from ..errors import HearthError, ModelFolderError
from ..model_folder import ModelInfo, validate_folder
from . import hub_cache, state, verify


@dataclass(frozen=True)
class InstalledModel:
    ref: str  # what `hearth chat` takes: a repo id, or a folder path
    name: str
    kind: str  # "hub" (Hugging Face cache), "folder" (imported in place) or "converted" (by Hearth)
    path: Path | None
    size_bytes: int
    last_used: float | None
    info: ModelInfo | None  # None when unusable
    problem: str | None = None  # why it cannot be used
    is_default: bool = False
    verification: str = ""  # cached repos: "verified", or "unverified" when no Hub hash is on disk

    @property
    def usable(self) -> bool:
        return self.info is not None and self.problem is None

    @property
    def parameters(self) -> int | None:
        return self.info.parameters if self.info else None

    @property
    def quantization(self) -> str:
        if self.info is None:
            return "?"
        q = self.info.quantization
        return f"{q['bits']}-bit (group {q['group_size']})" if q else f"{self.info.kv_bytes_per_value * 8}-bit float"

    @property
    def context(self) -> int | None:
        return self.info.max_context if self.info else None

    def fit(self, context_length: int | None = None) -> fit.FitReport | None:
        if self.info is None:
            return None
        return fit.fit_report(self.info, context_length or self.info.default_context)


class LibraryError(HearthError):
    pass


def installed_models() -> list[InstalledModel]:
    """Every model Hearth knows of, usable ones first, then by name."""
    data = state.load()
    default = data["default_model"]
    models = [_hub_model(repo, data) for repo in hub_cache.scan()]
    models += [_folder_model(Path(entry["path"]), data) for entry in data["imported"]]
    models += [_converted(folder, data) for folder in _converted_folders()]
    models = [m for m in models if m is not None]
    models = [_with_default(m, default) for m in models]
    return sorted(models, key=lambda m: (not m.usable, m.name.lower()))


def _with_default(model: InstalledModel, default: str | None) -> InstalledModel:
    if model.ref != default:
        return model
    return InstalledModel(**{**model.__dict__, "is_default": True})


def _hub_model(repo: hub_cache.CachedRepo, data: dict) -> InstalledModel | None:
    download = data["downloads"].get(repo.repo_id)
    last_used = data["last_used"].get(repo.repo_id)
    info, problem = None, None
    if repo.snapshot is None:
        problem = "nothing downloaded yet"
    else:
        try:
            info = validate_folder(repo.snapshot, repo_id=repo.repo_id, revision=repo.commit)
        except ModelFolderError as exc:
            if download is None and not _looks_like_mlx(repo.snapshot):
                return None  # another library's model (PyTorch, GGUF, ...) sharing the cache
            problem = str(exc)
    verification = ""
    if download and download.get("state") != "complete" and not _serves_older_snapshot(repo, download):
        problem = _download_problem(download, repo.folder)
    elif repo.snapshot is not None:
        # A file that is not what the Hub listed explains any other problem it causes, and the
        # message says what fixes it.
        verdict = verify.verify_snapshot(repo.snapshot, verify.recorded_etags(data, repo.repo_id, repo.commit))
        problem, verification = verdict.problem(repo.repo_id) or problem, verdict.status
    return InstalledModel(repo.repo_id, repo.repo_id, "hub", repo.snapshot, repo.size_bytes, last_used,
                          info if problem is None else None, problem, verification=verification)


def _looks_like_mlx(snapshot: Path) -> bool:
    return (snapshot / "config.json").exists() and any(snapshot.glob("model*.safetensors"))


def _serves_older_snapshot(repo: hub_cache.CachedRepo, download: dict) -> bool:
    """An update under way (or paused) while refs/main still names an earlier, complete snapshot:
    that one stays usable, since Hearth moves the ref only once every new file is verified."""
    commit = download.get("commit")
    try:
        ref = (repo.folder / "refs" / "main").read_text().strip()
    except OSError:
        return False
    return bool(commit) and ref == repo.commit and ref != commit


def _download_problem(download: dict, folder: Path) -> str:
    done, total = download.get("done_bytes", 0), download.get("total_bytes", 0)
    blobs = download.get("blobs")
    if isinstance(blobs, list) and blobs:
        done = _bytes_on_disk(folder / "blobs", blobs)  # the record is as old as its last update
    share = f" ({100 * min(done, total) // total}%)" if total else ""
    verb = {"paused": "paused", "failed": "failed"}.get(download.get("state"), "not finished")
    return f"download {verb}{share}: resume it to use this model"


def _bytes_on_disk(blobs: Path, wanted: list) -> int:
    done = 0
    for item in wanted:
        try:
            etag, size = str(item[0]), int(item[1])
        except (TypeError, ValueError, IndexError):
            continue
        try:
            done += size if (blobs / etag).exists() else min((blobs / (etag + ".incomplete")).stat().st_size, size)
        except OSError:
            pass
    return done


def _folder_model(path: Path, data: dict) -> InstalledModel:
    ref = str(path)
    try:
        info, problem = validate_folder(path), None
    except ModelFolderError as exc:
        info, problem = None, str(exc)
    return InstalledModel(ref, path.name, "folder", path, folder_size(path), data["last_used"].get(ref),
                          info, problem)


def _converted_folders() -> list[Path]:
    from .. import paths

    root = paths.data_dir() / "models"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _converted(folder: Path, data: dict) -> InstalledModel:
    model = _folder_model(folder, data)
    # Named by folder: what `hearth chat NAME` takes; Hearth made these files, so rm deletes them.
    return InstalledModel(**{**model.__dict__, "ref": folder.name, "kind": "converted",
                             "last_used": data["last_used"].get(folder.name)})


def folder_size(path: Path) -> int:
    """The bytes of a folder's files, following symlinks (a Hugging Face snapshot is all links)
    and counting each file once however many names point at it."""
    total, seen = 0, set()
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue  # a dangling link
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def find(ref: str) -> InstalledModel:
    for model in installed_models():
        if model.ref == ref or model.name == ref or (model.path and str(model.path) == ref):
            return model
    raise LibraryError(f"{ref} is not in the library (see `hearth models`).")


def import_folder(path: Path) -> InstalledModel:
    """Add a model folder where it is (no copy), after the engine's own validation."""
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise LibraryError(f"{path} is not a folder.")
    validate_folder(path)  # raises the same specific errors as loading would
    with state.editing() as data:
        if all(entry["path"] != str(path) for entry in data["imported"]):
            data["imported"].append({"path": str(path), "added_at": time.time()})
    return _folder_model(path, state.load())


def remove(ref: str) -> tuple[InstalledModel, int]:
    """Remove a model: a cached repo is deleted with its blobs and partial downloads; an imported
    folder is only forgotten (its files are the user's). Returns the model and the bytes freed."""
    model = find(ref)
    freed = 0
    if model.kind == "hub":
        folder = hub_cache.repo_folder(model.ref)
        freed = hub_cache.read_repo(folder).size_bytes if folder.exists() else 0
        shutil.rmtree(folder, ignore_errors=False)
    elif model.kind == "converted" and model.path is not None:
        freed = model.size_bytes
        shutil.rmtree(model.path)
    with state.editing() as data:
        data["imported"] = [e for e in data["imported"] if e["path"] != model.ref]
        data["downloads"].pop(model.ref, None)
        data["last_used"].pop(model.ref, None)
        if data["default_model"] == model.ref:
            data["default_model"] = None
    return model, freed


def set_default(ref: str | None) -> None:
    if ref is not None:
        model = find(ref)
        if not model.usable:
            raise LibraryError(f"{ref} cannot be the default: {model.problem}")
        ref = model.ref
    with state.editing() as data:
        data["default_model"] = ref


def default_model() -> str | None:
    return state.load()["default_model"]


def mark_used(ref: str) -> None:
    with state.editing() as data:
        data["last_used"][ref] = time.time()


def reveal_command(path: Path) -> list[str]:
    """The command that shows a model's folder in Finder (or the Linux file manager)."""
    if sys.platform == "darwin":
        return ["open", "-R", str(path)]
    return ["xdg-open", str(path if path.is_dir() else path.parent)]
