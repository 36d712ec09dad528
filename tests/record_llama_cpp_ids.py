"""Re-record data/llama_cpp_pretokenizer_ids.json with a llama.cpp build (not run by the tests).

    .venv/bin/python tests/record_llama_cpp_ids.py LLAMA_CPP_SOURCE

LLAMA_CPP_SOURCE is a llama.cpp source tree with `build/bin/llama-tokenize` built in it (cmake -B
build && cmake --build build --target llama-tokenize). For each vocabulary and every pre-tokenizer
name Hearth rebuilds, a vocabulary-only GGUF is written with the vocabulary file's metadata and the
name replaced, and llama-tokenize gives the ids of each text (as bytes on stdin: no newline
translation, no escape processing, no BOS). The texts are the file's own; the names llama.cpp maps
are read from its src/llama-vocab.cpp, so the tests notice a name Hearth has not placed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import gguf

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

import llama_cpp_vocabs  # noqa: E402
import real_models  # noqa: E402

from engine.convert.gguf_pretokenizers import PRE_TOKENIZERS  # noqa: E402

DATA = TESTS / "data" / "llama_cpp_pretokenizer_ids.json"


def vocabularies() -> dict[str, Path]:
    return {
        real_models.SMOLLM2_GGUF: real_models.smollm2_gguf(),
        "ggml-vocab-llama-bpe.gguf": llama_cpp_vocabs.vocab_case("llama-bpe").gguf,
    }


def vocabulary_only(source: Path, dest: Path, pre: str) -> Path:
    """source's metadata (no tensors) with tokenizer.ggml.pre set to pre."""
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(str(dest), reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = pre if key == "tokenizer.ggml.pre" else field.contents()
        kind = field.types[0]
        writer.add_key_value(key, value, kind, sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


def llama_cpp_ids(tokenize: Path, model: Path, text: str) -> list[int]:
    args = [str(tokenize), "-m", str(model), "--stdin", "--ids", "--no-bos", "--no-escape", "--log-disable"]
    result = subprocess.run(args, input=text.encode("utf-8"), capture_output=True, check=True)
    return json.loads(next(line for line in result.stdout.decode("utf-8").splitlines() if line.startswith("[")))


def compact(ids: dict[str, list[list[int]]]) -> dict:
    """name -> index into the distinct encodings (most names share theirs)."""
    encodings: list[str] = []
    index = {}
    for name in sorted(ids):
        key = json.dumps(ids[name])
        if key not in encodings:
            encodings.append(key)
        index[name] = encodings.index(key)
    return {"pre_tokenizers": index, "encodings": [json.loads(e) for e in encodings]}


def main(source: Path) -> None:
    tokenize = source / "build" / "bin" / "llama-tokenize"
    existing = json.loads(DATA.read_text(encoding="utf-8"))
    names = sorted(set(re.findall(r'tokenizer_pre == "([^"]+)"', (source / "src" / "llama-vocab.cpp").read_text())))
    recorded = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in vocabularies().items():
            ids = {}
            for pre in PRE_TOKENIZERS:
                model = vocabulary_only(path, Path(tmp) / f"{pre}.gguf", pre)
                ids[pre] = [llama_cpp_ids(tokenize, model, text) for text in existing["texts"]]
            recorded[label] = compact(ids)
    DATA.write_text(dump({**existing, "llama_cpp_names": names, "vocabularies": recorded}), encoding="utf-8")


def dump(data: dict) -> str:
    """JSON with one line per list of ids, so the file stays readable and diffs stay small."""
    lines = ["{"]
    for key in ("how", "llama_cpp_names", "texts"):
        lines.append(f" {json.dumps(key)}: {json.dumps(data[key], ensure_ascii=False)},")
    lines.append(' "vocabularies": {')
    parts = []
    for label, recorded in data["vocabularies"].items():
        encodings = ",\n".join("    " + json.dumps(e) for e in recorded["encodings"])
        parts.append(f'  {json.dumps(label)}: {{\n   "pre_tokenizers": {json.dumps(recorded["pre_tokenizers"])},\n'
                     f'   "encodings": [\n{encodings}\n   ]\n  }}')
    lines.append(",\n".join(parts))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    main(Path(sys.argv[1]))
