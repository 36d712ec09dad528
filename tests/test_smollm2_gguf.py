"""The real SmolLM2-135M-Instruct GGUF (llama.cpp's Q4_1 conversion: byte-level BPE with the
'smollm' pre-tokenizer, ChatML template, no BOS), imported by Hearth and checked against what does
not come from Hearth: mlx's own GGUF reader for the weights, llama.cpp's tokenization and SmolLM2's
published pre-tokenizer for the tokenizer, and bare mlx-lm for the prompt and the answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
from tokenizers import Tokenizer

from engine.convert.gguf_import import (
    NOTE_FILE,
    Metadata,
    model_config,
    open_gguf,
    plan_tensors,
)
from engine.engine import Engine
from engine.generation import GenerationRequest
from engine.model_folder import validate_folder
from engine.prompts import PromptFormat, build_prompt, choose_format
from engine.sampling import SamplingSettings
from engine.tokenizer import load_tokenizer

LLAMA_CPP_IDS = Path(__file__).parent / "data" / "llama_cpp_pretokenizer_ids.json"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER_TOKENS = 12


def test_quantized_weights_are_taken_over_bit_for_bit(smollm2, smollm2_gguf):
    """mx.load reads Q4_1 and Q8_0 blocks as MLX (weight, scales, biases): the folder holds exactly
    those, q/k rows reordered into the half-split rotary layout; F32 norms become float16."""
    reader = open_gguf(smollm2_gguf)
    tensors = {t.name: t for t in reader.tensors}
    plans = plan_tensors(tensors, model_config(Metadata(reader, smollm2_gguf), tensors))
    theirs, ours = mx.load(str(smollm2_gguf)), mx.load(str(smollm2 / "model.safetensors"))
    note = json.loads((smollm2 / NOTE_FILE).read_text(encoding="utf-8"))
    assert note["tensor_types"] == {"Q4_1": 210, "Q8_0": 1, "F32": 61} and note["requantized"] == {}

    quantized = 0
    for plan in plans:
        base = plan.gguf_name.removesuffix(".weight")
        if plan.kind == "float":
            want = np.array(theirs[plan.gguf_name]).astype(np.float16)
            assert np.array_equal(np.array(ours[f"{plan.module}.weight"]), want), plan.gguf_name
            continue
        rows = np.arange(plan.rows)
        if plan.heads:  # llama.cpp's interleaved q/k rows, back to half-split pairs (i, i + d/2)
            rows = rows.reshape(plan.heads, -1, 2).swapaxes(1, 2).reshape(-1)
        for part in ("weight", "scales", "biases"):
            want = np.array(theirs[f"{base}.{part}"])[rows]
            assert np.array_equal(np.array(ours[f"{plan.module}.{part}"]), want), f"{base}.{part}"
        quantized += 1
    assert quantized == 211


def _published_smollm2_tokenizer(folder: Path) -> Tokenizer:
    """SmolLM2's own tokenizer.json splits digits one by one, then as GPT-2 does
    (Digits(individual_digits=True), ByteLevel(use_regex=True)): assembled here from the tokenizers
    library's own pre-tokenizers, on the imported vocabulary and merges."""
    from tokenizers import pre_tokenizers

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    return tokenizer


def test_tokenizer_gives_llama_cpps_ids_and_smollm2s_own(smollm2):
    recorded = json.loads(LLAMA_CPP_IDS.read_text(encoding="utf-8"))
    vocabulary = recorded["vocabularies"]["SmolLM2-135M-Instruct.Q4_1.gguf"]
    llama_cpp = vocabulary["encodings"][vocabulary["pre_tokenizers"]["smollm"]]
    rebuilt, published = Tokenizer.from_file(str(smollm2 / "tokenizer.json")), _published_smollm2_tokenizer(smollm2)
    for text, expected in zip(recorded["texts"], llama_cpp, strict=True):
        assert rebuilt.encode(text, add_special_tokens=False).ids == expected, repr(text)
        assert published.encode(text, add_special_tokens=False).ids == expected, repr(text)
        assert rebuilt.decode(expected) == text
    assert len(rebuilt.encode("1234567", add_special_tokens=False).ids) == 7


def test_template_bos_and_eos_are_the_files(smollm2, smollm2_gguf):
    meta = Metadata(open_gguf(smollm2_gguf), smollm2_gguf)
    info = validate_folder(smollm2)
    assert info.chat_template == meta.get("tokenizer.chat_template")
    assert choose_format(info) is PromptFormat.TEMPLATE
    config = json.loads((smollm2 / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert (config["add_bos_token"], config["add_eos_token"]) == (False, False)  # the file says so
    assert (config["bos_token"], config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    tokenizer = load_tokenizer(info)
    assert tokenizer.eos_ids == {2}
    assert tokenizer.hf.encode("Hi") == tokenizer.hf.encode("Hi", add_special_tokens=False)


def _upcast_halves(model) -> None:
    """float16 parameters (the import's scales, biases and norms) to float32, exactly. MLX's CPU
    backend computes float16 about 30 times slower than float32 (here: 115 s against 3.7 s for this
    prompt), so both sides compute in float32; the quantized values are untouched."""
    from mlx.utils import tree_map

    model.update(tree_map(lambda a: a.astype(mx.float32) if a.dtype == mx.float16 else a,
                          model.parameters()))


def _bare_mlx_lm(folder: Path) -> tuple[list[int], list[int], str]:
    """Prompt ids, greedy answer ids and text from mlx-lm alone (run on the thread that loads)."""
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = load(str(folder))
    _upcast_halves(model)
    prompt = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True)
    answer = []
    for response in stream_generate(model, tokenizer, prompt, max_tokens=ANSWER_TOKENS,
                                    sampler=make_sampler(temp=0.0)):
        answer.append(response.token)
    return list(prompt), answer, tokenizer.decode(answer)


def test_chat_answers_paris_with_bare_mlx_lms_ids(smollm2):
    info = validate_folder(smollm2)
    hearth_prompt = build_prompt(load_tokenizer(info), QUESTION, PromptFormat.TEMPLATE, 8192, ANSWER_TOKENS)
    with Engine() as engine:
        bare_prompt, bare_answer, bare_text = engine.run(lambda _loaded: _bare_mlx_lm(smollm2)).result(timeout=300)
        assert engine.load(smollm2).wait(timeout=300).finish_reason == "done"
        engine.run(lambda loaded: _upcast_halves(loaded.model)).result(timeout=60)
        request = GenerationRequest(QUESTION, SamplingSettings(temperature=0.0, max_tokens=ANSWER_TOKENS))
        finished = engine.generate(request).wait(timeout=300)

    assert "Paris" in bare_text
    assert hearth_prompt.ids == bare_prompt
    assert finished.error is None and finished.prompt_tokens == len(bare_prompt)
    # Hearth stops at EOS (<|im_end|>) and leaves it out of the text; mlx-lm counts it as a token.
    assert finished.token_ids == bare_answer[: len(finished.token_ids)]
    assert len(finished.token_ids) >= len(bare_answer) - 1
    assert "Paris" in finished.text
