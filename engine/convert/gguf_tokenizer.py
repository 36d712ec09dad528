"""The tokenizer files of an imported GGUF, rebuilt from its tokenizer.* metadata.

A GGUF carries its vocabulary, not the Hugging Face files mlx-lm reads:
- 'llama' vocabularies (sentencepiece BPE, Llama 2 and its kin) become tokenizer.model, built with
  Llama 2's sentencepiece settings from the pieces, scores and token types.
- 'gpt2' vocabularies (byte-level BPE: Llama 3, SmolLM, Qwen, DeepSeek...) become tokenizer.json,
  built from the tokens and merges and split the way llama.cpp splits that file's text (its
  `tokenizer.ggml.pre`, see gguf_pretokenizers).
Both get a tokenizer_config.json with the chat template(s), the special tokens and whether BOS/EOS
are added, as llama.cpp would add them for this file.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from . import common
from .common import ConversionError
from .gguf_pretokenizers import PRE_TOKENIZERS, UNSUPPORTED, PreTokenizer

# llama.cpp token types (tokenizer.ggml.token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


class Metadata(Protocol):
    file_name: str
    stem: str

    def get(self, key: str, default: Any = None) -> Any: ...

    def require(self, key: str) -> Any: ...


def tokenizer_files_for(meta: Metadata, config: dict[str, Any]) -> dict[str, bytes]:
    """The tokenizer files to write (built in memory first, so a failure leaves nothing behind)."""
    kind = meta.get("tokenizer.ggml.model")
    if kind == "llama":
        template = chat_templates(meta) or _llama2_template(meta)
        return {
            "tokenizer.model": sentencepiece_model(meta),
            "tokenizer_config.json": _json_bytes(_spm_tokenizer_config(meta, config, template)),
        }
    if kind == "gpt2":
        _name, pre = pre_tokenizer_for(meta)
        return {
            "tokenizer.json": byte_level_tokenizer_json(meta, pre).encode("utf-8"),
            "tokenizer_config.json": _json_bytes(_bpe_tokenizer_config(meta, config, pre)),
        }
    what = "no tokenizer model" if kind is None else f"a {kind!r} tokenizer"
    raise ConversionError(
        f"{meta.file_name} has {what}; Hearth can rebuild sentencepiece ('llama') and byte-level BPE "
        f"('gpt2') tokenizers only, so this tokenizer cannot be rebuilt."
    )


def chat_templates(meta: Metadata) -> str | list[dict[str, str]] | None:
    """tokenizer.chat_template, plus any named ones (tokenizer.chat_template.<name>, e.g. tool_use)
    in tokenizer_config.json's list form."""
    default = meta.get("tokenizer.chat_template")
    names = meta.get("tokenizer.chat_templates") or []
    named = [{"name": n, "template": t} for n in names if (t := meta.get(f"tokenizer.chat_template.{n}"))]
    if not named:
        return default or None
    return ([{"name": "default", "template": default}] if default else []) + named


def _llama2_template(meta: Metadata) -> str | None:
    """Llama 2 chat files from before templates were stored (TheBloke's) still need Meta's format."""
    from ..prompts import LLAMA2_NAME

    names = (str(meta.get("general.name", "")), meta.stem)
    return common.LLAMA2_CHAT_TEMPLATE if any(LLAMA2_NAME.search(n) for n in names) else None


def _vocabulary(meta: Metadata) -> tuple[list[str], list[int]]:
    tokens = meta.require("tokenizer.ggml.tokens")
    types = meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
    if len(types) != len(tokens):
        raise ConversionError(f"{meta.file_name} has {len(tokens)} tokens but {len(types)} token types.")
    return tokens, types


def _token(tokens: list[str], token_id: Any) -> str | None:
    return tokens[token_id] if token_id is not None and 0 <= token_id < len(tokens) else None


# --------------------------------------------------------------------------- sentencepiece


