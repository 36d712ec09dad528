"""The Settings dialog: the Models, Generation, Appearance, Data and Server pages in tabs."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QMainWindow,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.history import HistoryStore

from ..bridge import EngineBridge
from ..downloads import DownloadManager
from ..prefs import Prefs
from .appearance_page import AppearancePage
from .data_page import DataPage
from .generation_page import GenerationPage
from .models_page import ModelsPage
from .server_page import ServerPage
from .widgets import named


class SettingsDialog(QDialog):
    """Hearth's settings, non-modal. The main window opens it with QKeySequence.StandardKey.Preferences.

    Signals:
        modelsChanged(): a model was imported, deleted, downloaded or made the default.
        appearanceChanged(): the theme or font size changed (already applied to the application).
    """

    modelsChanged = Signal()
    appearanceChanged = Signal()

    def __init__(self, prefs: Prefs, store: HistoryStore, downloads: DownloadManager,
                 parent: QWidget | None = None, bridge: EngineBridge | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setModal(False)
        named(self, "Settings")
        self.models_page = ModelsPage(prefs, downloads)
        self.generation_page = GenerationPage(prefs, store)
        self.appearance_page = AppearancePage(prefs)
        self.data_page = DataPage(store)
        self.server_page = ServerPage(bridge)  # bridge: the app's engine, which the server shares
        if isinstance(parent, QMainWindow) and self.server_page.indicator is not None:
            parent.statusBar().addPermanentWidget(self.server_page.indicator)  # the window shows it
        self.tabs = named(QTabWidget(), "Settings pages")
        for page, title in ((self.models_page, "Models"), (self.generation_page, "Generation"),
                            (self.appearance_page, "Appearance"), (self.data_page, "Data"),
                            (self.server_page, "Server")):
            self.tabs.addTab(page, title)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        named(buttons.button(QDialogButtonBox.StandardButton.Close), "Close settings")
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)
        self.models_page.modelsChanged.connect(self.modelsChanged)
        self.appearance_page.changed.connect(self.appearanceChanged)
        self.resize(880, 620)

    def reload(self) -> None:
        """Re-read what may have changed elsewhere (the CLI, another window), in the background."""
        self.models_page.reload()
        self.generation_page.presets.reload()
        self.generation_page.reload_drafts()
        self.data_page.reload()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.reload()

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.generation_page.save_now()
        super().hideEvent(event)
