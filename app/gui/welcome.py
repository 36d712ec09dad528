"""The first-run page: what Hearth is, which models fit this Mac, and the ones already found."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from engine.library import catalog

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
        self.catalog_box = QWidget()
        self.catalog_grid = QGridLayout(self.catalog_box)
        self.column.addWidget(QLabel("<h3>Models that fit this Mac</h3>"))
        self.column.addWidget(self.catalog_box)
        self.column.addStretch(1)
        self.setWidget(body)
        self._fill_catalog()

    def set_models(self, models: list) -> None:
        while self.found.count():
            self.found.takeAt(0).widget().deleteLater()
        title = "<h3>Models already on this Mac</h3>" if models else (
            "<p>No models were found in the Hugging Face cache yet.</p>")
        self.found.addWidget(QLabel(title), 0, 0, 1, 2)
        for row, model in enumerate(models, start=1):
            self.found.addWidget(QLabel(f"{model.name} — {model.size_bytes / 1e9:.1f} GB"), row, 0)
            button = QPushButton("Chat", clicked=lambda _=False, ref=model.ref: self.chatRequested.emit(ref))
            button.setAccessibleName(f"Chat with {model.name}")
            self.found.addWidget(button, row, 1)

    def _fill_catalog(self) -> None:
        try:
            entries = catalog.load()
        except Exception as exc:  # noqa: BLE001 - the page still works without the catalog
            self.catalog_grid.addWidget(QLabel(f"The catalog cannot be read: {exc}"), 0, 0)
            return
        fitting = [e for e in entries if e.fit().verdict != "too_large"]
        fitting.sort(key=lambda e: (not e.recommended, e.weight_bytes))
        for row, entry in enumerate(fitting):
            report = entry.fit()
            label = QLabel(f"<b>{entry.name}</b>{' — recommended' if entry.recommended else ''}<br>"
                           f"{entry.download_bytes / 1e9:.1f} GB download · {report.verdict.replace('_', ' ')}: "
                           f"{report.describe()}<br><small>{entry.license}</small>")
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            self.catalog_grid.addWidget(label, row, 0)
            button = QPushButton("Download", clicked=lambda _=False, e=entry: self._download(e))
            button.setAccessibleName(f"Download {entry.name}")
            button.setEnabled(self.downloads is not None and entry.source == "mlx")
            if entry.source != "mlx":
                button.setToolTip("Needs the import step (GGUF / old MLX layout), coming with the importer.")
            self.catalog_grid.addWidget(button, row, 1)

    def _download(self, entry) -> None:
        if self.downloads is not None:
            self.downloads.start(entry.repo_id)
