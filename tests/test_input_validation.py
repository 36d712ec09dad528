"""Bad input on the `hearth` command line and stdin: one line naming what is wrong, exit status 2.

Sampling values are checked before any model is loaded; --top-k against the vocabulary size in the
model's config.json, before any weights are read. Bytes that are not UTF-8 and lone surrogates
(which is how Python hands such bytes over, or how JSON can spell them) are refused as not text.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from engine.errors import HearthError, PromptError
from engine.prompts import PromptFormat, validate_messages
from engine.sampling import SamplingSettings

REPO = Path(__file__).resolve().parents[1]
HELLO = json.dumps([{"role": "user", "content": "Hello there"}]).encode()


def _run_main(args: list[str], capsys, monkeypatch, stdin: bytes = HELLO,
              errors: str = "surrogateescape") -> tuple[int, str, str]:
    """app.cli.main with `stdin` as the standard input; (exit status, stdout, stderr).

    errors: how Python decodes the terminal's bytes (surrogateescape under a C or POSIX locale,
    strict under a UTF-8 one, as on a Mac)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", errors=errors))
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def _assert_one_line(status: int, out: str, err: str, *fragments: str) -> None:
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hearth: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert out == ""
    assert "Traceback" not in err and "internal error" not in err


SAMPLING_CASES = {
    "temp inf": (["--temp", "inf"], "--temp", "inf"),
    "temp nan": (["--temp", "nan"], "--temp", "nan"),
    "temp -inf": (["--temp=-inf"], "--temp", "-inf"),  # "--temp -inf" reads as two options
    "temp -0.5": (["--temp", "-0.5"], "--temp", "-0.5"),
    "temp word": (["--temp", "warm"], "--temp", "warm"),
    "top-p 0": (["--top-p", "0"], "--top-p", "0"),
    "top-p 1.01": (["--top-p", "1.01"], "--top-p", "1.01"),
    "top-p nan": (["--top-p", "nan"], "--top-p", "nan"),
    "min-p -0.1": (["--min-p", "-0.1"], "--min-p", "-0.1"),
    "min-p 1.5": (["--min-p", "1.5"], "--min-p", "1.5"),
    "min-p inf": (["--min-p", "inf"], "--min-p", "inf"),
    "top-k -1": (["--top-k", "-1"], "--top-k", "-1"),
    "top-k 2.5": (["--top-k", "2.5"], "--top-k", "2.5"),
    "repetition penalty 0": (["--repetition-penalty", "0"], "--repetition-penalty", "0"),
    "repetition penalty -1": (["--repetition-penalty", "-1"], "--repetition-penalty", "-1"),
    "repetition penalty inf": (["--repetition-penalty", "inf"], "--repetition-penalty", "inf"),
    "max tokens 0": (["--max-tokens", "0"], "--max-tokens", "0"),
    "max tokens -5": (["--max-tokens", "-5"], "--max-tokens", "-5"),
    "seed -1": (["--seed", "-1"], "--seed", "-1"),
    "seed 2**63": (["--seed", str(2**63)], "--seed", str(2**63)),
}


@pytest.mark.parametrize("command", ["generate", "prompt", "chat"])
@pytest.mark.parametrize("case", sorted(SAMPLING_CASES))
def test_sampling_values_out_of_range_are_one_line(tiny, capsys, monkeypatch, command, case):
    options, option, value = SAMPLING_CASES[case]
    messages = ["--messages", "-"] if command != "chat" else ["--no-save"]
    result = _run_main([command, str(tiny["spm_legacy"]), *messages, *options], capsys, monkeypatch)
    _assert_one_line(*result, option, value)


@pytest.mark.parametrize("command", ["generate", "prompt", "chat"])
def test_top_k_above_the_vocabulary_is_refused(tiny, capsys, monkeypatch, command):
    messages = ["--messages", "-"] if command != "chat" else ["--no-save"]
    vocab = json.loads((tiny["spm_legacy"] / "config.json").read_text())["vocab_size"]
    args = [command, str(tiny["spm_legacy"]), *messages, "--top-k", str(vocab + 1)]
    _assert_one_line(*_run_main(args, capsys, monkeypatch), f"--top-k {vocab + 1}", f"{vocab:,}")


def test_top_k_equal_to_the_vocabulary_keeps_every_token(tiny, capsys, monkeypatch):
    """The top `vocabulary` tokens are all of them: the same answer as top-k off (mlx-lm itself
    refuses such a k)."""
    vocab = json.loads((tiny["spm_legacy"] / "config.json").read_text())["vocab_size"]
    answers = []
    for top_k in (vocab, 0):
        args = ["generate", str(tiny["spm_legacy"]), "--messages", "-", "--json", "--temp", "1",
                "--seed", "7", "--max-tokens", "8", "--top-k", str(top_k)]
        status, out, err = _run_main(args, capsys, monkeypatch)
        assert status == 0, err
        answers.append(json.loads(out)["token_ids"])
    assert answers[0] == answers[1] and answers[0]


