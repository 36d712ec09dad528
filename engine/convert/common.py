"""What every conversion shares: where results go, staging with no debris, progress, errors."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import HearthError
from ..platform import process_alive

STAGING_PREFIX = ".staging-"
NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


class ConversionError(HearthError):
    """A model that cannot be converted, and why (unsupported architecture or tensor type, a
    tokenizer that cannot be rebuilt, a truncated file, not enough disk or memory...)."""


class ConversionCancelled(HearthError):
    pass


@dataclass(frozen=True)
class ConversionProgress:
    stage: str  # e.g. "reading", "dequantizing", "quantizing", "writing", "tokenizer"
    done: int
    total: int
    message: str = ""


ProgressCallback = Callable[[ConversionProgress], None]


def models_dir() -> Path:
    """Where converted and imported-by-conversion models live: <data>/models/<name>."""
    folder = paths.data_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def safe_name(text: str) -> str:
    name = NAME_RE.sub("-", text.strip()).strip(".-")
    if not name:
        raise ConversionError(f"{text!r} cannot be used as a model name.")
    return name[:120]


def clean_stale_staging() -> None:
    """Remove staging folders left by a conversion that was killed (their process is gone)."""
    for entry in models_dir().glob(STAGING_PREFIX + "*"):
        pid = entry.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    return pid == os.getpid() or process_alive(pid)


@contextlib.contextmanager
def staging(name: str, *, replace: bool = False) -> Iterator[Path]:
    """A folder to convert into; renamed to models_dir()/name on success, removed on any failure."""
    clean_stale_staging()
    target = models_dir() / safe_name(name)
    if target.exists() and not replace:
        raise ConversionError(f"A model named {target.name} already exists in {models_dir()}; "
                              f"remove it first (hearth rm) or choose another name.")
    stage = models_dir() / f"{STAGING_PREFIX}{target.name}-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
        if target.exists():
            shutil.rmtree(target)
        os.rename(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def check_free_disk(folder: Path, needed_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed_bytes > free:
        raise ConversionError(f"Not enough disk space to convert: it needs about {needed_bytes / 1e9:.2f} GB "
                              f"and {free / 1e9:.2f} GB are free in {folder}.")


def check_free_memory(needed_bytes: int, what: str) -> None:
    from ..platform import usable_memory_bytes

    available = usable_memory_bytes()
    if needed_bytes > available:
        raise ConversionError(f"Not enough memory to {what}: it needs about {needed_bytes / 2**30:.1f} GiB "
                              f"and this machine can give {available / 2**30:.1f} GiB.")


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise ConversionCancelled("The conversion was cancelled; nothing was kept.")


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# Meta's Llama 2 chat template, as meta-llama/Llama-2-7b-chat-hf ships it; Hearth builds Llama 2 ids
# itself (engine.prompts), this is for other tools reading the folder.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)


def llama_tokenizer_config(chat_template: str | None, *, legacy: bool = True) -> dict[str, Any]:
    """tokenizer_config.json for a sentencepiece Llama tokenizer (tokenizer.model beside it)."""
    config: dict[str, Any] = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": legacy,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
    }
    if chat_template:
        config["chat_template"] = chat_template
    return config


def check_result(stage: Path, what: str) -> None:
    """The staged folder must pass the same validation as any model before it is renamed into place."""
    from ..model_folder import validate_folder

    try:
        validate_folder(stage)
    except HearthError as exc:
        raise ConversionError(f"The {what} model did not pass Hearth's checks: {exc}") from exc
