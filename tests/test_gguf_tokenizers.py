"""Byte-level BPE tokenizers rebuilt from GGUF metadata, for every pre-tokenizer llama.cpp names.

Two references, neither written by Hearth:
- llama.cpp's tokenizer test vocabularies (tests/llama_cpp_vocabs.py): real models' vocabularies
  with texts and the ids each model's own Hugging Face tokenizer gives. The rebuilt tokenizer must
  give exactly those ids.
- llama.cpp's own tokenization (its llama-tokenize tool) of multilingual texts (English, code,
  digits, accents, Chinese, Japanese, Korean, Devanagari, Arabic, emoji, whitespace runs, CRLF)
  with SmolLM2's and Llama 3's vocabularies under every pre-tokenizer name, recorded in
  data/llama_cpp_pretokenizer_ids.json (its "how" entry says how). The rebuilt tokenizer must
  give the same ids for every name, except where llama.cpp's own rewrite of a model's regex is
  known to split otherwise than the model's tokenizer (LLAMA_CPP_DIFFERS, with the reasons).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf_writer
import llama_cpp_vocabs
import pytest
import tiny_models
from tokenizers import Tokenizer

from engine.convert import gguf_tokenizer
from engine.convert.common import ConversionError
from engine.convert.gguf_import import Metadata, import_gguf, open_gguf
from engine.convert.gguf_pretokenizers import PRE_TOKENIZERS, UNSUPPORTED
from engine.convert.gguf_tokenizer import byte_level_tokenizer_json, pre_tokenizer_for

LLAMA_CPP_IDS = Path(__file__).parent / "data" / "llama_cpp_pretokenizer_ids.json"

# Every byte-level vocabulary llama.cpp ships a test for (its SPM and BERT ones are other kinds).
VOCABS = ("command-r", "deepseek-coder", "deepseek-llm", "falcon", "gpt-2", "llama-bpe", "mpt", "qwen2",
          "qwen35", "refact", "starcoder")


class Overridden:
    """A GGUF's metadata with some keys replaced (None: the key is absent)."""

    def __init__(self, meta: Metadata, **overrides: Any) -> None:
        self.meta, self.overrides = meta, {k.replace("__", "."): v for k, v in overrides.items()}
        self.file_name, self.stem = meta.file_name, meta.stem

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.overrides:
            value = self.overrides[key]
            return default if value is None else value
        return self.meta.get(key, default)

    def require(self, key: str) -> Any:
        value = self.get(key)
        assert value is not None, key
        return value


def _metadata(path: Path) -> Metadata:
    return Metadata(open_gguf(path), path)


def _rebuilt(meta) -> Tokenizer:
    _name, pre = pre_tokenizer_for(meta)
    return Tokenizer.from_str(byte_level_tokenizer_json(meta, pre))


@pytest.mark.parametrize("name", VOCABS)
def test_rebuilt_tokenizer_gives_the_models_own_ids(name):
    case = llama_cpp_vocabs.vocab_case(name)
    meta = _metadata(case.gguf)
    assert meta.get("tokenizer.ggml.pre") == name
    tokenizer = _rebuilt(meta)
    for text, expected in zip(case.texts, case.expected_ids, strict=True):
        assert tokenizer.encode(text, add_special_tokens=False).ids == expected, repr(text)
        assert tokenizer.decode(expected, skip_special_tokens=False) == text


# ------------------------------------------------------------------- every name, against llama.cpp

VOCABULARIES = ("SmolLM2-135M-Instruct.Q4_1.gguf", "ggml-vocab-llama-bpe.gguf")


