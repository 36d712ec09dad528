"""A model's tokenizer: exact prompt encoding, EOS ids, and the table the streaming detokenizer uses.

Loaded with transformers (never with remote code) plus, when the folder has tokenizer.model, the
sentencepiece model itself: Meta's reference Llama 2 prompt is defined by sentencepiece's encode.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .detokenize import StreamingDetokenizer, byte_level_piece_bytes, spm_piece_bytes
from .errors import MissingTokenizer
from .model_folder import ModelInfo


@dataclass
class Tokenizer:
    hf: Any = field(repr=False)
    sp: Any = field(repr=False)  # sentencepiece.SentencePieceProcessor, or None
    bos_id: int | None
    eos_ids: frozenset[int]
    token_bytes: list[bytes] = field(repr=False)
    strip_leading_space: bool
    special_names: dict[int, str] = field(default_factory=dict, repr=False)
    _template_encoder: _TemplateEncoder | None = field(default=None, init=False, repr=False)

    def encode_plain(self, text: str) -> list[int]:
        """Text to ids with no special tokens added or recognised, as sentencepiece encodes."""
        if self.sp is not None:
            return list(self.sp.encode(text))
        return list(self.hf.encode(text, add_special_tokens=False, split_special_tokens=True))

    def encode_template(self, pieces: list[tuple[str, bool]]) -> list[int]:
        """Ids for a rendered chat template given as (piece, is_template_text): special tokens are
        recognised in the template's pieces only, the others (message texts) are plain text."""
        if getattr(self.hf, "backend_tokenizer", None) is None:
            # A Python-only tokenizer: piece by piece, exact except perhaps at the seams.
            return [
                i for piece, template in pieces
                for i in self.hf.encode(piece, add_special_tokens=False, split_special_tokens=not template)
            ]
        if self._template_encoder is None:
            self._template_encoder = _TemplateEncoder(self.hf)
        return self._template_encoder.encode(pieces)

    def decode(self, ids: list[int]) -> str:
        """The reference full decode, special tokens left out."""
        if self.sp is not None:
            return self.sp.decode([i for i in ids if not self.sp.is_control(i)])
        return self.hf.decode(ids, skip_special_tokens=True)

    def detokenizer(self, strip_leading_space: bool = True) -> StreamingDetokenizer:
        return StreamingDetokenizer(self.token_bytes, self.strip_leading_space and strip_leading_space)

    def render(self, ids: list[int]) -> str:
        """Ids as text with special tokens spelled out: what a prompt inspector shows."""
        parts: list[bytes] = []
        for token_id in ids:
            data = self.token_bytes[token_id] if 0 <= token_id < len(self.token_bytes) else b""
            parts.append(data or self.special_names.get(token_id, "").encode("utf-8"))
        return b"".join(parts).decode("utf-8", "replace")


class _TemplateEncoder:
    """The model's own tokenizer, with each special token renamed to a secret private-use string.

    Encoding the whole text in one call keeps the tokenizer's behaviour at the seams between
    template and message (spaces, merges, sentencepiece's prefix) exactly as in a normal encode;
    only the template's special tokens are spelled the secret way, so only they become special ids.
    """

    def __init__(self, hf: Any) -> None:
        from tokenizers import Tokenizer as Backend

        data = json.loads(hf.backend_tokenizer.to_str())
        nonce = secrets.token_hex(8)
        secret_ids: dict[str, int] = {}
        self.secret_names: dict[str, str] = {}
        for added in data.get("added_tokens") or []:
            if added.get("special"):
                secret = f"\ue000{nonce}.{added['id']}\ue001"
                self.secret_names[added["content"]] = secret
                secret_ids[secret] = added["id"]
                added["content"] = secret
        self.backend = Backend.from_str(json.dumps(data))
        self.backend.no_truncation()
        self.backend.no_padding()
        self.backend.encode_special_tokens = False  # a flag that encodes share; it is saved, too
        # A renamed token the model's vocabulary also holds under its real name gets a new id.
        self.real_ids = {self.backend.token_to_id(s): i for s, i in secret_ids.items()}
        longest_first = sorted(self.secret_names, key=len, reverse=True)
        self.special = re.compile("|".join(map(re.escape, longest_first))) if longest_first else None

    def encode(self, pieces: list[tuple[str, bool]]) -> list[int]:
        text = "".join(self._mark(piece) if template else piece for piece, template in pieces)
        ids = self.backend.encode(text, add_special_tokens=False).ids
        return [self.real_ids.get(i, i) for i in ids]

    def _mark(self, piece: str) -> str:
        if self.special is None:
            return piece
        return self.special.sub(lambda match: self.secret_names[match.group(0)], piece)


# Far above any real one (Gemma 3's tokenizer.json, among the largest, is 33 MB): a bigger file is not
# a tokenizer, and reading it would only fill the memory.
TOKENIZER_FILE_CAP = 512 * 2**20


