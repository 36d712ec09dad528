"""Getting a catalog model that needs converting (GGUF, old MLX layout, fp16): `hearth import` or
`hearth convert` in a child process. The conversion then has its own MLX thread and memory, which
go away with it, and the window stays responsive; progress comes from its progress line."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QProcess, Signal

from engine.library.catalog import CatalogEntry


def command_for(entry: CatalogEntry) -> list[str]:
    if entry.source == "gguf":
        return ["import", entry.repo_id, "--file", entry.file or ""]
    if entry.source == "old-mlx":
        return ["import", entry.repo_id]
    if entry.source == "hf":
        return ["convert", entry.repo_id]
    return ["download", entry.repo_id]


class ImportProcess(QObject):
    """Signals:
        progress(str): the child's latest progress line.
        finished(bool, str): success, and the model's name (or the error line).
    """

    progress = Signal(str)
    finished = Signal(bool, str)

    def __init__(self, arguments: list[str], parent: QObject | None = None) -> None:
        """arguments: the `hearth` command line, e.g. command_for(entry)."""
        super().__init__(parent)
        self.arguments = arguments
        self.process = QProcess(self)
        self.process.readyReadStandardError.connect(self._on_stderr)
        self.process.finished.connect(self._on_finished)
        self._last_error = ""

    def start(self) -> None:
        self.process.start(sys.executable, ["-m", "app.cli", *self.arguments])

    def cancel(self) -> None:
        """Ctrl-C for the child: a download pauses, a conversion is cancelled with nothing kept."""
        import signal

        pid = self.process.processId()
        if pid:
            import os

            os.kill(pid, signal.SIGINT)

    def _on_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        lines = [part.strip() for part in text.replace("\r", "\n").split("\n") if part.strip()]
        for line in lines:
            if line.startswith("hearth: error:"):
                self._last_error = line.removeprefix("hearth: error:").strip()
            else:
                self.progress.emit(line)

    def _on_finished(self, code: int, _status) -> None:
        out = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace").strip().splitlines()
        if code == 0 and out:
            self.finished.emit(True, out[-1])
        else:
            self.finished.emit(False, self._last_error or f"stopped (exit {code})")
