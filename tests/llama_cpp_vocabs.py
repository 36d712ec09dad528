"""llama.cpp's tokenizer test vocabularies: real models' tokenizers as GGUF files, each with texts
and the ids the model's own Hugging Face tokenizer gives for them.

llama.cpp keeps, in models/, a vocabulary-only GGUF per tokenizer family (ggml-vocab-<name>.gguf)
with tricky inputs (.inp: whitespace runs, digits, accents, CJK, emoji, code, separated by
"__ggml_vocab_test__" lines) and the expected ids (.out, one line per input), which its
convert_hf_to_gguf_update.py wrote with `AutoTokenizer.from_pretrained(repo).encode(text)` on the
model's own tokenizer. The llama-cpp-python sdist on PyPI vendors llama.cpp with these files; it is
fetched once with pip (no code from it is imported or built) and only those files are unpacked into
the test cache beside the virtualenv.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from real_models import cache_dir

SDIST = "llama-cpp-python==0.3.36"
MEMBER_PREFIX = "vendor/llama.cpp/models/ggml-vocab-"
SEPARATOR = "\n__ggml_vocab_test__\n"


@dataclass(frozen=True)
class VocabCase:
    name: str  # e.g. "llama-bpe", from ggml-vocab-llama-bpe.gguf
    gguf: Path
    texts: list[str]
    expected_ids: list[list[int]]


def vocab_dir() -> Path:
    """The folder holding ggml-vocab-*.gguf with their .inp/.out, downloaded on first use."""
    root = cache_dir()
    target = root / "llama-cpp-vocabs"
    with FileLock(str(root / ".llama-cpp-vocabs.lock")):
        if (target / "complete").is_file():
            return target
        downloads = root / "sdists"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", "llama-cpp-python",
             SDIST, "-d", str(downloads)],
            check=True, timeout=900,
        )
        sdist = next(downloads.glob("llama_cpp_python-*.tar.gz"))
        target.mkdir(exist_ok=True)
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                _, _, inner = member.name.partition("/")
                if member.isfile() and inner.startswith(MEMBER_PREFIX):
                    source = archive.extractfile(member)
                    (target / Path(inner).name).write_bytes(source.read())
        (target / "complete").touch()
        sdist.unlink()
    return target


def vocab_case(name: str) -> VocabCase:
    """The GGUF of one vocabulary and its texts with their reference ids."""
    folder = vocab_dir()
    gguf = folder / f"ggml-vocab-{name}.gguf"
    # Each input ends with the separator line; each output is one line.
    texts = Path(f"{gguf}.inp").read_text(encoding="utf-8").removesuffix(SEPARATOR).split(SEPARATOR)
    lines = Path(f"{gguf}.out").read_text(encoding="utf-8").removesuffix("\n").split("\n")
    assert len(texts) == len(lines), f"{gguf.name}: {len(texts)} inputs but {len(lines)} outputs"
    return VocabCase(name, gguf, texts, [[int(i) for i in line.split()] for line in lines])