def load_tokenizer(info: ModelInfo) -> Tokenizer:
    _check_sizes(info.path)
    if info.has_sentencepiece:
        # The sentencepiece model is the reference: transformers may rebuild it differently
        # (no BOS without a tokenizer_config.json, a dropped leading space, ...). Read first, so
        # that a damaged one is named as such rather than by whatever transformers guesses next.
        sp = _load_sentencepiece(info.path)
        hf = _load_hf(info.path)
        bos_id = sp.bos_id() if sp.bos_id() >= 0 else hf.bos_token_id
        eos_ids = _eos_ids(info, hf) | ({sp.eos_id()} if sp.eos_id() >= 0 else set())
        token_bytes, special = _spm_token_bytes(sp)
    else:
        byte_level = _is_byte_level(info.path)
        sp, hf = None, _load_hf(info.path)
        bos_id, eos_ids = hf.bos_token_id, _eos_ids(info, hf)
        token_bytes, special = _hf_token_bytes(hf, byte_level)
    tokenizer = Tokenizer(hf, sp, bos_id, frozenset(eos_ids), token_bytes, False, special)
    tokenizer.strip_leading_space = _strips_leading_space(tokenizer)
    return tokenizer


def _check_sizes(path: Path) -> None:
    for name in ("tokenizer.json", "tokenizer.model"):
        try:
            size = (path / name).stat().st_size
        except OSError:
            continue
        if size > TOKENIZER_FILE_CAP:
            raise MissingTokenizer(
                f"{name} in {path.name} is {size / 2**30:.1f} GB, far more than any tokenizer; it "
                f"cannot be one."
            )


def _load_hf(path: Path) -> Any:
    import os

    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # transformers raises many kinds; each means the same to a user
        raise MissingTokenizer(f"The tokenizer in {path.name} cannot be loaded: {exc}") from exc


def _load_sentencepiece(path: Path) -> Any:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(str(path / "tokenizer.model"))
    except (OSError, RuntimeError) as exc:
        raise MissingTokenizer(f"tokenizer.model in {path.name} is damaged: {exc}") from exc
    return processor


def _is_byte_level(path: Path) -> bool:
    """Whether tokenizer.json decodes bytes GPT-2 style; a file that is not JSON is refused here,
    with its name, before transformers reports it less clearly."""
    file = path / "tokenizer.json"
    try:
        decoder = json.loads(file.read_text(encoding="utf-8")).get("decoder") or {}
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise MissingTokenizer(f"tokenizer.json in {path.name} is damaged: it is not a JSON object.") from exc
    except OSError:
        return False
    return "ByteLevel" in json.dumps(decoder)


def _spm_token_bytes(sp: Any) -> tuple[list[bytes], dict[int, str]]:
    table, special = [], {}
    for token_id in range(sp.get_piece_size()):
        piece = sp.id_to_piece(token_id)
        if sp.is_control(token_id):
            table.append(b"")
            special[token_id] = piece
        elif sp.is_unknown(token_id):
            table.append(" \u2047 ".encode())  # what sentencepiece's decode shows for <unk>
        else:
            table.append(spm_piece_bytes(piece))
    return table, special


def _hf_token_bytes(hf: Any, byte_level: bool) -> tuple[list[bytes], dict[int, str]]:
    pieces = hf.convert_ids_to_tokens(list(range(len(hf))))
    added_tokens = getattr(hf, "added_tokens_decoder", {}) or {}
    added = set(added_tokens)
    special_ids = set(hf.all_special_ids) | {i for i, t in added_tokens.items() if getattr(t, "special", False)}
    to_bytes = byte_level_piece_bytes if byte_level else spm_piece_bytes
    table, special = [], {}
    for token_id, piece in enumerate(pieces):
        if piece is None:
            table.append(b"")
        elif token_id in special_ids:
            table.append(b"")
            special[token_id] = piece
        elif token_id in added:
            table.append(piece.encode("utf-8"))
        else:
            table.append(to_bytes(piece))
    return table, special


def _eos_ids(info: ModelInfo, hf: Any) -> set[int]:
    ids: set[int] = set()
    for source in (info.config.get("eos_token_id"), _generation_eos(info.path), hf.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list):
            ids.update(i for i in source if isinstance(i, int))
    return ids


def _generation_eos(path: Path) -> Any:
    try:
        return json.loads((path / "generation_config.json").read_text(encoding="utf-8")).get(
            "eos_token_id"
        )
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _strips_leading_space(tokenizer: Tokenizer) -> bool:
    """Whether decode() drops the dummy-prefix space that the first piece carries."""
    ids = tokenizer.encode_plain("hello")
    raw = b"".join(tokenizer.token_bytes[i] for i in ids).decode("utf-8", "replace")
    return raw.startswith(" ") and not tokenizer.decode(ids).startswith(" ")
