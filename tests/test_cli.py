"""The `hearth` command, run as a real subprocess against tiny models.

Every run gets its own HEARTH_HOME, HF_HOME and HOME in temporary folders. Runs that do not depend
on each other are started together (see `_run_many`) to keep this file fast.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
import tiny_models

from engine.generation import GenerationRequest
from engine.sampling import SamplingSettings

HEARTH_SCRIPT = Path(sys.executable).with_name("hearth")
HEARTH = [str(HEARTH_SCRIPT)] if HEARTH_SCRIPT.is_file() else [sys.executable, "-m", "app.cli"]
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120

RESULT_KEYS = {
    "text": str,
    "token_ids": list,
    "finish_reason": str,
    "prompt_tokens": int,
    "generation_tokens": int,
    "ttft_s": float,
    "prompt_tps": float,
    "generation_tps": float,
    "peak_memory_gb": float,
    "dropped_messages": list,
}

HELLO = [{"role": "user", "content": "Hello there"}]  # greedy answers run past 1,000 tokens
DIALOG = [
    {"role": "system", "content": "You are a terse assistant.\nAnswer briefly."},
    {"role": "user", "content": "What is a llama?"},
    {"role": "assistant", "content": " A camelid from South America.  "},
    {"role": "user", "content": "And café culture in 中文 🙂?"},
]


# ------------------------------------------------------------------------------------ helpers


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        lines = self.stdout.splitlines()
        assert len(lines) == 1, f"expected one JSON line, got: {self.stdout!r}"
        return json.loads(lines[0])

    def assert_ok(self) -> Run:
        assert self.returncode == 0, f"{self.args}: exit {self.returncode}\n{self.stderr}"
        assert "Traceback" not in self.stderr
        return self


def _env(root: Path) -> dict[str, str]:
    """The inherited environment with every per-user location under `root`."""
    # No screen: `hearth` alone then prints its help instead of opening the window.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("XDG_") and k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HEARTH_HOME=str(root / "hearth-home"),
        HF_HOME=str(root / "hf-home"),
        HF_HUB_OFFLINE="1",
        HOME=str(home),
    )
    return env


def _start(args, env, stdin_text: str | None) -> subprocess.Popen:
    return subprocess.Popen(
        [*HEARTH, *map(str, args)],
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )


def _finish(proc: subprocess.Popen, args, stdin_text: str | None) -> Run:
    data = stdin_text.encode("utf-8") if stdin_text is not None else None
    try:
        out, err = proc.communicate(data, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    # Bytes decoded here, not by text mode: generated text may hold "\r", which text mode rewrites.
    return Run([str(a) for a in args], proc.returncode, out.decode("utf-8"), err.decode("utf-8"))


def _run(*args, env, stdin_text: str | None = None) -> Run:
    return _finish(_start(args, env, stdin_text), args, stdin_text)


def _run_many(jobs: dict[str, tuple], env, parallel: int = 4) -> dict[str, Run]:
    """name -> (args, stdin_text): at most `parallel` processes at once."""
    results: dict[str, Run] = {}
    pending = list(jobs.items())
    running: list[tuple[str, tuple, str | None, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < parallel:
            name, (args, stdin_text) = pending.pop(0)
            running.append((name, args, stdin_text, _start(args, env, stdin_text)))
        name, args, stdin_text, proc = running.pop(0)
        results[name] = _finish(proc, args, stdin_text)
    return results


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- shared runs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def env(workdir) -> dict[str, str]:
    return _env(workdir / "env")


@pytest.fixture(scope="module")
def files(workdir) -> dict[str, Path]:
    return {
        "hello": _write_json(workdir / "hello.json", HELLO),
        "dialog": _write_json(workdir / "dialog.json", DIALOG),
    }


@pytest.fixture(scope="module")
def gen(llama2_chat, files, env) -> dict[str, Run]:
    """The generate runs that do not depend on each other, started together."""
    model, hello = llama2_chat, files["hello"]
    greedy = ["generate", model, "--messages", hello, "--temp", "0"]
    sampled = ["generate", model, "--messages", hello, "--json", "--temp", "1", "--top-p", "1",
               "--max-tokens", "30"]
    jobs = {
        "greedy": ([*greedy, "--json", "--max-tokens", "40"], None),
        "three": ([*greedy, "--json", "--max-tokens", "3"], None),
        "stream_stdin": (["generate", model, "--messages", "-", "--temp", "0", "--max-tokens", "40"],
                         json.dumps(HELLO)),
        "seed7": ([*sampled, "--seed", "7"], None),
        "seed7_again": ([*sampled, "--seed", "7"], None),
        "seed8": ([*sampled, "--seed", "8"], None),
    }
    return _run_many(jobs, env)


# ---------------------------------------------------------------------------------- generate


def test_generate_json_is_one_object_with_the_contract_keys(gen):
    result = gen["greedy"].assert_ok().json()
    for key, kind in RESULT_KEYS.items():
        assert key in result, key
        if kind is float:  # JSON writes 0.0 as a float, but accept an integral number too
            assert isinstance(result[key], (int, float)) and not isinstance(result[key], bool), key
        else:
            assert isinstance(result[key], kind), (key, result[key])
    assert result["token_ids"] and all(isinstance(t, int) for t in result["token_ids"])
    assert result["finish_reason"] in ("stop", "length")
    assert result["generation_tokens"] == len(result["token_ids"])
    assert result["generation_tokens"] <= 40
    assert result["prompt_tokens"] > 0 and result["ttft_s"] > 0 and result["generation_tps"] > 0
    assert result["peak_memory_gb"] > 0
    assert result["dropped_messages"] == []
    assert result["text"]
    assert gen["greedy"].stderr == ""


def test_generate_prompt_tokens_match_the_prompt_command(gen, prompts):
    shown = prompts["hello"].assert_ok().json()
    assert gen["greedy"].json()["prompt_tokens"] == len(shown["token_ids"])


def test_max_tokens_ends_with_length_and_greedy_is_a_prefix(gen):
    full, three = gen["greedy"].json(), gen["three"].assert_ok().json()
    assert three["finish_reason"] == "length"
    assert three["generation_tokens"] == 3 == len(three["token_ids"])
    assert three["token_ids"] == full["token_ids"][:3]


def test_same_seed_same_tokens_other_seed_other_tokens(gen):
    a, b, c = (gen[name].assert_ok().json() for name in ("seed7", "seed7_again", "seed8"))
    assert a["token_ids"] == b["token_ids"] and a["text"] == b["text"]
    assert a["token_ids"] != c["token_ids"]


def test_streamed_text_equals_the_json_text_and_messages_come_from_stdin(gen):
    streamed = gen["stream_stdin"].assert_ok()
    assert streamed.stdout == gen["greedy"].json()["text"] + "\n"


def test_stop_string_ends_the_answer_before_it(gen, llama2_chat, files, env):
    full = gen["greedy"].json()
    text = full["text"]
    # A stop string a few characters in, made of whole characters, occurring there first.
    start = next(k for k in range(3, len(text) - 2)
                 if "\ufffd" not in text[k:k + 2] and text.find(text[k:k + 2]) == k)
    stop = text[start:start + 2]
    run = _run("generate", llama2_chat, "--messages", files["hello"], "--json", "--temp", "0",
               "--max-tokens", "40", "--stop", "no such stop", "--stop", stop, env=env).assert_ok()
    stopped = run.json()
    assert stopped["finish_reason"] == "stop"
    assert stopped["text"] == text[:start]
    assert stopped["token_ids"] == full["token_ids"][: len(stopped["token_ids"])]
    assert len(stopped["token_ids"]) < len(full["token_ids"])


# ------------------------------------------------------------------------------------ prompt


def _expected_llama2_text(dialog) -> str:
    """What the prompt inspector shows for Meta's format, spelled out from the dialog itself."""
    system, turns = dialog[0]["content"], dialog[1:]
    turns = [dict(turns[0], content=f"<<SYS>>\n{system}\n<</SYS>>\n\n{turns[0]['content']}"), *turns[1:]]
    text = ""
    for user, answer in zip(turns[::2], turns[1::2], strict=False):
        text += f"<s> [INST] {user['content'].strip()} [/INST] {answer['content'].strip()} </s>"
    return text + f"<s> [INST] {turns[-1]['content'].strip()} [/INST]"


