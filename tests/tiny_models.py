"""Tiny, deterministic Llama-family model folders for tests.

No real model can be downloaded in CI, so tests build miniature ones on the fly:
a sentencepiece BPE tokenizer trained with Llama 2's trainer settings, a byte-level
BPE tokenizer with Llama 3's special tokens, and a random 2-layer Llama network
saved the way ``mlx_lm`` saves converted models.  Every folder loads with
``mlx_lm.load`` and ``transformers.AutoTokenizer.from_pretrained``.

Variants (``VARIANTS``) differ only in their tokenizer files:

* ``spm_legacy``     tokenizer.model + tokenizer_config.json ("legacy": true), Llama 2 chat template
* ``spm_nonlegacy``  the same with "legacy": false
* ``spm_json``       tokenizer.json (converted from the sentencepiece model) + tokenizer_config.json
* ``spm_notemplate`` tokenizer.model + tokenizer_config.json with neither a chat template nor a
  "legacy" key, like conversions made before chat templates existed
* ``spm_bare``       tokenizer.model only (plain completion, nothing else to go on)
* ``bpe_llama3``     byte-level BPE tokenizer.json + tokenizer_config.json, Llama 3 chat template

``reference_llama2_ids`` transcribes Meta's own Llama 2 ``chat_completion`` prompt
encoding; it is the oracle the app's prompt builder is checked against.

How transformers 5.23 treats these folders (see test_tiny_models.py):

* A "LlamaTokenizer" ignores tokenizer.json's normalizer and pre-tokenizer and builds a
  Metaspace pre-tokenizer from the "legacy" flag: true prepends "▁" to every text
  segment (what Meta's per-message ``sp.encode`` calls do); false, or no key at all,
  only to the start of the string, so "<s>[INST]" encodes "[" instead of "▁[" and the
  Llama 2 chat template no longer reproduces Meta's ids.
* Metaspace skips the dummy prefix when the text already starts with a space, so
  " x" gets one "▁" fewer than from sentencepiece.
* A folder with only tokenizer.model gets a generic TokenizersBackend: no BOS and no
  dummy prefix at all.
* ``apply_chat_template(tokenize=True)`` returns a dict unless ``return_dict=False``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import random
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import sentencepiece as spm

VARIANTS: tuple[str, ...] = (
    "spm_legacy",
    "spm_nonlegacy",
    "spm_json",
    "spm_notemplate",
    "spm_bare",
    "bpe_llama3",
)
SPM_VARIANTS: tuple[str, ...] = tuple(v for v in VARIANTS if v.startswith("spm_"))

# The tokenizer files each variant's folder holds, and nothing else of the kind.
TOKENIZER_FILES: dict[str, frozenset[str]] = {
    "spm_legacy": frozenset({"tokenizer.model", "tokenizer_config.json"}),
    "spm_nonlegacy": frozenset({"tokenizer.model", "tokenizer_config.json"}),
    "spm_json": frozenset({"tokenizer.json", "tokenizer_config.json"}),
    "spm_notemplate": frozenset({"tokenizer.model", "tokenizer_config.json"}),
    "spm_bare": frozenset({"tokenizer.model"}),
    "bpe_llama3": frozenset({"tokenizer.json", "tokenizer_config.json"}),
}

SPM_VOCAB_SIZE = 512
BPE_VOCAB_SIZE = 600  # including the special tokens
CORPUS_LINES = 3000

SPM_UNK_ID, SPM_BOS_ID, SPM_EOS_ID = 0, 1, 2

# Meta's chat template, as shipped in meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json.
# The '\\n' are backslash-n inside Jinja string literals (Jinja turns them into newlines);
# the two spaces in "' '  + content" are in the original.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}"
    "{% else %}"
    "{% set loop_messages = messages %}"
    "{% set system_message = false %}"
    "{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}"
    "{% set content = message['content'] %}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

# The Meta-Llama-3-8B-Instruct template.  Here "\n\n" are real newline characters.
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}"
    "{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

LLAMA3_BOS = "<|begin_of_text|>"
LLAMA3_END_OF_TEXT = "<|end_of_text|>"
LLAMA3_EOT = "<|eot_id|>"
LLAMA3_SPECIAL_TOKENS: tuple[str, ...] = (
    LLAMA3_BOS,
    LLAMA3_END_OF_TEXT,
    "<|start_header_id|>",
    "<|end_header_id|>",
    LLAMA3_EOT,
)

# Llama 3's pre-tokenizer split pattern (contractions, letters, 1-3 digit groups, ...).
LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Meta's prompt delimiters (llama/generation.py).
B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"


# --------------------------------------------------------------------------- corpus

_WORDS = (
    "the a an of to and in is it that for on with as was at by be this from or have not are "
    "but what all were when we there can your which their said if do will each about how up "
    "out them then she many some so these would other into has more her two like him see time "
    "could no make than first been its who now people my made over did down only way find use "
    "may water long little very after words called just where most know model token chat "
    "assistant user system hello world answer question please thanks llama fire hearth local "
    "private message reply window prompt text stream memory"
).split()
_ACCENTED = (
    "café",
    "naïve",
    "über",
    "jalapeño",
    "façade",
    "résumé",
    "crème",
    "señor",
    "Zürich",
    "déjà",
)
_COMMON_CJK = ("中文", "你好")  # frequent: these characters become pieces
_RARE_CJK = ("日本語", "漢字", "東京")  # rare: these fall back to byte tokens
_EMOJI = ("😀", "🎉", "🔥")  # rare: byte fallback
_CODE_LINES = (
    "def add(a, b): return a + b",
    "x = [1, 2, 3]; y = {'k': 'v'}",
    "for (int i = 0; i < n; i++) { sum += i; }",
    "if (x != null && y >= 0) return x->next;",
    'print(f"{name}: {value:.2f}")',
    "import os, sys  # comment",
    "const msg = `hello ${user}`;",
    "SELECT id, name FROM users WHERE age > 30;",
    '<div class="row">ok</div>',
    "path = \"/usr/local/bin\" | grep -v '^#'",
)
_MULTILINE_CODE = (
    "def greet(name):\n    return 'hi ' + name",
    "while True:\n    step()\n    if done:\n        break",
    '{\n  "key": [1, 2],\n  "ok": true\n}',
)
# ASCII printable characters are always kept as pieces, like in Llama 2's vocabulary.
_REQUIRED_CHARS = "".join(chr(c) for c in range(33, 127)) + "éïüñçèàû中文你好"


def _prose(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(_ACCENTED))
    if rng.random() < 0.3:
        words[rng.randrange(len(words))] += ","
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(".!?;:")


def _numbers(rng: random.Random) -> str:
    return rng.choice(
        (
            f"In {rng.randint(1900, 2030)} we sold {rng.randint(1, 99999)} units.",
            f"It costs ${rng.randint(1, 999)}.{rng.randint(0, 99):02d} (about {rng.randint(1, 99)}%).",
            f"Call 555-{rng.randint(1000, 9999)} at {rng.randint(1, 12)}:{rng.randint(0, 59):02d} pm",
            f"pi = 3.{rng.randint(1000, 99999)} and e = 2.71828",
        )
    )


def _chatty(rng: random.Random) -> str:
    question, answer = _prose(rng), _prose(rng)
    return f"{B_INST} {question} {E_INST} {answer}"


def _multibyte(rng: random.Random) -> str:
    text = f"{rng.choice(_COMMON_CJK)} {_prose(rng)} {rng.choice(_COMMON_CJK)}"
    if rng.random() < 0.05:
        text += " " + rng.choice(_RARE_CJK)
    if rng.random() < 0.05:
        text += " " + rng.choice(_EMOJI)
    return text


def training_corpus(seed: int = 0, num_lines: int = CORPUS_LINES) -> list[str]:
    """Deterministic mixed text: prose, numbers, code, chat markup and some non-ASCII."""
    rng = random.Random(seed)
    makers = (_prose, _prose, _prose, _numbers, _chatty, _multibyte)
    lines = []
    for _ in range(num_lines):
        roll = rng.random()
        if roll < 0.03:
            # Kept rare on purpose: like Llama 2's vocabulary, "\n" ends up as the
            # byte token <0x0A> rather than a piece of its own.
            lines.append(rng.choice(_MULTILINE_CODE))
        elif roll < 0.15:
            lines.append(rng.choice(_CODE_LINES))
        else:
            lines.append(rng.choice(makers)(rng))
    return lines


# ------------------------------------------------------------------- sentencepiece


@functools.cache
def _spm_model_proto() -> bytes:
    """Train once per process (training is deterministic, so caching changes nothing)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_corpus()),
        model_writer=model,
        # Llama 2's trainer settings.
        model_type="bpe",
        vocab_size=SPM_VOCAB_SIZE,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        unk_id=SPM_UNK_ID,
        bos_id=SPM_BOS_ID,
        eos_id=SPM_EOS_ID,
        pad_id=-1,
        unk_piece="<unk>",
        bos_piece="<s>",
        eos_piece="</s>",
        # Our corpus is tiny, so the coverage is lower than Llama 2's 0.99995 for the
        # rare tail (emoji, rare CJK, "\n") to fall back to bytes; required_chars keeps
        # ASCII and the common accented/CJK characters as pieces regardless.
        character_coverage=0.995,
        required_chars=_REQUIRED_CHARS,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def train_sentencepiece(dest_dir: Path) -> Path:
    """Write a small Llama-2-style sentencepiece BPE model to ``dest_dir/tokenizer.model``."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / "tokenizer.model"
    path.write_bytes(_spm_model_proto())
    return path


def load_sentencepiece(path: Path) -> spm.SentencePieceProcessor:
    """A processor for ``path`` (a tokenizer.model file or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.model"
    return spm.SentencePieceProcessor(model_file=str(path))


# Strings on which the converted tokenizer.json must agree with sentencepiece.
SPM_SAMPLE_TEXTS: tuple[str, ...] = (
    "Hello world",
    " leading space",
    "trailing space ",
    "  two  spaces  ",
    "line one\nline two\n\n",
    "\n starts with a newline",
    "[INST] What is 2+2? [/INST] It is 4. ",
    "<<SYS>>\nBe brief.\n<</SYS>>\n\nHi",
    "Order 12345 costs $6.78",
    "café naïve jalapeño Zürich",
    "中文 你好 日本語 漢字",
    "emoji 😀🎉 done",
    "def f(x):\n    return x * 2",
    "",
)


def _spm_decoder_is_spm_style(decoder: dict) -> bool:
    steps = [step["type"] for step in decoder.get("decoders", [])]
    return decoder.get("type") == "Sequence" and steps == [
        "Replace",
        "ByteFallback",
        "Fuse",
        "Strip",
    ]


def check_spm_json(tokenizer_json: Path, sp: spm.SentencePieceProcessor) -> None:
    """Raise AssertionError unless ``tokenizer_json`` decodes SPM-style and encodes like ``sp``."""
    from tokenizers import Tokenizer

    content = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    if not _spm_decoder_is_spm_style(content["decoder"]):
        raise AssertionError(f"tokenizer.json decoder is not SPM style: {content['decoder']}")
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    for text in SPM_SAMPLE_TEXTS:
        ours = tokenizer.encode(text, add_special_tokens=False).ids
        theirs = sp.encode(text)
        if ours != theirs:
            raise AssertionError(f"{text!r}: tokenizer.json gives {ours}, sentencepiece {theirs}")


@functools.cache
def _spm_tokenizer_json() -> str:
    """tokenizer.json converted from the sentencepiece model, in Meta's HF layout.

    transformers converts the vocabulary and merges, but its Metaspace pre-tokenizer
    (prepend_scheme "always") only adds the dummy "▁" when the text does not already
    start with one, so " leading space" loses a token compared with sentencepiece.
    Like the tokenizer.json in meta-llama/Llama-2-7b-chat-hf we therefore use the
    normalizers Prepend("▁") + Replace(" ", "▁") and no pre-tokenizer: that prepends
    unconditionally to every text segment, which is what add_dummy_prefix does each
    time Meta's code calls ``sp.encode``.  (transformers 5 ignores both when it loads
    a "LlamaTokenizer" folder: it rebuilds a Metaspace pre-tokenizer from the
    "legacy" flag in tokenizer_config.json.)
    """
    from tokenizers import Tokenizer, normalizers, processors
    from transformers import LlamaTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        source, converted = Path(tmp, "source"), Path(tmp, "converted")
        train_sentencepiece(source)
        LlamaTokenizer.from_pretrained(str(source), legacy=True).save_pretrained(str(converted))
        tokenizer = Tokenizer.from_file(str(converted / "tokenizer.json"))

    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    tokenizer.pre_tokenizer = None
    # The converter saved a post-processor without BOS; Meta's file adds "<s>", and
    # transformers 5 takes the post-processor from tokenizer.json, not from add_bos_token.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0",
        pair="<s>:0 $A:0 <s>:1 $B:1",
        special_tokens=[("<s>", SPM_BOS_ID)],
    )
    tokenizer_json = tokenizer.to_str(pretty=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "tokenizer.json")
        path.write_text(tokenizer_json, encoding="utf-8")
        check_spm_json(path, spm.SentencePieceProcessor(model_proto=_spm_model_proto()))
    return tokenizer_json


