"""`hearth --self-test`: the app headless, one answer, a JSON report; failures make it fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEARTH_SCRIPT = Path(sys.executable).with_name("hearth")
HEARTH = [str(HEARTH_SCRIPT)] if HEARTH_SCRIPT.is_file() else [sys.executable, "-m", "app.cli"]


def _report(capsys) -> dict:
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    return json.loads(lines[0])


def test_self_test_answers_and_reports(qapp, capsys, llama2_chat):
    from app.gui.selftest import run

    assert run(str(llama2_chat)) == 0
    report = _report(capsys)
    assert report["ok"] is True and report["finish_reason"] == "length" and report["generation_tokens"] == 8
    assert report["saved_in_history"] is True and report["error"] is None and report["load_s"] > 0


def test_an_exception_on_the_engine_thread_fails_the_self_test(qapp, capsys, llama2_chat, monkeypatch):
    import engine.engine
    from app.gui.selftest import run

    def broken_generate(*args, **kwargs):
        raise RuntimeError("injected failure on the engine thread")

    monkeypatch.setattr(engine.engine, "generate", broken_generate)
    assert run(str(llama2_chat)) == 1
    report = _report(capsys)
    assert report["ok"] is False and "injected failure" in report["error"]


def test_a_model_that_does_not_load_fails_the_self_test(qapp, capsys, model_copy):
    from app.gui.selftest import run

    broken = model_copy("spm_legacy")
    (broken / "tokenizer.model").unlink()
    assert run(str(broken)) == 1
    assert "tokenizer" in _report(capsys)["error"]


def test_the_command_prints_one_json_line(tmp_path, llama2_chat, hearth_home):
    env = dict(os.environ, HEARTH_HOME=str(hearth_home), QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([*HEARTH, "--self-test", "--model", str(llama2_chat)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["ok"] is True
    missing = subprocess.run([*HEARTH, "--self-test"], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 1 and "no model" in json.loads(missing.stdout.strip())["error"]
