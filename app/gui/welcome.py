"""The first-run page: what Hearth is, which models fit this Mac, and the ones already found."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from engine.library import catalog
from engine.library.acquire import Request, request_for_catalog

from .plain_text import plain

INTRO = (
    "<h2>Welcome to Hearth</h2>"
    "<p>Chat with Llama models privately, on this Mac. Everything runs here: nothing you type leaves "
    "the machine, and Hearth only goes online when you ask it to download a model.</p>"
)


class WelcomePage(QScrollArea):
    """Signals:
        chatRequested(str): start chatting with this installed model (its ref).
    """

    chatRequested = Signal(str)

    def __init__(self, downloads=None, parent=None) -> None:
        super().__init__(parent)
        self.downloads = downloads
        self.setAccessibleName("Welcome")
        self.setWidgetResizable(True)
        body = QWidget()
        self.column = QVBoxLayout(body)
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        self.column.addWidget(intro)
        self.found_box = QWidget()
        self.found = QGridLayout(self.found_box)
        self.column.addWidget(self.found_box)
        self.others_box = QWidget()
        self.others = QGridLayout(self.others_box)
        self.column.addWidget(self.others_box)
        self.catalog_box = QWidget()
        self.catalog_grid = QGridLayout(self.catalog_box)
        self.column.addWidget(QLabel("<h3>Models that fit this Mac</h3>"))
        self.column.addWidget(self.catalog_box)
        self.column.addStretch(1)
        self.setWidget(body)
        self._waiting: dict[str, tuple[QLabel, QPushButton]] = {}  # acquisition key -> its row's widgets
        if downloads is not None:
            downloads.model.dataChanged.connect(self._show_progress)
            downloads.finished.connect(self._finished)
        self._fill_catalog()

    def set_models(self, models: list) -> None:
        while self.found.count():
            self.found.takeAt(0).widget().deleteLater()
        title = "<h3>Models already on this Mac</h3>" if models else (
            "<p>No models were found in the Hugging Face cache yet.</p>")
        self.found.addWidget(QLabel(title), 0, 0, 1, 2)
        for row, model in enumerate(models, start=1):
            self.found.addWidget(plain(QLabel(f"{model.name} — {model.size_bytes / 1e9:.1f} GB")), row, 0)
            button = QPushButton("Chat", clicked=lambda _=False, ref=model.ref: self.chatRequested.emit(ref))
            button.setAccessibleName(f"Chat with {model.name}")
            self.found.addWidget(button, row, 1)

    def set_found_elsewhere(self, found: list) -> None:
        """GGUF models Ollama or LM Studio downloaded, each with an Import button."""
        while self.others.count():
            self.others.takeAt(0).widget().deleteLater()
        if not found:
            return
        self.others.addWidget(QLabel("<h3>Models from Ollama and LM Studio</h3>"), 0, 0, 1, 3)
        for row, model in enumerate(found, start=1):
            self.others.addWidget(plain(QLabel(f"{model.name} ({model.app}) — {model.size_bytes / 1e9:.1f} GB")), row, 0)
            button = QPushButton("Import", clicked=lambda _=False, m=model, r=row: self._import(m, r))
            button.setAccessibleName(f"Import {model.name} from {model.app}")
            self.others.addWidget(button, row, 1)
            status = plain(QLabel())
            status.setAccessibleName(f"{model.name} import progress")
            self.others.addWidget(status, row, 2)

    def _import(self, model, row: int) -> None:
        status = self.others.itemAtPosition(row, 2).widget()
        button = self.others.itemAtPosition(row, 1).widget()
        self._start(Request(str(model.path), name=model.name), status, button)

    def _fill_catalog(self) -> None:
        try:
            entries = catalog.load()
        except Exception as exc:  # noqa: BLE001 - the page still works without the catalog
            self.catalog_grid.addWidget(plain(QLabel(f"The catalog cannot be read: {exc}")), 0, 0)
            return
        fitting = [e for e in entries if e.fit().verdict != "too_large"]
        fitting.sort(key=lambda e: (not e.recommended, e.weight_bytes))
        for row, entry in enumerate(fitting):
            report = entry.fit()
            label = QLabel(f"<b>{html.escape(entry.name)}</b>{' — recommended' if entry.recommended else ''}<br>"
                           f"{entry.download_bytes / 1e9:.1f} GB download · {report.verdict.replace('_', ' ')}: "
                           f"{html.escape(report.describe())}<br><small>{html.escape(entry.license)}</small>")
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            self.catalog_grid.addWidget(label, row, 0)
            button = QPushButton("Download", clicked=lambda _=False, e=entry, r=row: self._get(e, r))
            button.setAccessibleName(f"Download {entry.name}")
            self.catalog_grid.addWidget(button, row, 1)
            status = plain(QLabel())
            status.setAccessibleName(f"{entry.name} progress")
            status.setWordWrap(True)
            self.catalog_grid.addWidget(status, row, 2)

    def _get(self, entry, row: int) -> None:
        """Download (and convert, for GGUF or old-layout sources) through the acquisition pipeline."""
        status = self.catalog_grid.itemAtPosition(row, 2).widget()
        button = self.catalog_grid.itemAtPosition(row, 1).widget()
        self._start(request_for_catalog(entry), status, button)

    def _start(self, request: Request, status: QLabel, button: QPushButton) -> None:
        button.setEnabled(False)
        status.setText("Starting…")
        key = self.downloads.acquire(request)
        self._waiting[key] = (status, button)
        self._show_progress()

    def _show_progress(self, *_args) -> None:
        for key, (status, _button) in self._waiting.items():
            row = self.downloads.model.row(key)
            if row is not None and row.running:
                share = f" {row.percent}%" if row.percent >= 0 else ""
                status.setText(f"{row.state.capitalize()}{share} {row.message}"[:90])

    def _finished(self, key: str, done: dict) -> None:
        if key not in self._waiting:
            return
        status, button = self._waiting.pop(key)
        button.setEnabled(True)
        if done.get("status") == "complete":
            status.setText("Ready")
            self.chatRequested.emit(done["ref"])
        elif done.get("status") == "paused":
            status.setText("Paused: resume it under Settings > Models > Downloads")
        else:
            status.setText(f"Failed: {done.get('error') or 'stopped'}")
