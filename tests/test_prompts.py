"""Prompt ids: Meta's reference Llama 2 encoding, chat templates, plain mode, context fitting."""

from __future__ import annotations

import pytest
import tiny_models

from engine.errors import ContextOverflow, PromptError
from engine.model_folder import resolve_model
from engine.prompts import PromptFormat, build_prompt, choose_format
from engine.tokenizer import load_tokenizer

DIALOGS = {
    "single": [{"role": "user", "content": "What is the capital of France?"}],
    "single_system": [
        {"role": "system", "content": "You are a terse assistant.\nAnswer in one word."},
        {"role": "user", "content": "  Capital of France?  "},
    ],
    "multi": [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": " Hello! How can I help?  "},
        {"role": "user", "content": "Tell me about café culture in 中国 🙂"},
    ],
    "multi_system": [
        {"role": "system", "content": "Always answer in rhymes."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second question, with [INST] tags and </s> inside"},
        {"role": "assistant", "content": "Second answer\n\nwith two paragraphs"},
        {"role": "user", "content": "Third 42 question"},
    ],
}


def _tokenizer(folder):
    info = resolve_model(folder)
    return info, load_tokenizer(info)


@pytest.mark.parametrize("variant", ["spm_legacy", "spm_nonlegacy", "spm_json", "spm_notemplate"])
@pytest.mark.parametrize("dialog", sorted(DIALOGS))
def test_llama2_ids_match_meta_reference(tiny, variant, dialog):
    sp = tiny_models.load_sentencepiece(tiny["spm_legacy"] / "tokenizer.model")
    info, tokenizer = _tokenizer(tiny[variant])
    prompt = build_prompt(tokenizer, DIALOGS[dialog], PromptFormat.LLAMA2, 4096, 256)
    assert prompt.ids == tiny_models.reference_llama2_ids(sp, DIALOGS[dialog])
    assert prompt.dropped_messages == []


@pytest.mark.parametrize("variant", ["spm_legacy", "spm_nonlegacy", "spm_json"])
def test_llama2_template_models_are_detected_as_llama2(tiny, variant):
    info, _ = _tokenizer(tiny[variant])
    assert choose_format(info) is PromptFormat.LLAMA2


def test_model_without_template_named_llama2_chat_uses_llama2(tmp_path, model_copy):
    folder = model_copy("spm_notemplate", name="Llama-2-7b-chat-tiny")
    assert choose_format(resolve_model(folder)) is PromptFormat.LLAMA2


def test_model_with_neither_template_nor_name_needs_plain_mode(tiny):
    info = resolve_model(tiny["spm_bare"])
    with pytest.raises(PromptError, match="plain-completion mode"):
        choose_format(info)
    assert choose_format(info, "plain") is PromptFormat.PLAIN


def test_plain_mode_is_bos_plus_the_text(tiny):
    info, tokenizer = _tokenizer(tiny["spm_bare"])
    prompt = build_prompt(tokenizer, [{"role": "user", "content": "Once upon a time"}],
                          PromptFormat.PLAIN, 4096, 64)
    expected = tokenizer.encode_plain("Once upon a time")
    assert prompt.ids[-len(expected):] == expected


def test_llama3_template_ids_match_the_template(tiny):
    info, tokenizer = _tokenizer(tiny["bpe_llama3"])
    assert choose_format(info) is PromptFormat.TEMPLATE
    dialog = DIALOGS["multi_system"]
    prompt = build_prompt(tokenizer, dialog, PromptFormat.TEMPLATE, 4096, 256)
    text = tokenizer.hf.apply_chat_template(dialog, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert prompt.ids == tokenizer.hf.encode(text, add_special_tokens=False)
    assert prompt.ids[0] == tokenizer.bos_id
    assert prompt.ids.count(tokenizer.hf.convert_tokens_to_ids("<|eot_id|>")) == 6


@pytest.mark.parametrize(
    "messages, fragment",
    [
        ([], "no messages"),
        ([{"role": "assistant", "content": "hi"}], "first message must be from 'user'"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "Message 2"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "last message"),
        ([{"role": "system", "content": "s"}, {"role": "system", "content": "t"}], "Message 2"),
        ([{"role": "robot", "content": "a"}], "role 'robot'"),
        ([{"role": "user"}], "text 'content'"),
        (["just a string"], "text 'content'"),
    ],
)
def test_bad_roles_are_clear_errors(tiny, messages, fragment):
    _, tokenizer = _tokenizer(tiny["spm_legacy"])
    with pytest.raises(PromptError, match=fragment):
        build_prompt(tokenizer, messages, PromptFormat.LLAMA2, 4096, 64)


def _long_dialog(exchanges: int) -> list[dict[str, str]]:
    dialog = [{"role": "system", "content": "Keep the system prompt."}]
    for i in range(exchanges):
        dialog.append({"role": "user", "content": f"question number {i} " + "word " * 20})
        dialog.append({"role": "assistant", "content": f"answer number {i} " + "text " * 20})
    dialog.append({"role": "user", "content": "the newest question"})
    return dialog


@pytest.mark.parametrize("variant, fmt", [("spm_legacy", PromptFormat.LLAMA2),
                                          ("bpe_llama3", PromptFormat.TEMPLATE)])
def test_overflow_drops_oldest_exchanges_keeps_system_and_reports_them(tiny, variant, fmt):
    _, tokenizer = _tokenizer(tiny[variant])
    dialog = _long_dialog(10)
    full = build_prompt(tokenizer, dialog, fmt, 100_000, 64)
    context = len(full.ids) // 2
    prompt = build_prompt(tokenizer, dialog, fmt, context, 64)
    dropped = prompt.dropped_messages
    assert dropped, "a prompt twice the window must lose messages"
    assert dropped == list(range(1, 1 + len(dropped))) and len(dropped) % 2 == 0
    assert len(prompt.ids) + min(64, context // 4) <= context
    kept = [dialog[0]] + dialog[1 + len(dropped):]
    assert prompt.ids == build_prompt(tokenizer, kept, fmt, 100_000, 64).ids
    # Dropping one exchange fewer would not have fitted: nothing was dropped needlessly.
    one_less = [dialog[0]] + dialog[len(dropped) - 1:]
    assert len(build_prompt(tokenizer, one_less, fmt, 100_000, 64).ids) + min(64, context // 4) > context
    assert prompt.max_tokens == min(64, context - len(prompt.ids))


def test_max_tokens_is_bounded_by_what_is_left(tiny):
    _, tokenizer = _tokenizer(tiny["spm_legacy"])
    prompt = build_prompt(tokenizer, DIALOGS["multi"], PromptFormat.LLAMA2, 200, 10_000)
    assert prompt.max_tokens == 200 - len(prompt.ids)


def test_a_message_longer_than_the_window_is_a_clear_error(tiny):
    _, tokenizer = _tokenizer(tiny["spm_legacy"])
    dialog = [{"role": "user", "content": "word " * 500}]
    with pytest.raises(ContextOverflow, match="context window holds 128"):
        build_prompt(tokenizer, dialog, PromptFormat.LLAMA2, 128, 32)


def test_a_megabyte_paste_is_refused_clearly_not_hung(tiny):
    _, tokenizer = _tokenizer(tiny["spm_legacy"])
    paste = ("A line of pasted log output, 2026-11-22 12:00:00 INFO ok\n" * 20_000)[:1_000_000]
    with pytest.raises(ContextOverflow, match="4,096"):
        build_prompt(tokenizer, [{"role": "user", "content": paste}], PromptFormat.LLAMA2, 4096, 256)


def test_continuing_a_llama2_answer_leaves_it_open(tiny):
    sp = tiny_models.load_sentencepiece(tiny["spm_legacy"] / "tokenizer.model")
    _, tokenizer = _tokenizer(tiny["spm_legacy"])
    dialog = DIALOGS["multi_system"]
    partial = {"role": "assistant", "content": "Third answer, cut  "}
    prompt = build_prompt(tokenizer, dialog + [partial], PromptFormat.LLAMA2, 4096, 64, continuing=True)
    reference = tiny_models.reference_llama2_ids(sp, dialog)
    open_turn = [1] + sp.encode("[INST] Third 42 question [/INST]")
    assert reference[-len(open_turn):] == open_turn
    expected = reference[: -len(open_turn)] + [1] + sp.encode("[INST] Third 42 question [/INST] Third answer, cut")
    assert prompt.ids == expected


def test_continuing_a_template_answer_has_no_end_of_turn(tiny):
    _, tokenizer = _tokenizer(tiny["bpe_llama3"])
    dialog = DIALOGS["multi"] + [{"role": "assistant", "content": "Partial answer"}]
    prompt = build_prompt(tokenizer, dialog, PromptFormat.TEMPLATE, 4096, 64, continuing=True)
    assert tokenizer.render(prompt.ids).endswith("<|start_header_id|>assistant<|end_header_id|>\n\nPartial answer")


def test_continuing_needs_an_answer_to_continue(tiny):
    _, tokenizer = _tokenizer(tiny["spm_legacy"])
    with pytest.raises(PromptError, match="continue an answer"):
        build_prompt(tokenizer, DIALOGS["single"], PromptFormat.LLAMA2, 4096, 64, continuing=True)
