"""Adding a model from the main window: File > Add Model… and dropping a folder or a .gguf file onto
the window. Both hand the path to the acquisition pipeline (through the DownloadManager's child
process) and, once the model is ready, start chatting with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.convert.discover import is_gguf
from engine.library.acquire import Request, Unquantized, unquantized_folder

from .background import run_in_background
from .downloads import format_bytes


def droppable_path(url) -> Path | None:
    """The local folder or GGUF file a dropped URL names, or None for anything else."""
    if not url.isLocalFile():
        return None
    path = Path(url.toLocalFile())
    if path.is_dir() or (path.is_file() and (path.suffix.lower() == ".gguf" or is_gguf(path))):
        return path
    return None


def acquire_local(parent, downloads, path: Path, started: Callable[[str], None], name: str | None = None) -> None:
    """Add a local file or folder through the pipeline. A folder of 16-bit weights (a Hugging Face
    fp16/bf16 download) first asks whether to convert it to 4-bit or to use it as it is; the
    question is asked with the folder's sizes, read in the background. `started(key)` is called
    with the acquisition's key once it runs (not when the user cancels)."""

    def go(request: Request) -> None:
        started(downloads.acquire(request))

    def examined(unquantized: Unquantized | None) -> None:
        if unquantized is None:
            go(Request(str(path), name=name))
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Convert to 4-bit?", "", parent=parent)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(f"{path.name} holds {format_bytes(unquantized.weight_bytes)} of 16-bit weights. "
                    f"Converted to 4-bit it takes about {format_bytes(unquantized.quantized_bytes())} of "
                    f"memory and answers faster; the folder itself is not changed.")
        convert = box.addButton("Convert to 4-bit", QMessageBox.ButtonRole.AcceptRole)
        as_is = box.addButton("Use As It Is", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(convert)
        box.setAccessibleName("Convert to 4-bit?")
        convert.clicked.connect(lambda: go(Request(str(path), name=name, quantize=True)))
        as_is.clicked.connect(lambda: go(Request(str(path), name=name)))
        box.setWindowModality(Qt.WindowModality.WindowModal)  # a sheet on macOS
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    run_in_background(lambda: unquantized_folder(path), examined, lambda exc: examined(None), parent=parent)


class AddModelMixin:
    """For MainWindow: needs self.downloads (DownloadManager), self.refresh_models() and
    self._start_with_model(ref). Call _init_add_model() from __init__."""

    def _init_add_model(self) -> None:
        self._adding: dict[str, str] = {}  # acquisition key -> what the user added
        self.setAcceptDrops(True)
        self.downloads.finished.connect(self._model_added)

    def choose_model_to_add(self) -> None:
        dialog = QFileDialog(self, "Add a model: a .gguf file or a model folder")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(["Models (*.gguf config.json)", "All files (*)"])
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, False)
        dialog.fileSelected.connect(self._file_chosen)
        dialog.open()
        self._add_dialog = dialog

    def _file_chosen(self, path: str) -> None:
        chosen = Path(path)
        # Choosing a folder's config.json means "this folder".
        self.add_model(chosen.parent if chosen.name == "config.json" else chosen)

    def add_model(self, path: Path) -> None:
        def started(key: str) -> None:
            self._adding[key] = path.name
            self.statusBar().showMessage(f"Adding {path.name}… (progress under Settings > Models > Downloads)")

        acquire_local(self, self.downloads, path, started)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if any(droppable_path(url) for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [p for p in (droppable_path(url) for url in event.mimeData().urls()) if p is not None]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        for path in paths:
            self.add_model(path)

    def _model_added(self, key: str, done: dict) -> None:
        name = self._adding.pop(key, None)
        if name is None:
            return
        if done.get("status") == "complete":
            self.statusBar().showMessage(f"{name} was added as {done['ref']}.", 8000)
            self.refresh_models()
            self._start_with_model(done["ref"])
        elif done.get("status") == "failed":
            self.statusBar().clearMessage()
            box = QMessageBox(QMessageBox.Icon.Warning, "Cannot add this model",
                              f"{name} could not be added: {done.get('error') or 'it stopped'}", parent=self)
            box.setTextFormat(Qt.TextFormat.PlainText)  # error texts quote file contents: never markup
            box.setAccessibleName("Cannot add this model")
            box.open()
            self._add_error = box
        else:
            self.statusBar().showMessage(f"Adding {name} was paused.", 8000)