@pytest.fixture(scope="module")
def prompts(llama2_chat, tiny, files, env) -> dict[str, Run]:
    dialog = files["dialog"]
    jobs = {
        "json": (["prompt", llama2_chat, "--messages", dialog, "--json"], None),
        "plain": (["prompt", llama2_chat, "--messages", dialog], None),
        "stdin": (["prompt", llama2_chat, "--messages", "-", "--json"], json.dumps(DIALOG)),
        "sampling_options": (["prompt", llama2_chat, "--messages", dialog, "--json", "--temp", "0",
                              "--top-p", "0.5", "--top-k", "3", "--min-p", "0.1", "--seed", "1",
                              "--repetition-penalty", "1.2", "--stop", "x", "--max-tokens", "64"],
                             None),
        "llama3": (["prompt", tiny["bpe_llama3"], "--messages", dialog, "--json"], None),
        "hello": (["prompt", llama2_chat, "--messages", files["hello"], "--json"], None),
    }
    return _run_many(jobs, env)


def test_prompt_json_ids_are_metas_reference_llama2_encoding(prompts, llama2_chat):
    shown = prompts["json"].assert_ok().json()
    sp = tiny_models.load_sentencepiece(llama2_chat)
    assert shown["token_ids"] == tiny_models.reference_llama2_ids(sp, DIALOG)
    assert shown["text"].startswith("<s>")
    assert shown["text"] == _expected_llama2_text(DIALOG)
    assert prompts["stdin"].assert_ok().json() == shown
    assert prompts["sampling_options"].assert_ok().json()["token_ids"] == shown["token_ids"]


