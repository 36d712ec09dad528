"""The acquisition pipeline across processes: two Hearth processes getting the same model at once
(the app and the terminal, say) both end with it, one conversion is done, and nothing is left over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_models
from gguf_writer import write_gguf

from engine.library.acquire import Request

HEARTH_SCRIPT = Path(sys.executable).with_name("hearth")
HEARTH = [str(HEARTH_SCRIPT)] if HEARTH_SCRIPT.is_file() else [sys.executable, "-m", "app.cli"]


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("acquire")
    float_model = tiny_models.build_model(root / "float", "spm_legacy", quantize=False, hidden_size=128,
                                          num_layers=4, intermediate_size=256)
    return write_gguf(float_model, root / "tiny-llama-2-chat.F16.gguf", tensor_type="F16",
                      name="llama-2-7b-chat")


def _start(env, *args) -> subprocess.Popen:
    return subprocess.Popen([*HEARTH, *args, "--progress", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _steps(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_two_processes_importing_one_file_both_end_with_one_model(gguf_file, hearth_home, tmp_path):
    env = dict(os.environ, HEARTH_HOME=str(hearth_home))
    first, second = _start(env, "import", str(gguf_file)), _start(env, "import", str(gguf_file))
    results = [p.communicate(timeout=300) for p in (first, second)]
    for process, (out, err) in zip((first, second), results, strict=True):
        assert process.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["ref"] == "tiny-llama-2-chat.F16"
        assert "Traceback" not in err
    stages = [[s["stage"] for s in _steps(err)] for _out, err in results]
    converted = [s for s in stages if "converting" in s]
    assert len(converted) == 1  # one process converted; the other waited, then found the model
    other = next(s for s in stages if "converting" not in s)
    assert other[0] in ("waiting", "registering") and other[-1] == "registering"  # waited, or came after
    models = hearth_home / "data" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["tiny-llama-2-chat.F16"]  # no staging debris


def test_a_process_waits_while_another_holds_the_request_and_says_so(gguf_file, hearth_home):
    """The lock a second process would find: held here, deterministically, while a real one starts."""
    from filelock import FileLock

    request = Request(str(gguf_file))
    locks = hearth_home / "data" / "locks"
    locks.mkdir(parents=True)
    lock = FileLock(str(locks / f"acquire-{request.key}.lock"))
    lock.acquire()
    env = dict(os.environ, HEARTH_HOME=str(hearth_home))
    process = _start(env, "import", str(gguf_file))
    try:
        first = json.loads(process.stderr.readline())
    finally:
        lock.release()
    assert first["stage"] == "waiting"
    assert "Another Hearth window or process is getting tiny-llama-2-chat.F16.gguf" in first["message"]
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "converting" in [s["stage"] for s in _steps(err)]  # once the lock was free, it did the work


def test_the_same_request_again_is_answered_at_once(gguf_file, hearth_home):
    env = dict(os.environ, HEARTH_HOME=str(hearth_home))
    out, err = _start(env, "import", str(gguf_file)).communicate(timeout=300)
    again = _start(env, "import", str(gguf_file))
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert [s["stage"] for s in _steps(err)] == ["registering"]
    assert "already here" in _steps(err)[0]["message"]


def test_ctrl_c_during_a_conversion_keeps_nothing(gguf_file, hearth_home):
    env = dict(os.environ, HEARTH_HOME=str(hearth_home))
    process = _start(env, "import", str(gguf_file))
    for line in process.stderr:  # wait until the conversion has begun
        if line.startswith("{") and json.loads(line)["stage"] == "converting":
            break
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130
    models = hearth_home / "data" / "models"
    assert not models.exists() or list(models.iterdir()) == []
    # The lock is free again: the same import now runs to the end.
    done = _start(env, "import", str(gguf_file))
    done.communicate(timeout=300)
    assert done.returncode == 0


def test_request_arguments_run_the_same_request():
    request = Request("org/repo", file="m.Q4_0.gguf", name="mine", keep_download=True)
    assert request.arguments() == ["import", "org/repo", "--file", "m.Q4_0.gguf", "--name", "mine",
                                   "--keep-download"]
    quantize = Request("org/fp16", quantize=True, bits=8, group_size=32)
    assert quantize.arguments() == ["convert", "org/fp16", "--bits", "8", "--group-size", "32"]
    assert Request("org/repo", file="a.gguf").key != Request("org/repo", file="b.gguf").key
    assert Request("org/repo").label == "org/repo" and Request("/x/y/m.gguf").label == "m.gguf"