def sentencepiece_model(meta: Metadata) -> bytes:
    """tokenizer.model rebuilt from a 'llama' GGUF vocabulary with Llama 2's sentencepiece settings."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2 as pb

    tokens, types = _vocabulary(meta)
    scores = meta.get("tokenizer.ggml.scores")
    if not scores or len(scores) != len(tokens):
        # sentencepiece's BPE merges by piece score: without them the ids would be wrong.
        raise ConversionError(f"The sentencepiece tokenizer of {meta.file_name} has no scores for its "
                              f"{len(tokens)} tokens, so it cannot be rebuilt.")
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    spm_type = pb.ModelProto.SentencePiece
    piece_types = {NORMAL: spm_type.NORMAL, UNKNOWN: spm_type.UNKNOWN, CONTROL: spm_type.CONTROL,
                   USER_DEFINED: spm_type.USER_DEFINED, UNUSED: spm_type.UNUSED, BYTE: spm_type.BYTE}
    proto = pb.ModelProto()
    for index, (token, score, kind) in enumerate(zip(tokens, scores, types, strict=True)):
        piece = proto.pieces.add()
        piece.piece, piece.score = token, float(score)
        piece.type = piece_types.get(UNKNOWN if index == unk else kind, piece_types[NORMAL])
    _set_trainer_spec(proto.trainer_spec, meta, tokens, [p.type for p in proto.pieces], pb)
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    data = proto.SerializeToString()
    try:
        sentencepiece.SentencePieceProcessor(model_proto=data)
    except (RuntimeError, OSError) as exc:
        raise ConversionError(
            f"The tokenizer of {meta.file_name} cannot be rebuilt as sentencepiece: {exc}"
        ) from exc
    return data


def _set_trainer_spec(
    trainer: Any, meta: Metadata, tokens: list[str], piece_types: list[int], pb: Any
) -> None:
    """Llama 2's trainer settings; the ones that matter when encoding are BPE, byte fallback and
    whitespace-only pieces (which keep runs of spaces together as Llama 2's tokenizer does)."""
    trainer.model_type = pb.TrainerSpec.BPE
    trainer.vocab_size = len(tokens)
    trainer.byte_fallback = True
    trainer.allow_whitespace_only_pieces = True
    trainer.split_digits = True
    unknown = [i for i, t in enumerate(piece_types) if t == pb.ModelProto.SentencePiece.UNKNOWN]
    if len(unknown) != 1:
        raise ConversionError(f"The tokenizer of {meta.file_name} has {len(unknown)} unknown-token entries "
                              f"where sentencepiece needs exactly one, so it cannot be rebuilt.")
    trainer.unk_id, trainer.unk_piece = unknown[0], tokens[unknown[0]]
    control = pb.ModelProto.SentencePiece.CONTROL
    for role in ("bos", "eos", "pad"):
        key = "padding" if role == "pad" else role
        token_id = meta.get(f"tokenizer.ggml.{key}_token_id")
        usable = token_id is not None and 0 <= token_id < len(tokens) and piece_types[token_id] == control
        setattr(trainer, f"{role}_id", int(token_id) if usable else -1)
        if usable:
            setattr(trainer, f"{role}_piece", tokens[token_id])


def _spm_tokenizer_config(meta: Metadata, config: dict[str, Any], template: Any) -> dict[str, Any]:
    tokens, _types = _vocabulary(meta)
    tokenizer_config = common.llama_tokenizer_config(template, legacy=True)
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id")):
        if token := _token(tokens, meta.get(f"tokenizer.ggml.{key}")):
            tokenizer_config[f"{role}_token"] = token
    # llama.cpp adds BOS to a sentencepiece vocabulary unless the file says otherwise.
    tokenizer_config["add_bos_token"] = bool(meta.get("tokenizer.ggml.add_bos_token", True))
    tokenizer_config["add_eos_token"] = bool(meta.get("tokenizer.ggml.add_eos_token", False))
    tokenizer_config["model_max_length"] = config["max_position_embeddings"]
    return tokenizer_config


# --------------------------------------------------------------------------- byte-level BPE


def pre_tokenizer_for(meta: Metadata) -> tuple[str, PreTokenizer]:
    """The file's pre-tokenizer, by the name llama.cpp reads (tokenizer.ggml.pre)."""
    name = meta.get("tokenizer.ggml.pre")
    if not name:
        # Files converted before llama.cpp stored the name: llama.cpp then uses its default split
        # (and warns); a Llama 3 vocabulary is recognised by its BOS token instead.
        tokens = meta.require("tokenizer.ggml.tokens")
        name = "llama-bpe" if "<|begin_of_text|>" in tokens else "default"
    if name in PRE_TOKENIZERS:
        return name, PRE_TOKENIZERS[name]
    if name in UNSUPPORTED:
        raise ConversionError(f"{meta.file_name} splits text with llama.cpp's {name!r} pre-tokenizer, which "
                              f"{UNSUPPORTED[name]}, so Hearth cannot rebuild its tokenizer.")
    raise ConversionError(f"{meta.file_name} splits text with the {name!r} pre-tokenizer, which Hearth "
                          f"does not know (it may be newer than Hearth), so its tokenizer cannot be rebuilt.")


def byte_level_tokenizer_json(meta: Metadata, pre: PreTokenizer) -> str:
    """tokenizer.json for a 'gpt2' GGUF vocabulary: byte-level BPE from its tokens and merges, split
    as pre says, with the file's control tokens special and BOS/EOS added as llama.cpp adds them."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    tokens, types = _vocabulary(meta)
    merges = [tuple(m.split(" ", 1)) for m in meta.require("tokenizer.ggml.merges")]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ConversionError(f"The tokenizer of {meta.file_name} lists some tokens twice, so it "
                              f"cannot be rebuilt.")
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=pre.ignore_merges))
    tokenizer.pre_tokenizer = split_pre_tokenizer(pre)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                                  for i, t in enumerate(types) if t == CONTROL])
    # llama.cpp matches user-defined tokens (e.g. <think>) whole, wherever they are in the text.
    tokenizer.add_tokens([AddedToken(tokens[i], special=False, normalized=False)
                          for i, t in enumerate(types) if t == USER_DEFINED])
    _set_post_processor(tokenizer, *_bos_eos(meta, pre, tokens))
    return tokenizer.to_str()


def split_pre_tokenizer(pre: PreTokenizer) -> Any:
    """pre's regexes as a Hugging Face pre-tokenizer: each splits every piece, keeping its matches
    and the text between them as pieces (llama.cpp's unicode_regex_split), then bytes to symbols."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(split), behavior="isolated") for split in pre.splits]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )


def _bos_eos(meta: Metadata, pre: PreTokenizer, tokens: list[str]) -> tuple[str | None, str | None]:
    """The BOS and EOS tokens llama.cpp adds around each encoded text (None: not added): the file's
    add_bos/add_eos flags, else the pre-tokenizer's default (BOS for Llama 3, none for most)."""
    bos = _token(tokens, meta.get("tokenizer.ggml.bos_token_id")) if pre.bos_allowed else None
    eos = _token(tokens, meta.get("tokenizer.ggml.eos_token_id"))
    add_bos = meta.get("tokenizer.ggml.add_bos_token")
    add_bos = pre.add_bos if add_bos is None else bool(add_bos)
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False))
    return (bos if add_bos else None), (eos if add_eos else None)