# --------------------------------------------------------------------- byte-level BPE


@functools.cache
def _bpe_tokenizer_json() -> str:
    """A byte-level BPE tokenizer.json with Llama 3's special tokens appended at the end."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE - len(LLAMA3_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    # Added after training so that, as in Llama 3, they get the highest ids.
    tokenizer.add_special_tokens(list(LLAMA3_SPECIAL_TOKENS))
    bos_id = tokenizer.token_to_id(LLAMA3_BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{LLAMA3_BOS} $A",
        pair=f"{LLAMA3_BOS} $A {LLAMA3_BOS}:1 $B:1",
        special_tokens=[(LLAMA3_BOS, bos_id)],
    )
    return tokenizer.to_str()


def _bpe_token_id(tokenizer_json: str, token: str) -> int:
    for added in json.loads(tokenizer_json)["added_tokens"]:
        if added["content"] == token:
            return added["id"]
    raise KeyError(token)


# ------------------------------------------------------------------- tokenizer files


def _spm_tokenizer_config(*, legacy: bool | None, chat_template: str | None) -> dict:
    """``legacy=None`` leaves the key out, as conversions made before transformers 4.31 did."""
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
    }
    if legacy is not None:
        config["legacy"] = legacy
    if chat_template is not None:
        config["chat_template"] = chat_template
    return config


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_spm_tokenizer(dest: Path, variant: str) -> dict:
    """Write the variant's tokenizer files; return the ids config.json needs."""
    if variant == "spm_json":
        (dest / "tokenizer.json").write_text(_spm_tokenizer_json(), encoding="utf-8")
    else:
        train_sentencepiece(dest)

    # spm_json mirrors Meta's Llama-2-7b-chat-hf tokenizer_config.json, which (as far as we
    # know) says "legacy": false.
    configs = {
        "spm_legacy": _spm_tokenizer_config(legacy=True, chat_template=LLAMA2_CHAT_TEMPLATE),
        "spm_nonlegacy": _spm_tokenizer_config(legacy=False, chat_template=LLAMA2_CHAT_TEMPLATE),
        "spm_json": _spm_tokenizer_config(legacy=False, chat_template=LLAMA2_CHAT_TEMPLATE),
        "spm_notemplate": _spm_tokenizer_config(legacy=None, chat_template=None),
    }
    if variant in configs:
        _write_json(dest / "tokenizer_config.json", configs[variant])

    vocab_size = spm.SentencePieceProcessor(model_proto=_spm_model_proto()).get_piece_size()
    return {"vocab_size": vocab_size, "bos_token_id": SPM_BOS_ID, "eos_token_id": SPM_EOS_ID}


