"""The window as a screen reader reads and works it on Linux: a separate process reads every
control's role and name over AT-SPI, presses buttons by their accessible actions and types into the
message field (tests/atspi_reader.py). Needs Debian's at-spi2-core, python3-pyatspi, dbus and xvfb."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"

# The app, under Xvfb with Qt's AT-SPI bridge on, with the tiny model and short greedy answers.
APP = textwrap.dedent("""
    import sys
    from pathlib import Path
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from engine.library import library
    from engine.sampling import SamplingSettings
    app = QApplication(sys.argv)
    app.setApplicationName("Hearth")
    library.import_folder(Path(sys.argv[1]))
    from app.gui.app import build_window
    window = build_window(app)
    window.prefs.set_sampling(SamplingSettings(temperature=0.0, max_tokens=8))
    window.show()
    QTimer.singleShot(150_000, app.quit)
    app.exec()
""")

# In a private D-Bus session: start the app, let the reader at it, stop the app.
SESSION = textwrap.dedent("""
    import os, subprocess, sys
    app_code, reader_python, reader, model, log = sys.argv[1:6]
    env = dict(os.environ, QT_LINUX_ACCESSIBILITY_ALWAYS_ON="1", QT_QPA_PLATFORM="xcb")
    with open(log, "w") as log_file:
        app = subprocess.Popen(["xvfb-run", "-a", sys.executable, "-c", app_code, model], env=env,
                               stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out = subprocess.run([reader_python, reader], capture_output=True, text=True, timeout=240)
        print(out.stdout)
        print(out.stderr[-3000:], file=sys.stderr)
    finally:
        os.killpg(app.pid, 15)
        app.wait(30)
""")


def _missing_tools() -> list[str]:
    missing = [tool for tool in ("xvfb-run", "dbus-run-session") if shutil.which(tool) is None]
    has_pyatspi = Path(SYSTEM_PYTHON).exists() and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import pyatspi"], capture_output=True).returncode == 0
    return missing + ([] if has_pyatspi else ["python3-pyatspi"])


@pytest.fixture(name="screen_reader_view", scope="module")
def screen_reader_view_fixture(tmp_path_factory, tiny):
    missing = _missing_tools()
    if missing:
        pytest.skip(f"no AT-SPI here: {', '.join(missing)} missing "
                    "(apt-get install at-spi2-core python3-pyatspi dbus xvfb)")
    home = tmp_path_factory.mktemp("atspi-home")
    log = home / "app.log"
    env = dict(os.environ, HEARTH_HOME=str(home / "hearth"), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT))
    out = subprocess.run(["dbus-run-session", "--", sys.executable, "-c", SESSION, APP, SYSTEM_PYTHON,
                          str(ROOT / "tests" / "atspi_reader.py"), str(tiny["spm_legacy"]), str(log)],
                         capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, out.stdout[-2000:] + out.stderr[-3000:]
    view = json.loads(lines[-1])
    if "bus_error" in view:
        pytest.skip(f"the AT-SPI bus could not start: {view['bus_error']}")
    assert "app_missing" not in view, log.read_text()[-3000:]
    return view


def _named(view, role: str) -> set[str]:
    return {c["name"] for c in view["controls"] if c["role"] == role}


def test_a_screen_reader_finds_every_control_by_name_and_role(screen_reader_view):
    view = screen_reader_view
    assert {"New chat", "Send message", "Unload model", "Sampling settings for this chat", "Settings",
            "Edit the system prompt, or start from a preset"} <= _named(view, "push button")
    assert "Sidebar" in _named(view, "toggle button") | _named(view, "check box")  # a checkable button
    assert {"Message", "System prompt", "Search conversations"} <= _named(view, "text")
    # A combo box on Linux is named by its current item; its label relation says what it is.
    [picker] = [c for c in view["controls"] if c["role"] == "combo box" and c["showing"]]
    assert picker["labels"] == ["Model"] and picker["name"].endswith("· fits · loaded")
    assert {"File", "Edit", "View", "Chat"} <= _named(view, "menu item") | _named(view, "menu")
    assert "Loaded · 4,096-token context" in _named(view, "label")  # the model's state, read as shown
    unnamed = [c for c in view["controls"] if c["showing"] and not c["name"]
               and c["role"] in ("push button", "toggle button", "text", "combo box", "list", "check box",
                                 "spin button", "slider", "menu item")]
    assert unnamed == []


def test_a_screen_reader_works_the_window(screen_reader_view):
    assert "error" not in screen_reader_view, (screen_reader_view["error"], screen_reader_view["controls"])
    assert screen_reader_view["sidebar_hidden"] and screen_reader_view["sidebar_back"]
    assert screen_reader_view["announced"]  # typed, sent and answered, all through AT-SPI


def test_a_screen_reader_reads_the_messages(screen_reader_view):
    items = [c["name"] for c in screen_reader_view["transcript"] if c["role"] == "list item"]
    assert items[0] == "You said: Hello from a screen reader" and items[1].startswith("Assistant said: ")
    buttons = {c["name"] for c in screen_reader_view["transcript"] if c["role"] == "push button"}
    assert {"Copy message", "Edit message", "Regenerate answer"} <= buttons