def _set_post_processor(tokenizer: Any, bos: str | None, eos: str | None) -> None:
    from tokenizers import processors

    if bos is None and eos is None:
        return

    def around(text: str, type_id: int) -> str:  # e.g. "<s>:0 $A:0"
        parts = (bos, text, eos)
        return " ".join(f"{part}:{type_id}" for part in parts if part)

    tokenizer.post_processor = processors.TemplateProcessing(
        single=around("$A", 0),
        pair=f"{around('$A', 0)} {around('$B', 1)}",
        special_tokens=[(t, tokenizer.token_to_id(t)) for t in dict.fromkeys((bos, eos)) if t],
    )


def _bpe_tokenizer_config(meta: Metadata, config: dict[str, Any], pre: PreTokenizer) -> dict[str, Any]:
    tokens, _types = _vocabulary(meta)
    bos_added, eos_added = _bos_eos(meta, pre, tokens)
    tokenizer_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": pre.clean_spaces,
        "model_max_length": config["max_position_embeddings"],
        # Said explicitly, so transformers builds the same BOS/EOS post-processor as tokenizer.json.
        "add_bos_token": bos_added is not None,
        "add_eos_token": eos_added is not None,
    }
    roles = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "pad": "padding_token_id"}
    for role, key in roles.items():
        if role == "bos" and not pre.bos_allowed:
            continue
        if token := _token(tokens, meta.get(f"tokenizer.ggml.{key}")):
            tokenizer_config[f"{role}_token"] = token
    if template := chat_templates(meta):
        tokenizer_config["chat_template"] = template
    return tokenizer_config


def _json_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