def _write_bpe_tokenizer(dest: Path) -> dict:
    tokenizer_json = _bpe_tokenizer_json()
    (dest / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    _write_json(
        dest / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": LLAMA3_BOS,
            "eos_token": LLAMA3_EOT,
            # As in Meta's Llama 3 release; it makes decode() tidy spaces before punctuation.
            "clean_up_tokenization_spaces": True,
            "model_input_names": ["input_ids", "attention_mask"],
            "chat_template": LLAMA3_CHAT_TEMPLATE,
        },
    )
    from tokenizers import Tokenizer

    return {
        "vocab_size": Tokenizer.from_str(tokenizer_json).get_vocab_size(with_added_tokens=True),
        "bos_token_id": _bpe_token_id(tokenizer_json, LLAMA3_BOS),
        "eos_token_id": [
            _bpe_token_id(tokenizer_json, LLAMA3_END_OF_TEXT),
            _bpe_token_id(tokenizer_json, LLAMA3_EOT),
        ],
    }


# ------------------------------------------------------------------------------ model


def _model_config(
    token_ids: dict,
    *,
    variant: str,
    max_position_embeddings: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "intermediate_size": intermediate_size,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": max_position_embeddings,
        "rope_theta": 500000.0 if variant == "bpe_llama3" else 10000.0,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
        **token_ids,
    }