def test_plain_prompt_prints_the_text_and_the_ids(prompts):
    shown = prompts["json"].json()
    out = prompts["plain"].assert_ok().stdout
    assert out.startswith(shown["text"] + "\n")
    assert str(shown["token_ids"]) in out
    assert f"{len(shown['token_ids'])} tokens" in out


def test_prompt_uses_the_models_own_template(prompts, tiny):
    from engine.model_folder import resolve_model
    from engine.tokenizer import load_tokenizer

    shown = prompts["llama3"].assert_ok().json()
    hf = load_tokenizer(resolve_model(tiny["bpe_llama3"])).hf
    text = hf.apply_chat_template(DIALOG, add_generation_prompt=True, tokenize=False)
    assert shown["text"] == text and text.startswith("<|begin_of_text|>")
    assert shown["token_ids"] == hf.encode(text, add_special_tokens=False)


# ------------------------------------------------------------------------------------ errors


@pytest.fixture(scope="module")
def error_runs(llama2_chat, files, workdir, env) -> dict[str, tuple[Run, str]]:
    """name -> (run, a fragment its one error line must hold, case-insensitively)."""
    model, good = llama2_chat, files["hello"]
    bad_json = workdir / "bad.json"
    bad_json.write_text('[{"role": "user",', encoding="utf-8")
    not_list = _write_json(workdir / "object.json", {"role": "user", "content": "hi"})
    not_objects = _write_json(workdir / "strings.json", ["hi"])
    two_users = _write_json(workdir / "two-users.json", [{"role": "user", "content": "a"},
                                                         {"role": "user", "content": "b"}])
    no_weights = workdir / "no-weights-model"
    if not no_weights.exists():
        shutil.copytree(model, no_weights, ignore=shutil.ignore_patterns("*.safetensors*"))
    no_type = workdir / "no-type-model"
    no_type.mkdir(exist_ok=True)
    _write_json(no_type / "config.json", {"hidden_size": 64})
    missing_model = workdir / "no-such-model"
    missing_file = workdir / "no-such-messages.json"
    cases = {
        "missing model (generate)": (["generate", missing_model, "--messages", good], None, "no-such-model"),
        "missing model (prompt)": (["prompt", missing_model, "--messages", good], None, "no-such-model"),
        "missing model (chat)": (["chat", missing_model], "hi\n", "no-such-model"),
        "model is a file": (["generate", good, "--messages", good], None, "hello.json"),
        "model without weights": (["generate", no_weights, "--messages", good], None, "no-weights-model"),
        "model without model_type": (["prompt", no_type, "--messages", good], None, "no-type-model"),
        "bad JSON": (["generate", model, "--messages", bad_json], None, "not valid json"),
        "JSON not a list": (["generate", model, "--messages", not_list], None, "json list"),
        "list of strings": (["prompt", model, "--messages", not_objects], None, "json list"),
        "bad JSON on stdin": (["prompt", model, "--messages", "-"], "not json", "standard input is not valid json"),
        "roles not alternating (generate)": (["generate", model, "--messages", two_users], None, "message 2"),
        "roles not alternating (prompt)": (["prompt", model, "--messages", two_users], None, "message 2"),
        "missing messages file": (["generate", model, "--messages", missing_file], None, "no-such-messages.json"),
        "temp -1": (["generate", model, "--messages", good, "--temp", "-1"], None, "temperature"),
        "top-p 2": (["generate", model, "--messages", good, "--top-p", "2"], None, "top-p"),
        "top-k -1": (["generate", model, "--messages", good, "--top-k", "-1"], None, "top-k"),
        "min-p 3": (["prompt", model, "--messages", good, "--min-p", "3"], None, "min-p"),
        "max-tokens 0": (["generate", model, "--messages", good, "--max-tokens", "0"], None, "max tokens"),
        "repetition penalty 0": (["generate", model, "--messages", good, "--repetition-penalty", "0"],
                                 None, "repetition penalty"),
        "empty stop": (["generate", model, "--messages", good, "--stop", ""], None, "stop"),
        "chat temp -1": (["chat", model, "--temp", "-1"], "hi\n", "temperature"),
        "temp not a number": (["generate", model, "--messages", good, "--temp", "abc"], None, "--temp"),
        "context 0": (["generate", model, "--messages", good, "--context", "0"], None, "--context"),
        "no --messages": (["generate", model], None, "--messages"),
        "unknown command": (["fly", model], None, "fly"),
    }
    jobs = {name: (args, stdin) for name, (args, stdin, _) in cases.items()}
    runs = _run_many(jobs, env)
    return {name: (runs[name], cases[name][2]) for name in cases}