TOP_K_BEFORE_LOADING = """
import sys
from app.cli import main
status = main(["generate", sys.argv[1], "--messages", sys.argv[2], "--top-k", "1000000"])
print("STATUS", status, "MLX", "mlx.core" in sys.modules, file=sys.stderr)
"""


def test_top_k_is_checked_before_any_weights_load(tiny, tmp_path):
    """Checked from config.json: the process never even imports MLX."""
    messages = tmp_path / "hello.json"
    messages.write_bytes(HELLO)
    env = {**os.environ, "HEARTH_HOME": str(tmp_path / "home")}
    run = subprocess.run([sys.executable, "-c", TOP_K_BEFORE_LOADING, str(tiny["spm_legacy"]),
                          str(messages)], capture_output=True, text=True, cwd=REPO, env=env,
                         timeout=120, check=False)
    lines = run.stderr.splitlines()
    assert lines[0].startswith("hearth: error: --top-k 1000000 is more than the")
    assert lines[1:] == ["STATUS 2 MLX False"]


# Python decodes a terminal's bytes strictly under a UTF-8 locale (a Mac), and hands undecodable
# bytes over as lone surrogates under a C or POSIX locale.
DECODINGS = ["strict", "surrogateescape"]


@pytest.mark.parametrize("errors", DECODINGS)
@pytest.mark.parametrize("command", ["generate", "prompt"])
def test_messages_on_stdin_that_are_not_utf8_are_one_line(tiny, capsys, monkeypatch, command, errors):
    data = b'[{"role": "user", "content": "caf\xe9 \xff"}]'
    args = [command, str(tiny["spm_legacy"]), "--messages", "-"]
    _assert_one_line(*_run_main(args, capsys, monkeypatch, data, errors), "standard input",
                     "not UTF-8", "0xe9", f"offset {data.index(0xE9)}")


@pytest.mark.parametrize("command", ["generate", "prompt"])
def test_a_messages_file_that_is_not_utf8_is_one_line(tiny, capsys, monkeypatch, tmp_path, command):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'[{"role": "user", "content": "caf\xe9"}]')
    args = [command, str(tiny["spm_legacy"]), "--messages", str(path)]
    _assert_one_line(*_run_main(args, capsys, monkeypatch), "latin1.json", "not UTF-8")


@pytest.mark.parametrize("source", ["/dev/zero", "sparse file"])
def test_messages_beyond_64_mib_are_refused_unread(tiny, capsys, monkeypatch, tmp_path, source):
    if source == "sparse file":
        source = str(tmp_path / "huge.json")
        Path(source).touch()
        os.truncate(source, 65 * 2**20)  # sparse: no disk used
    args = ["prompt", str(tiny["spm_legacy"]), "--messages", source]
    _assert_one_line(*_run_main(args, capsys, monkeypatch), source, "more than 64 MiB")


@pytest.mark.parametrize("data", [b"[" * 200_000, b'[{"role": "user", "content": "hi", "x": '
                                  + b"[" * 200_000 + b"]" * 200_000 + b"}]"], ids=["open", "closed"])
def test_json_nested_too_deeply_is_one_line(tiny, capsys, monkeypatch, data):
    args = ["prompt", str(tiny["spm_legacy"]), "--messages", "-"]
    _assert_one_line(*_run_main(args, capsys, monkeypatch, data), "standard input", "too deeply")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\udc80b"])
@pytest.mark.parametrize("command", ["generate", "prompt"])
def test_lone_surrogates_in_json_messages_are_one_line(tiny, capsys, monkeypatch, command, escape):
    data = f'[{{"role": "user", "content": "{escape}"}}]'.encode()
    args = [command, str(tiny["spm_legacy"]), "--messages", "-"]
    _assert_one_line(*_run_main(args, capsys, monkeypatch, data), "message 1", "lone surrogate")


def test_escaped_pairs_and_other_unicode_are_text(tiny, capsys, monkeypatch):
    """A surrogate pair spelled as JSON escapes is one emoji: that is text, and it is kept."""
    data = b'[{"role": "user", "content": "\\ud83d\\ude42 caf\\u00e9 \xe4\xb8\xad"}]'
    args = ["prompt", str(tiny["spm_legacy"]), "--messages", "-", "--json"]
    status, out, err = _run_main(args, capsys, monkeypatch, data)
    assert status == 0, err
    assert "🙂 café 中" in json.loads(out)["text"]