def build_model(
    dest: Path,
    variant: str,
    *,
    max_position_embeddings: int = 4096,
    quantize: bool = True,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
) -> Path:
    """Build a complete mlx-lm model folder at ``dest`` (which must be absent or empty).

    The weights are random but fixed by ``seed``; with ``quantize`` they are stored
    4-bit with group size 32, as ``mlx_lm.convert -q`` would (hidden_size and
    intermediate_size must then be multiples of 32).
    """
    import mlx.core as mx
    from mlx_lm.models.llama import Model, ModelArgs
    from mlx_lm.utils import quantize_model, save_config, save_model

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)

    if variant in SPM_VARIANTS:
        token_ids = _write_spm_tokenizer(dest, variant)
    else:
        token_ids = _write_bpe_tokenizer(dest)

    config = _model_config(
        token_ids,
        variant=variant,
        max_position_embeddings=max_position_embeddings,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size,
    )
    mx.random.seed(seed)
    model = Model(ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    if quantize:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints bits-per-weight
            model, config = quantize_model(model, config, group_size=32, bits=4)
    save_model(dest, model)
    save_config(config, dest / "config.json")
    _write_json(
        dest / "generation_config.json",
        {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"]},
    )
    return dest


def build_all(root: Path) -> dict[str, Path]:
    """Build every variant in ``root/<variant>``; return variant -> folder."""
    root = Path(root)
    return {variant: build_model(root / variant, variant) for variant in VARIANTS}


# -------------------------------------------------------------------- Meta's reference


def _meta_encode(sp: spm.SentencePieceProcessor, text: str, *, bos: bool, eos: bool) -> list[int]:
    """llama/tokenizer.py ``Tokenizer.encode``."""
    ids = sp.encode(text)
    if bos:
        ids = [sp.bos_id()] + ids
    if eos:
        ids = ids + [sp.eos_id()]
    return ids


def reference_llama2_ids(sp: spm.SentencePieceProcessor, dialog: Sequence[dict]) -> list[int]:
    """Prompt ids for ``dialog`` exactly as Meta's Llama 2 ``chat_completion`` builds them.

    A transcription of meta-llama/llama ``llama/generation.py``: a leading system
    message is folded into the first user message (unstripped, between B_SYS and
    E_SYS); each completed (user, assistant) exchange is encoded on its own with BOS
    and EOS; the final user message is encoded with BOS only.  Meta's asserts are
    ValueErrors here.  (Meta also flags dialogs that contain the tags as "unsafe",
    which changes its output, not the prompt, so it is left out.)
    """
    dialog = list(dialog)
    if not dialog:
        raise ValueError("empty dialog")
    if dialog[0]["role"] == "system":
        if len(dialog) < 2:
            raise ValueError("a system message must be followed by a user message")
        folded = B_SYS + dialog[0]["content"] + E_SYS + dialog[1]["content"]
        dialog = [{"role": dialog[1]["role"], "content": folded}] + dialog[2:]
    users_ok = all(message["role"] == "user" for message in dialog[::2])
    assistants_ok = all(message["role"] == "assistant" for message in dialog[1::2])
    if not (users_ok and assistants_ok):
        raise ValueError(
            "model only supports 'system', 'user' and 'assistant' roles, "
            "starting with 'system', then 'user' and alternating (u/a/u/a/u...)"
        )
    if dialog[-1]["role"] != "user":
        raise ValueError(f"Last message must be from user, got {dialog[-1]['role']}")

    ids: list[int] = []
    for prompt, answer in zip(dialog[::2], dialog[1::2], strict=False):
        exchange = f"{B_INST} {prompt['content'].strip()} {E_INST} {answer['content'].strip()} "
        ids += _meta_encode(sp, exchange, bos=True, eos=True)
    last = f"{B_INST} {dialog[-1]['content'].strip()} {E_INST}"
    ids += _meta_encode(sp, last, bos=True, eos=False)
    return ids


def iter_tokenizer_files(folder: Path) -> Iterator[str]:
    """Names of the tokenizer files in ``folder`` (for checking a variant's layout)."""
    names = (
        "tokenizer.model",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    )
    for name in names:
        if (Path(folder) / name).exists():
            yield name