@pytest.fixture(scope="module")
def llama_cpp_ids() -> dict[str, Any]:
    return json.loads(LLAMA_CPP_IDS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def smollm2_meta(smollm2_gguf) -> Metadata:
    return _metadata(smollm2_gguf)


@pytest.fixture(scope="module")
def base_tokenizers(smollm2_meta) -> dict[str, Tokenizer]:
    """Each vocabulary rebuilt once (GPT-2's split); the tests swap in each name's split, the one
    part of the rebuild that depends on the name."""
    llama3 = _metadata(llama_cpp_vocabs.vocab_case("llama-bpe").gguf)
    metas = dict(zip(VOCABULARIES, (smollm2_meta, llama3), strict=True))
    return {name: Tokenizer.from_str(byte_level_tokenizer_json(meta, PRE_TOKENIZERS["gpt-2"]))
            for name, meta in metas.items()}


def test_every_pre_tokenizer_name_is_rebuilt_or_refused_by_name(llama_cpp_ids):
    """The recording covers every name llama.cpp knew when it was made; each is in one table."""
    assert set(llama_cpp_ids["llama_cpp_names"]) <= set(PRE_TOKENIZERS) | set(UNSUPPORTED)
    assert not set(PRE_TOKENIZERS) & set(UNSUPPORTED)
    for vocabulary in VOCABULARIES:
        assert set(llama_cpp_ids["vocabularies"][vocabulary]["pre_tokenizers"]) == set(PRE_TOKENIZERS)


# Where llama.cpp's rewrite of a model's regex for std::regex splits otherwise than the model's own
# regex (the one in its tokenizer.json, quoted in llama.cpp's comments), which Hearth runs as the
# model's tokenizer does: the texts (by index in the recording) whose Llama 3 ids differ, and why.
# 12: llama.cpp's rewrite has no \p{M} in its word classes, so the Devanagari vowel sign of
#     "हिन्दी।" joins the danda after it; in the models' regex marks belong to the word.
# 7: llama.cpp cannot tell upper from lower case letters (\p{Lu}, \p{Ll}) in these regexes, so
#    "XMLHttpRequest" stays one piece; the regex splits it where the case changes, as for gpt-4o.
LLAMA_CPP_DIFFERS = {
    "ggml-vocab-llama-bpe.gguf": {
        **dict.fromkeys(("tekken", "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"), [12]),
        **dict.fromkeys(("youtu", "tiny_aya", "cohere2moe"), [7]),
    },
}


@pytest.mark.parametrize("vocabulary", VOCABULARIES)
@pytest.mark.parametrize("name", sorted(PRE_TOKENIZERS))
def test_each_pre_tokenizer_splits_as_llama_cpp_does(name, vocabulary, base_tokenizers, llama_cpp_ids):
    pre = PRE_TOKENIZERS[name]
    tokenizer = base_tokenizers[vocabulary]
    tokenizer.pre_tokenizer = gguf_tokenizer.split_pre_tokenizer(pre)
    tokenizer.model.ignore_merges = pre.ignore_merges
    recorded = llama_cpp_ids["vocabularies"][vocabulary]
    expected = recorded["encodings"][recorded["pre_tokenizers"][name]]
    differing = []
    for index, (text, ids) in enumerate(zip(llama_cpp_ids["texts"], expected, strict=True)):
        ours = tokenizer.encode(text, add_special_tokens=False).ids
        assert tokenizer.decode(ours) == text
        if ours != ids:
            differing.append(index)
    assert differing == LLAMA_CPP_DIFFERS.get(vocabulary, {}).get(name, [])


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_pre_tokenizers_that_cannot_be_rebuilt_are_refused_by_name(name, smollm2_meta):
    with pytest.raises(ConversionError, match=f"'{name}' pre-tokenizer, which {UNSUPPORTED[name]}"):
        pre_tokenizer_for(Overridden(smollm2_meta, tokenizer__ggml__pre=name))


def test_a_file_without_a_pre_tokenizer_name_is_split_as_llama_cpp_splits_it(smollm2_meta, tmp_path):
    """Files from before llama.cpp stored the name: its default split, which it warns degrades
    quality; a Llama 3 vocabulary (recognised by <|begin_of_text|>) gets Llama 3's split."""
    assert pre_tokenizer_for(Overridden(smollm2_meta, tokenizer__ggml__pre=None))[0] == "default"
    source = tiny_models.build_model(tmp_path / "src", "bpe_llama3", quantize=False)
    llama3 = _metadata(gguf_writer.write_gguf(source, tmp_path / "old-llama3.gguf"))
    assert pre_tokenizer_for(Overridden(llama3, tokenizer__ggml__pre=None))[0] == "llama-bpe"


def test_an_unknown_pre_tokenizer_is_refused_by_name(tmp_path):
    source = tiny_models.build_model(tmp_path / "src", "bpe_llama3", quantize=False)
    path = gguf_writer.write_gguf(source, tmp_path / "future.gguf", pre="qwen9-turbo")
    with pytest.raises(ConversionError, match="'qwen9-turbo' pre-tokenizer, which Hearth does not know"):
        import_gguf(path)


# ------------------------------------------------------------------- BOS, EOS and templates


def _written(meta, tmp_path: Path) -> Path:
    config = {"max_position_embeddings": 8192}
    folder = tmp_path / "tokenizer"
    folder.mkdir(parents=True)
    for name, content in gguf_tokenizer.tokenizer_files_for(meta, config).items():
        (folder / name).write_bytes(content)
    return folder


def _encodings(folder: Path) -> tuple[list[int], list[int]]:
    """"Hi" as the tokenizers library and as transformers (which mlx-lm uses) encode it."""
    from transformers import AutoTokenizer

    backend = Tokenizer.from_file(str(folder / "tokenizer.json")).encode("Hi").ids
    return backend, AutoTokenizer.from_pretrained(folder).encode("Hi")


FLAGS = {
    # (pre, add_bos_token, add_eos_token) -> (BOS added, EOS added)
    "smollm file as written": (("smollm", False, None), (False, False)),
    "flags absent, smollm": (("smollm", None, None), (False, False)),
    "flags absent, llama3": (("llama-bpe", None, None), (True, False)),
    "add_bos set": (("qwen2", True, None), (True, False)),
    "add_bos off for llama3": (("llama-bpe", False, None), (False, False)),
    "add_eos set": (("smollm", False, True), (False, True)),
    "both": (("gpt-2", True, True), (True, True)),
    "chatglm never adds BOS": (("chatglm-bpe", True, None), (False, False)),
}


@pytest.mark.parametrize("case", FLAGS)
def test_bos_and_eos_are_added_as_llama_cpp_adds_them(case, smollm2_meta, tmp_path):
    (pre, add_bos, add_eos), (bos_added, eos_added) = FLAGS[case]
    meta = Overridden(smollm2_meta, tokenizer__ggml__pre=pre, tokenizer__ggml__add_bos_token=add_bos,
                      tokenizer__ggml__add_eos_token=add_eos)
    folder = _written(meta, tmp_path)
    plain = _rebuilt(meta).encode("Hi", add_special_tokens=False).ids
    bos, eos = meta.get("tokenizer.ggml.bos_token_id"), meta.get("tokenizer.ggml.eos_token_id")
    expected = [bos] * bos_added + plain + [eos] * eos_added
    assert _encodings(folder) == (expected, expected)


def test_chat_templates_are_carried_over(smollm2_meta, tmp_path):
    folder = _written(smollm2_meta, tmp_path)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["chat_template"] == smollm2_meta.get("tokenizer.chat_template")
    assert "<|im_start|>" in config["chat_template"]

    named = Overridden(smollm2_meta, tokenizer__chat_templates=["tool_use"],
                       **{"tokenizer__chat_template__tool_use": "{{ tools }}"})
    config = json.loads((_written(named, tmp_path / "named").joinpath("tokenizer_config.json")).read_text())
    assert config["chat_template"] == [
        {"name": "default", "template": smollm2_meta.get("tokenizer.chat_template")},
        {"name": "tool_use", "template": "{{ tools }}"},
    ]