ERROR_CASES = [
    "missing model (generate)", "missing model (prompt)", "missing model (chat)", "model is a file",
    "model without weights", "model without model_type", "bad JSON", "JSON not a list",
    "list of strings", "bad JSON on stdin", "roles not alternating (generate)",
    "roles not alternating (prompt)", "missing messages file", "temp -1", "top-p 2", "top-k -1",
    "min-p 3", "max-tokens 0", "repetition penalty 0", "empty stop", "chat temp -1",
    "temp not a number", "context 0", "no --messages", "unknown command",
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_user_mistakes_are_one_line_on_stderr(error_runs, case):
    run, fragment = error_runs[case]
    assert run.returncode in (1, 2), f"exit {run.returncode}: {run.stderr}"  # 134 would be an abort
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("hearth: error: ")
    assert fragment.lower() in lines[0].lower()
    assert "Traceback" not in run.stderr + run.stdout
    assert run.stdout == ""


def test_error_cases_are_all_checked(error_runs):
    assert sorted(error_runs) == sorted(ERROR_CASES)


# -------------------------------------------------------------------------------------- chat


@pytest.fixture(scope="module")
def chats(llama2_chat, env) -> dict[str, Run]:
    lines = "Hello there\n\nTell me more\n"  # the blank line is skipped
    options = ["--temp", "0", "--max-tokens", "6", "--system", "Be brief."]
    jobs = {
        "chat": (["chat", llama2_chat, *options], lines),
        "run": (["run", llama2_chat, *options], lines),
        "chat_bye": (["chat", llama2_chat, *options], "Hello there\n/bye\nTell me more\n"),
        "run_no_model": (["run"], None),
        "no_command": ([], None),
        "version": (["--version"], None),
    }
    return _run_many(jobs, env)


def _expected_chat(engine, system: str, lines: list[str], settings: SamplingSettings, conversation: str):
    """What the chat loop asks the engine, turn by turn: stdout and stderr notes it should print."""
    messages = [{"role": "system", "content": system}]
    out, notes = "", []
    for line in lines:
        messages.append({"role": "user", "content": line})
        done = engine.generate(GenerationRequest(list(messages), settings, conversation)).wait()
        assert done.finish_reason in ("stop", "length") and done.text, done
        messages.append({"role": "assistant", "content": done.text})
        out += done.text + "\n"
        if done.finish_reason == "length":
            notes.append("[answer cut: max tokens reached]")
    return out, notes


def test_chat_with_piped_stdin_answers_each_line_in_one_conversation(chats, engine_llama2):
    run = chats["chat"].assert_ok()
    settings = SamplingSettings(temperature=0.0, max_tokens=6)
    expected_out, notes = _expected_chat(engine_llama2, "Be brief.", ["Hello there", "Tell me more"],
                                         settings, "test-cli-chat")
    assert run.stdout == expected_out
    assert run.stderr.splitlines() == notes


def test_bye_ends_the_chat(chats, engine_llama2):
    settings = SamplingSettings(temperature=0.0, max_tokens=6)
    expected_out, notes = _expected_chat(engine_llama2, "Be brief.", ["Hello there"], settings,
                                         "test-cli-bye")
    run = chats["chat_bye"].assert_ok()
    assert run.stdout == expected_out
    assert run.stderr.splitlines() == notes


def test_run_with_a_model_is_the_chat(chats):
    assert chats["run"].assert_ok().stdout == chats["chat"].stdout
    assert chats["run"].stderr == chats["chat"].stderr


def test_run_without_a_model_says_how_to_get_one(chats):
    for name in ("run_no_model", "no_command"):
        run = chats[name].assert_ok()
        assert "Hearth needs a local model" in run.stdout
        assert "hearth download REPO" in run.stdout and "make run MODEL=path/to/model" in run.stdout
    assert "usage: hearth" in chats["no_command"].stdout


def test_version(chats):
    assert chats["version"].assert_ok().stdout == f"hearth {version('hearth')}\n"


class _Reader(threading.Thread):
    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream, self.data, self.lock = stream, b"", threading.Lock()

    def run(self) -> None:
        try:
            while chunk := os.read(self.stream.fileno(), 4096):
                with self.lock:
                    self.data += chunk
        except OSError:  # a pseudo-terminal whose other side has closed
            pass

    def text(self) -> str:
        with self.lock:
            return self.data.decode("utf-8", "replace")


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None and not condition():
            raise AssertionError(f"hearth exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_ctrl_c_stops_the_answer_not_the_program(llama2_chat, env):
    # Greedy answers to "Hello there" run for over 1,000 tokens: Ctrl-C lands mid-answer.
    proc = subprocess.Popen(
        [*HEARTH, "chat", str(llama2_chat), "--temp", "0", "--max-tokens", "100000", "--context", "2048"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
        # As in a terminal, whatever the test runner does with SIGINT: Python's default handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    out, err = _Reader(proc.stdout), _Reader(proc.stderr)
    out.start(), err.start()
    try:
        proc.stdin.write(b"Hello there\n")
        proc.stdin.flush()
        _wait_for(lambda: out.data, proc, "the first answer to start")
        proc.send_signal(signal.SIGINT)
        _wait_for(lambda: "[stopped]" in err.text(), proc, "the answer to stop")
        time.sleep(0.2)
        assert proc.poll() is None, "Ctrl-C ended the program"
        first_answer = out.text()  # the chat ends a stopped answer with a newline before "[stopped]"
        assert first_answer.endswith("\n") and len(first_answer) > 1

        proc.stdin.write(b"Tell me more\n")
        proc.stdin.flush()
        _wait_for(lambda: len(out.text()) > len(first_answer), proc, "the second answer")
        proc.stdin.close()  # Ctrl-D: the chat ends after the second answer
        assert proc.wait(timeout=TIMEOUT_S) == 0, err.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out.join(5), err.join(5)
    stderr, stdout = err.text(), out.text()
    assert "Traceback" not in stderr
    assert stderr.count("[stopped]") == 1  # the second answer ran to its end
    assert stdout.startswith(first_answer) and stdout.endswith("\n")
    assert len(stdout) > len(first_answer) + 1
    # The first answer was cut short: an uninterrupted one fills most of the 2,048-token window.
    assert len(first_answer) < 1000


def _controlling_terminal() -> None:
    """In the child, after setsid: make stdin (the pty) the controlling terminal, so ^C sends SIGINT."""
    import fcntl
    import termios

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_interactive_chat_in_a_terminal_ctrl_c_stops_the_answer(llama2_chat, env):
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*HEARTH, "chat", str(llama2_chat), "--temp", "0", "--max-tokens", "100000", "--context", "2048"],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO, close_fds=True,
        start_new_session=True, preexec_fn=_controlling_terminal,
    )
    os.close(slave)
    screen = _Reader(os.fdopen(master, "rb", buffering=0))
    screen.start()

    def wait(text: str, count: int = 1, timeout: float = 60.0) -> None:
        _wait_for(lambda: screen.text().count(text) >= count, proc, repr(text), timeout)

    try:
        wait(">>> ")  # loaded; the prompt is shown
        assert "is ready (2,048-token context)" in screen.text()
        os.write(master, b"Hello there\r")
        wait("\u4e2d\u6587")  # the answer is streaming (greedy: it soon repeats this word)
        os.write(master, b"\x03")  # Ctrl-C, typed
        wait("[stopped]")
        wait(">>> ", 2)  # back at the prompt, same program
        os.write(master, b"\x03")  # Ctrl-C at the prompt does not quit either
        wait("use /bye or Ctrl-D to quit")
        os.write(master, b"/bye\r")
        assert proc.wait(timeout=TIMEOUT_S) == 0, screen.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    screen.join(5)
    assert "Traceback" not in screen.text()


# ------------------------------------------------------------------- in-process, no Qt, logs


IN_PROCESS = """
import sys
from app.cli import main
assert main(["prompt", sys.argv[1], "--messages", sys.argv[2], "--json"]) == 0
assert main(["generate", sys.argv[1], "--messages", sys.argv[2], "--temp", "0", "--max-tokens", "4"]) == 0
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "PyQt5", "PyQt6"))
print("QT", qt, file=sys.stderr)
print("MLX", "mlx.core" in sys.modules, file=sys.stderr)
"""


def test_terminal_commands_import_no_qt_and_keep_everything_under_hearth_home(llama2_chat, tmp_path):
    env = _env(tmp_path)
    messages = _write_json(tmp_path / "m.json", HELLO)
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS, str(llama2_chat), str(messages)],
                          capture_output=True, env=env, cwd=REPO, timeout=TIMEOUT_S)
    stderr = proc.stderr.decode("utf-8")
    assert proc.returncode == 0, stderr  # also: no abort at exit once MLX has run
    assert "QT []" in stderr
    assert "MLX True" in stderr  # the generate command did run the model in this process
    home = Path(env["HEARTH_HOME"])
    assert (home / "logs" / "hearth.log").is_file()
    # Nothing went to the platform's per-user folders (all under HOME here).
    leaked = [p for p in Path(env["HOME"]).rglob("*") if "hearth" in p.name.lower()]
    assert leaked == []


INTERNAL_ERROR = """
import sys
import app.terminal
from app.cli import main

def broken(*args, **kwargs):
    raise RuntimeError("boom from a bug")

app.terminal.show_prompt = broken
sys.exit(main(["prompt", sys.argv[1], "--messages", sys.argv[2]]))
"""


def test_unexpected_errors_are_one_line_with_the_traceback_in_the_log(llama2_chat, tmp_path):
    env = _env(tmp_path)
    messages = _write_json(tmp_path / "m.json", HELLO)
    proc = subprocess.run([sys.executable, "-c", INTERNAL_ERROR, str(llama2_chat), str(messages)],
                          capture_output=True, env=env, cwd=REPO, timeout=TIMEOUT_S)
    lines = proc.stderr.decode("utf-8").splitlines()
    assert proc.returncode == 1
    log_file = Path(env["HEARTH_HOME"]) / "logs" / "hearth.log"
    assert lines == [f"hearth: internal error: boom from a bug (details in {log_file})"]
    log = log_file.read_text(encoding="utf-8")
    assert "Traceback" in log and "RuntimeError: boom from a bug" in log