@pytest.mark.parametrize("errors", DECODINGS)
def test_chat_refuses_a_line_that_is_not_utf8_and_goes_on(tiny, capsys, monkeypatch, errors):
    lines = b"caf\xe9 \xff\nHello there\n"
    args = ["chat", str(tiny["spm_legacy"]), "--no-save", "--temp", "0", "--max-tokens", "2"]
    status, out, err = _run_main(args, capsys, monkeypatch, lines, errors)
    assert status == 0, err
    notes = err.splitlines()
    assert notes[0] == "[that line is not UTF-8 text (byte 0xe9); it was not sent]"
    assert "Traceback" not in err and "internal error" not in err and "error:" not in err
    assert out.count("\n") == 1  # one answer: to "Hello there"


def test_piped_chat_line_not_utf8_through_a_real_pipe(tiny, tmp_path):
    """The same through a real process and pipe, as a shell would run it."""
    env = {**os.environ, "HEARTH_HOME": str(tmp_path / "home")}
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "chat", str(tiny["spm_legacy"]), "--no-save", "--temp", "0",
         "--max-tokens", "2"],
        input=b"\xff\xfe\n", capture_output=True, cwd=REPO, env=env, timeout=120, check=False,
    )
    assert run.returncode == 0
    assert run.stderr.decode() == "[that line is not UTF-8 text (byte 0xff); it was not sent]\n"
    assert run.stdout == b""


@pytest.mark.parametrize("option", ["--system", "--stop"])
def test_text_options_that_are_not_utf8_are_one_line(tiny, capsys, monkeypatch, option):
    # Bytes that are not UTF-8 on the command line reach Python's argv as lone surrogates.
    value = b"caf\xe9".decode("utf-8", "surrogateescape")
    args = ["chat", str(tiny["spm_legacy"]), "--no-save", option, value]
    _assert_one_line(*_run_main(args, capsys, monkeypatch), option, "not UTF-8")


def test_engine_refuses_lone_surrogates_whatever_the_front_end():
    """The GUI and any other caller reach the same check in the prompt builder."""
    messages = [{"role": "user", "content": "ok \ud800"}]
    with pytest.raises(PromptError, match="Message 1 is not text"):
        validate_messages(messages, PromptFormat.TEMPLATE)


@pytest.mark.parametrize("field, value", [("temperature", float("inf")), ("temperature", float("nan")),
                                          ("repetition_penalty", float("inf")),
                                          ("repetition_penalty", float("nan"))])
def test_sampling_settings_refuse_values_that_are_not_finite(field, value):
    with pytest.raises(HearthError, match=field.replace("_", " ")):
        SamplingSettings(**{field: value})


# ------------------------------------------------------------------------ tokenizer files


def _with_tokenizer_file(model_copy, variant: str, name: str, write) -> Path:
    folder = model_copy(variant, name=f"bad-{name}")
    write(folder / name)
    return folder


TOKENIZER_FAULTS = {
    # A tokenizer.model of random bytes: transformers would ask for `pip install tiktoken`.
    "garbage tokenizer.model": ("spm_legacy", "tokenizer.model",
                                lambda p: p.write_bytes(bytes(range(256)) * 20),
                                "tokenizer.model in bad-tokenizer.model is", "damaged"),
    "tokenizer.json not JSON": ("bpe_llama3", "tokenizer.json", lambda p: p.write_text("garbage{"),
                                "tokenizer.json in bad-tokenizer.json is damaged"),
    "tokenizer.json not UTF-8": ("bpe_llama3", "tokenizer.json", lambda p: p.write_bytes(b"{\xff}"),
                                 "tokenizer.json in bad-tokenizer.json is damaged"),
    "tokenizer.json a JSON list": ("bpe_llama3", "tokenizer.json", lambda p: p.write_text("[1, 2]"),
                                   "tokenizer.json in bad-tokenizer.json is damaged"),
    # 600 MB that take no disk (a sparse file): refused by its size, never read.
    "tokenizer.json of 600 MB": ("bpe_llama3", "tokenizer.json", lambda p: os.truncate(p, 600 * 2**20),
                                 "tokenizer.json in bad-tokenizer.json is 0.6 GB"),
}


@pytest.mark.parametrize("case", sorted(TOKENIZER_FAULTS))
def test_damaged_tokenizer_files_are_named_in_one_line(model_copy, capsys, monkeypatch, case):
    variant, name, write, *fragments = TOKENIZER_FAULTS[case]
    folder = _with_tokenizer_file(model_copy, variant, name, write)
    status, out, err = _run_main(["prompt", str(folder), "--messages", "-"], capsys, monkeypatch)
    lines = err.splitlines()
    assert status == 1 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("hearth: error: ")
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    assert "tiktoken" not in err and "Traceback" not in err
