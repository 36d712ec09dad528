"""Getting a model from the app: the acquisition pipeline (engine.library.acquire) in a child
process, `hearth import|convert ... --progress json`. A conversion then has its own MLX threads and
memory, which go away with it, and the window stays responsive.

The child is started as this program: `python -m app.cli` from a checkout, Hearth itself in the
frozen app (where sys.executable is Hearth, which takes the same arguments).
"""

from __future__ import annotations

import json
import os
import signal
import sys

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from engine.library.acquire import Request, Step


def hearth_command(arguments: list[str]) -> tuple[str, list[str]]:
    """Program and arguments that run `hearth ARGUMENTS`, frozen or not."""
    if getattr(sys, "frozen", False):
        return sys.executable, list(arguments)
    return sys.executable, ["-m", "app.cli", *arguments]


class AcquireProcess(QObject):
    """One request in a child process.

    Signals:
        step(object): the child's latest engine.library.acquire.Step.
        finished(bool, str): success and the model's ref (what chats take), or False and the
            child's one-line error.
    """

    step = Signal(object)
    finished = Signal(bool, str)

    def __init__(self, request: Request, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.request = request
        self.process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")
        self.process.setProcessEnvironment(environment)
        self.process.readyReadStandardError.connect(self._on_stderr)
        self.process.finished.connect(self._on_finished)
        self._error = ""
        self._partial = ""

    def start(self) -> None:
        program, arguments = hearth_command([*self.request.arguments(), "--progress", "json"])
        self.process.start(program, arguments)

    def stop(self) -> None:
        """Ctrl-C for the child: a download pauses (its bytes stay), a conversion ends, nothing kept."""
        pid = self.process.processId()
        if pid:
            os.kill(pid, signal.SIGINT)

    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def _on_stderr(self) -> None:
        text = self._partial + bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        *lines, self._partial = text.split("\n")
        for line in (part.strip() for part in lines):
            if line.startswith("hearth: "):
                self._error = line.removeprefix("hearth: ").removeprefix("error: ").strip()
            elif line.startswith("{"):
                try:
                    self.step.emit(Step(**json.loads(line)))
                except (ValueError, TypeError):
                    continue

    def _on_finished(self, code: int, _status) -> None:
        self._on_stderr()
        out = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace").strip().splitlines()
        ref = _result_ref(out[-1]) if code == 0 and out else None
        if ref:
            self.finished.emit(True, ref)
        elif code == 130 or (self.process.exitStatus() == QProcess.ExitStatus.NormalExit and code == -2):
            self.finished.emit(False, "stopped")
        else:
            self.finished.emit(False, self._error or f"Hearth's import process stopped (exit {code}).")


def _result_ref(line: str) -> str | None:
    try:
        return str(json.loads(line)["ref"])
    except (ValueError, KeyError, TypeError):
        return None
