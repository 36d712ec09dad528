"""Sanity checks for the tiny test models in tiny_models.py."""

from __future__ import annotations

import json
from pathlib import Path

import mlx_lm
import pytest
import tiny_models
from tiny_models import (
    LLAMA3_EOT,
    LLAMA3_SPECIAL_TOKENS,
    SPM_BOS_ID,
    SPM_EOS_ID,
    SPM_SAMPLE_TEXTS,
    TOKENIZER_FILES,
    VARIANTS,
    build_all,
    build_model,
    check_spm_json,
    load_sentencepiece,
    reference_llama2_ids,
)
from tokenizers import Tokenizer
from transformers import AutoTokenizer

DIALOG = [
    {"role": "system", "content": "Be brief. "},
    {"role": "user", "content": " Hi there, café?"},
    {"role": "assistant", "content": "Hello! 2+2=4 "},
    {"role": "user", "content": "中文 and 😀\nthanks"},
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_all(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="module")
def sp(folders):
    return load_sentencepiece(folders["spm_bare"])


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize("variant", VARIANTS)
def test_folder_holds_exactly_the_variant_tokenizer_files(folders, variant):
    assert set(tiny_models.iter_tokenizer_files(folders[variant])) == TOKENIZER_FILES[variant]
    config = _config(folders[variant])
    assert config["model_type"] == "llama"
    assert config["quantization"]["group_size"] == 32
    assert config["quantization"]["bits"] == 4


@pytest.mark.parametrize("variant", VARIANTS)
def test_mlx_lm_loads_and_generates_greedily(folders, variant):
    model, tokenizer = mlx_lm.load(str(folders[variant]))
    prompt = tokenizer.encode("Hello world")
    first = mlx_lm.generate(model, tokenizer, prompt, max_tokens=4)
    again = mlx_lm.generate(model, tokenizer, prompt, max_tokens=4)
    assert isinstance(first, str)
    assert first == again


@pytest.mark.parametrize("variant", VARIANTS)
def test_autotokenizer_loads(folders, variant):
    tokenizer = AutoTokenizer.from_pretrained(str(folders[variant]))
    ids = tokenizer.encode("Hello world", add_special_tokens=False)
    assert tokenizer.decode(ids).strip() == "Hello world"
    has_template = variant not in ("spm_notemplate", "spm_bare")
    assert (tokenizer.chat_template is not None) == has_template


def test_spm_json_encodes_like_sentencepiece(folders, sp):
    tokenizer_json = folders["spm_json"] / "tokenizer.json"
    check_spm_json(tokenizer_json, sp)  # raises on any difference
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    for text in SPM_SAMPLE_TEXTS:
        assert tokenizer.encode(text, add_special_tokens=False).ids == sp.encode(text), text


def test_spm_json_loaded_by_transformers_agrees_without_leading_whitespace(folders, sp):
    # transformers 5 rebuilds the pre-tokenizer (Metaspace), which skips the dummy
    # prefix when the text already starts with a space; other strings agree.
    tokenizer = AutoTokenizer.from_pretrained(str(folders["spm_json"]))
    for text in SPM_SAMPLE_TEXTS:
        if not text.startswith(" "):
            assert tokenizer.encode(text, add_special_tokens=False) == sp.encode(text), text


def test_vocab_has_byte_fallback_and_multibyte_pieces(sp):
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert 400 <= len(pieces) <= 600
    # As in Llama 2: <unk>, <s>, </s>, then the 256 byte tokens.
    assert pieces[:3] == ["<unk>", "<s>", "</s>"]
    assert pieces[3:259] == [f"<0x{b:02X}>" for b in range(256)]
    multibyte = [p for p in pieces if any(ord(ch) > 127 and ch != "▁" for ch in p)]
    assert any(len(p.encode()) > 1 for p in multibyte)
    for rare in ("😀", "日", "\n"):
        assert all(sp.is_byte(i) for i in sp.encode(rare)[-1:]), rare
    assert [sp.id_to_piece(i) for i in sp.encode("a\nb")] == ["▁a", "<0x0A>", "b"]


def test_reference_ids_mark_each_completed_exchange(sp):
    ids = reference_llama2_ids(sp, DIALOG)
    assert ids[0] == SPM_BOS_ID
    assert ids.count(SPM_BOS_ID) == 2
    assert ids.count(SPM_EOS_ID) == 1  # one completed exchange
    assert ids[-1] != SPM_EOS_ID
    single = reference_llama2_ids(sp, [{"role": "user", "content": "hi"}])
    assert single == [SPM_BOS_ID] + sp.encode("[INST] hi [/INST]")


def test_reference_ids_reject_malformed_dialogs(sp):
    with pytest.raises(ValueError):
        reference_llama2_ids(
            sp, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        )
    with pytest.raises(ValueError):
        reference_llama2_ids(
            sp, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        )


def test_legacy_chat_template_matches_meta_reference(folders, sp):
    """With "legacy": true, HF's rendering of Meta's template gives Meta's ids."""
    tokenizer = AutoTokenizer.from_pretrained(str(folders["spm_legacy"]))
    ids = tokenizer.apply_chat_template(DIALOG, tokenize=True, return_dict=False)
    assert list(ids) == reference_llama2_ids(sp, DIALOG)


def test_llama3_special_tokens_and_eos_ids(folders):
    folder = folders["bpe_llama3"]
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    token_ids = [tokenizer.convert_tokens_to_ids(t) for t in LLAMA3_SPECIAL_TOKENS]
    assert len(set(token_ids)) == len(LLAMA3_SPECIAL_TOKENS)
    config = _config(folder)
    assert config["bos_token_id"] == tokenizer.bos_token_id == token_ids[0]
    assert tokenizer.convert_tokens_to_ids(LLAMA3_EOT) in config["eos_token_id"]
    text = tokenizer.apply_chat_template(DIALOG, tokenize=False, add_generation_prompt=True)
    assert text.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    )
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    # Special tokens in the rendered text come back as single ids.
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids.count(config["bos_token_id"]) == 1


def test_weights_are_deterministic_per_seed(tmp_path):
    def weights(name: str, seed: int) -> bytes:
        folder = build_model(tmp_path / name, "spm_bare", quantize=False, seed=seed)
        return (folder / "model.safetensors").read_bytes()

    first, second, other = weights("a", seed=0), weights("b", seed=0), weights("c", seed=1)
    assert first == second
    assert first != other
