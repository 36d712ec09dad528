"""How each llama.cpp pre-tokenizer (a GGUF's `tokenizer.ggml.pre`) splits text, for rebuilding a
byte-level BPE tokenizer as a Hugging Face tokenizer.json.

llama.cpp maps each name to a pre-tokenizer type (src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_*) and
each type to a list of regexes applied one after the other: every regex splits each piece further,
and text between matches stays a piece of its own. That is exactly a Hugging Face pre-tokenizer
`Sequence([Split(Regex(r), behavior="isolated") for r in regexes] + [ByteLevel(use_regex=False)])`,
the form transformers' GGUF loader and the models' own tokenizer.json files use.

Where llama.cpp rewrote a model's regex because C++'s std::regex lacks a feature (case-insensitive
groups, Unicode letter categories), the model's original regex is used here: the `tokenizers`
library runs it as the model's own tokenizer does. Checked against llama.cpp's own ids for every
name (tests/test_gguf_tokenizers.py): they agree except where llama.cpp's rewrite drops combining
marks from words (GPT-4o, Tekken) or cannot tell case apart (Youtu, Tiny Aya).
The other settings follow llama.cpp too:
`ignore_merges` (a word that is a whole token is taken as is), whether BOS is added when the file
does not say, and whether decoding cleans up spaces.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreTokenizer:
    """How one llama.cpp pre-tokenizer type splits text and treats special tokens."""

    splits: tuple[str, ...]  # Oniguruma regexes, applied in turn, each isolating its matches
    ignore_merges: bool = False
    add_bos: bool = False  # when tokenizer.ggml.add_bos_token is absent
    clean_spaces: bool = False  # decoding removes the space before punctuation (" ." -> ".")
    bos_allowed: bool = True  # ChatGLM's: llama.cpp drops the BOS id whatever the file says


# The pieces the regexes below are made of.
CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
CONTRACTIONS_CASED = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"  # llama.cpp's spelling
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN35 = (CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
JAIS2 = (CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
         + "".join(rf"|\s{{{n}}}(?!\S)" for n in (512, 256, 128, 64, 32, 16, 8, 4))
         + r"|\s{1,2}(?!\S)|\s{1}")
# Words split at case changes ("camelCase" -> "camel", "Case"), as Mistral's Tekken and OpenAI's
# o200k do.
_UPPER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
TEKKEN = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*"
          r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT4O = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{CONTRACTIONS}?"
         rf"|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{CONTRACTIONS}?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SEED_CODER = (CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BAILINGMOE = (r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*"
              r"|\s*[\r\n]|\s+(?!\S)|\s+")
EXAONE_MOE = (CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+")
UFAKZEKA = r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
MINICPM5 = (CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# Text in which sentences are split at their punctuation (BLOOM, Poro, Viking, GPT-3 Finnish).
SENTENCE_PUNCTUATION = " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"
ASCII_PUNCTUATION_THEN_WORD = r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+"
DEEPSEEK_V3 = (ASCII_PUNCTUATION_THEN_WORD + r"|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
               r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPARK = (ASCII_PUNCTUATION_THEN_WORD + r"|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
         r"| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+")
HAN_KANA = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
HAN_HANGUL = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
# DeepSeek LLM's letters with case (Latin, Greek, Cyrillic, Armenian, Georgian, Cherokee...).
CASED_LETTERS = (
    "A-Za-z\xb5\xc0-\xd6\xd8-\xf6\xf8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373"
    "\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481"
    "\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf"
    "\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d"
    "\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4"
    "\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107"
    "\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f"
    "\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d"
    "\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17"
    "\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb"
    "\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943"
)
DEEPSEEK_LLM_PUNCTUATION = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"
YOUTU_CJK = ("[\uac00-\ud7a3\u3131-\u318e]+"
             "|[\uff01\u2026\u201c\u201d\u2018\u2019\u2014\uff1a\uff1b\uff0c\u3001-\u303f\ufe30-\ufe4f]+"
             "|[\u3105-\u312f]+|" + HAN_KANA)
YOUTU = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{CONTRACTIONS_CASED}?"
         rf"|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{CONTRACTIONS_CASED}?"
         r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

_DEFAULT = PreTokenizer((r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"), clean_spaces=True)
_LLAMA3 = PreTokenizer((LLAMA3,), ignore_merges=True, add_bos=True, clean_spaces=True)
_LLAMA3_SPLIT_ONLY = PreTokenizer((LLAMA3,), clean_spaces=True)
_JAIS2 = PreTokenizer((JAIS2,), clean_spaces=True)
_DEEPSEEK_LLM = PreTokenizer(
    ("[\r\n]", f"\\s?[{CASED_LETTERS}]+", DEEPSEEK_LLM_PUNCTUATION, r"\s+$", HAN_HANGUL, r"\p{N}+")
)
_DEEPSEEK_V3 = PreTokenizer((r"\p{N}{1,3}", HAN_KANA, DEEPSEEK_V3))
_SPARK = PreTokenizer((r"\p{N}{1,3}", HAN_KANA, SPARK, r"\p{N}"))
_YOUTU = PreTokenizer((YOUTU_CJK, YOUTU), ignore_merges=True)
_DEEPSEEK_CODER = PreTokenizer(("[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", HAN_HANGUL, r"\p{N}"))
_FALCON = PreTokenizer((r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"), clean_spaces=True)
_DIGITS_GPT2 = PreTokenizer((r"\p{N}", GPT2), clean_spaces=True)  # StarCoder and its kin
_DIGITS_GPT2_RAW = PreTokenizer((r"\p{N}", GPT2))
_GPT2 = PreTokenizer((GPT2,), clean_spaces=True)
_GPT2_RAW = PreTokenizer((GPT2,))
_QWEN2 = PreTokenizer((QWEN2,))
_QWEN2_CLEAN = PreTokenizer((QWEN2,), clean_spaces=True)
_SENTENCES = PreTokenizer((SENTENCE_PUNCTUATION,), clean_spaces=True)
_GPT4O = PreTokenizer((GPT4O,))

# tokenizer.ggml.pre -> how to split, as llama.cpp's llama_vocab::impl::load maps the names.
PRE_TOKENIZERS: dict[str, PreTokenizer] = {
    "default": _DEFAULT,
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                     "lfm2", "jina-v5-nano"), _LLAMA3),
    "dbrx": _LLAMA3_SPLIT_ONLY,
    "smaug-bpe": _LLAMA3_SPLIT_ONLY,
    "jais-2": _JAIS2,
    "deepseek-llm": _DEEPSEEK_LLM,
    "deepseek-coder": _DEEPSEEK_CODER,
    **dict.fromkeys(("deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"), _DEEPSEEK_V3),
    "spark2_5": _SPARK,
    "youtu": _YOUTU,
    "falcon": _FALCON,
    **dict.fromkeys(("starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"), _DIGITS_GPT2),
    **dict.fromkeys(("command-r", "smollm"), _DIGITS_GPT2_RAW),
    **dict.fromkeys(("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                     "a.x-4.0", "mellum", "modern-bert", "exaone4", "mpt", "olmo", "jais"), _GPT2),
    **dict.fromkeys(("trillion", "granite-docling"), _GPT2_RAW),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2"),
                    _QWEN2),
    **dict.fromkeys(("stablelm2", "megrez"), _QWEN2_CLEAN),
    "qwen35": PreTokenizer((QWEN35,)),
    "poro-chat": PreTokenizer((SENTENCE_PUNCTUATION,)),
    **dict.fromkeys(("bloom", "gpt3-finnish"), _SENTENCES),
    "chatglm-bpe": PreTokenizer((LLAMA3,), clean_spaces=True, bos_allowed=False),
    **dict.fromkeys(("glm4", "glm5"),
                    PreTokenizer((LLAMA3,), ignore_merges=True, clean_spaces=True, bos_allowed=False)),
    "viking": PreTokenizer((SENTENCE_PUNCTUATION, r"\p{N}")),
    "tekken": PreTokenizer((TEKKEN,), ignore_merges=True, add_bos=True),
    "chameleon": PreTokenizer(
        ("<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", r"\p{N}",
         r"[\p{P}!-/:-@\[-`{-~]", GPT2),
        add_bos=True,
    ),
    **dict.fromkeys(("gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"), _GPT4O),
    **dict.fromkeys(("tiny_aya", "cohere2moe"), PreTokenizer((r"\d{1,3}(?=(?:\d{3})*\b)", GPT4O))),
    "bailingmoe": PreTokenizer((BAILINGMOE,)),
    "bailingmoe2": PreTokenizer((BAILINGMOE,)),
    "llada-moe": PreTokenizer((BAILINGMOE,)),
    "seed-coder": PreTokenizer((SEED_CODER,)),
    # SuperBPE: digit runs split in threes from the right; the rest is merged across spaces.
    "superbpe": PreTokenizer((r"\p{N}+", r"(?=(\d{3})+(?!\d))")),
    "ufakzeka": PreTokenizer((UFAKZEKA,)),
    "laguna": PreTokenizer(("[^\\n]+|[\\n]+", QWEN2)),
    "exaone-moe": PreTokenizer((EXAONE_MOE,), clean_spaces=True),
    "minicpm5": PreTokenizer((r"\p{N}{1,3}", MINICPM5), ignore_merges=True, clean_spaces=True),
}

# Names llama.cpp knows whose tokenizers cannot be rebuilt as byte-level BPE, and why.
UNSUPPORTED: dict[str, str] = {
    **dict.fromkeys(
        ("gemma4", "granite-embed-multi-311m", "sarvam-moe", "mmbert"),
        "merges raw UTF-8 text sentencepiece-style rather than bytes",
    ),
    "kimi-k2": "splits Chinese text with custom code in llama.cpp that no regex reproduces",
    "afmoe": "groups digits with custom code in llama.cpp that no regex reproduces",
    **dict.fromkeys(
        ("whitespace", "jina-v1-en", "jina-v2-code", "roberta-bpe", "granite-embed-multi-97m"),
        "belongs to an embedding model, not a chat model",
    ),
}
