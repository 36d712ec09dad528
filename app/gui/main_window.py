"""The main window: conversations on the left, the chat on the right, the model and its state above.

It appears before the engine has imported MLX: the engine thread starts after the window is shown,
and every slow thing (model scans, loads, downloads) reports back through signals.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QByteArray, QCoreApplication, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.history import HistoryStore
from engine.library import library

from .add_model import AddModelMixin
from .background import run_in_background
from .bridge import EngineBridge
from .chat import ChatController
from .composer import Composer
from .plain_text import plain, plain_tooltip
from .prefs import Prefs
from .sidebar import Sidebar
from .transcript import TranscriptView
from .welcome import WelcomePage


class MainWindow(AddModelMixin, QMainWindow):
    keeps_running_when_closed = sys.platform == "darwin"  # Cmd+W hides the window; Cmd+Q quits

    def __init__(self, store: HistoryStore, prefs: Prefs, bridge: EngineBridge, downloads=None) -> None:
        super().__init__()
        self.store, self.prefs, self.bridge, self.downloads = store, prefs, bridge, downloads
        self.setWindowTitle("Hearth")
        self.setAccessibleName("Hearth")
        self._settings_dialog = None
        self._shut_down = False
        self._models: list[library.InstalledModel] = []
        self._model_wanted: str | None = None  # a model to select once the model list is read
        self._build()
        self._build_menus()
        self._init_add_model()
        self._connect()
        self._restore_state()
        app = QGuiApplication.instance()
        app.aboutToQuit.connect(self._shut_down_everything)  # a quit from the Dock, the window hidden
        app.applicationStateChanged.connect(self._on_application_state)
        QTimer.singleShot(0, self._after_show)

    # --- layout ---

    def _build(self) -> None:
        self.sidebar = Sidebar(self.store)
        self.transcript = TranscriptView()
        self.composer = Composer()
        self.chat = ChatController(self.store, self.bridge, self.transcript, self.prefs, self)
        chat_page = QWidget()
        column = QVBoxLayout(chat_page)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self._build_toolbar())
        column.addWidget(self._build_banner())
        column.addWidget(self.transcript, 1)
        column.addWidget(self._build_context_row())
        column.addWidget(self.composer)
        self.welcome = WelcomePage(self.downloads)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(chat_page)
        self.pages.setCurrentIndex(1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.pages)
        self.splitter.setStretchFactor(1, 1)
        self.sidebar.setMinimumWidth(200)
        self.splitter.setSizes([260, 840])
        self.setCentralWidget(self.splitter)
        self.resize(1100, 760)

    def _build_toolbar(self) -> QWidget:
        bar = QWidget()
        row = QHBoxLayout(bar)
        row.setContentsMargins(6, 6, 6, 0)
        self.model_picker = QComboBox()
        self.model_picker.setAccessibleName("Model")
        self.model_picker.setMinimumWidth(200)
        self.model_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_picker.setMinimumContentsLength(24)
        self.model_picker.view().setAccessibleName("Installed models")
        self.model_state = plain(QLabel("No model loaded"))
        self.model_state.setAccessibleName("Model state")
        # Long states (name, size, memory) must not widen the window: they are cut, with a tooltip.
        self.model_state.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.unload_button = QPushButton("Unload", clicked=self._unload)
        self.unload_button.setAccessibleName("Unload model")
        self.unload_button.setEnabled(False)
        self.system_button = QPushButton("System prompt…", clicked=self._edit_system_prompt)
        self.system_button.setAccessibleName("System prompt")
        self.sampling_button = QPushButton("Sampling…", clicked=self._edit_sampling)
        self.sampling_button.setAccessibleName("Sampling settings for this chat")
        self.loading_bar = QProgressBar()
        self.loading_bar.setAccessibleName("Model loading")
        self.loading_bar.setRange(0, 0)  # busy: loading reports no steps
        self.loading_bar.setMaximumWidth(80)
        self.loading_bar.hide()
        self.settings_button = QPushButton("Settings", clicked=self.open_settings)
        self.settings_button.setAccessibleName("Settings")
        row.addWidget(QLabel("Model:"))
        row.addWidget(self.model_picker)
        row.addWidget(self.model_state, 1)
        row.addWidget(self.loading_bar)
        row.addWidget(self.unload_button)
        row.addWidget(self.system_button)
        row.addWidget(self.sampling_button)
        row.addWidget(self.settings_button)
        return bar

    def _build_banner(self) -> QWidget:
        self.banner = QWidget()
        self.banner.setAccessibleName("Notice")
        self.banner_text = plain(QLabel())  # errors quote folder names, files, servers
        self.banner_text.setWordWrap(True)
        self.banner_action = QPushButton("Open Settings", clicked=self.open_settings)
        self.banner_action.setAccessibleName("Open Settings")
        close = QPushButton("Dismiss", clicked=self.banner.hide)
        close.setAccessibleName("Dismiss notice")
        row = QHBoxLayout(self.banner)
        row.addWidget(self.banner_text, 1)
        row.addWidget(self.banner_action)
        row.addWidget(close)
        self.banner.setStyleSheet("background: #fff4ce; color: #333;")
        self.banner.hide()
        return self.banner

    def _build_context_row(self) -> QWidget:
        row_widget = QWidget()
        row = QHBoxLayout(row_widget)
        row.setContentsMargins(6, 0, 6, 0)
        self.context_meter = QProgressBar()
        self.context_meter.setAccessibleName("Context used")
        self.context_meter.setTextVisible(True)
        self.context_meter.setFormat("context: %v of %m tokens")
        self.context_meter.setMaximumHeight(18)
        self.context_note = plain(QLabel())
        self.context_note.setAccessibleName("Context note")
        self.context_note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress_note = QLabel()
        self.progress_note.setAccessibleName("Prompt progress")
        row.addWidget(self.context_meter, 1)
        row.addWidget(self.context_note, 2)
        row.addWidget(self.progress_note)
        return row_widget

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "New Chat", self.chat.new_chat, QKeySequence.StandardKey.New)
        self._action(file_menu, "Add Model…", self.choose_model_to_add)
        self._action(file_menu, "Export Conversation…", self._export_current)
        file_menu.addSeparator()
        self._action(file_menu, "Close Window", self.close_window, QKeySequence.StandardKey.Close)
        quit_action = self._action(file_menu, "Quit Hearth", self.quit_app, QKeySequence.StandardKey.Quit)
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        edit_menu = self.menuBar().addMenu("&Edit")
        for name, key in (("Undo", QKeySequence.StandardKey.Undo), ("Redo", QKeySequence.StandardKey.Redo),
                          ("Cut", QKeySequence.StandardKey.Cut), ("Copy", QKeySequence.StandardKey.Copy),
                          ("Paste", QKeySequence.StandardKey.Paste),
                          ("Select All", QKeySequence.StandardKey.SelectAll)):
            self._action(edit_menu, name, self._edit_command(name), key)
        edit_menu.addSeparator()
        self._action(edit_menu, "Find in Conversations", self.sidebar.focus_search, QKeySequence.StandardKey.Find)
        prefs = self._action(edit_menu, "Settings…", self.open_settings, QKeySequence.StandardKey.Preferences)
        prefs.setMenuRole(QAction.MenuRole.PreferencesRole)
        chat_menu = self.menuBar().addMenu("&Chat")
        self._action(chat_menu, "Stop", self.chat.stop, "Esc")
        for button in self.menuBar().findChildren(QAbstractButton):  # Qt's overflow arrow
            button.setAccessibleName("More menus")

    def _action(self, menu, name: str, slot, shortcut=None) -> QAction:
        action = QAction(name, self)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        menu.addAction(action)
        return action

    def _edit_command(self, name: str):
        """A slot doing this Edit menu command in the focused text view. A closure with no
        arguments: triggered(bool) would put `checked` into a `lambda n=name:`'s n."""
        method = {"Undo": "undo", "Redo": "redo", "Cut": "cut", "Copy": "copy", "Paste": "paste",
                  "Select All": "selectAll"}[name]

        def run() -> None:
            widget = self.focusWidget()
            if widget is not None and hasattr(widget, method):
                getattr(widget, method)()

        return run

    # --- wiring ---

    def _connect(self) -> None:
        self.sidebar.conversationChosen.connect(self.chat.open)
        self.sidebar.searchHitChosen.connect(self.chat.show_search_hit)
        self.sidebar.newChatRequested.connect(self.chat.new_chat)
        self.sidebar.deleteRequested.connect(self._on_delete_requested)
        self.sidebar.exportRequested.connect(self._export)
        self.composer.send.connect(self._send_message)
        self.composer.stop.connect(self.chat.stop)
        self.chat.busyChanged.connect(self.composer.set_generating)
        self.chat.refused.connect(self.composer.show_notice)
        self.chat.generatingChanged.connect(self.sidebar.set_generating)
        # When the answer ends, a "still answering" refusal no longer holds.
        self.chat.generatingChanged.connect(lambda cid: cid or self.composer.show_notice(""))
        self.chat.busyChanged.connect(lambda busy: busy or self.progress_note.clear())
        self.chat.historyChanged.connect(self._refresh_sidebar)
        self.chat.conversationChanged.connect(self._on_conversation_changed)
        self.chat.notice.connect(self.show_notice)
        self.chat.contextChanged.connect(self._on_context)
        self.chat.promptProgress.connect(self._on_prompt_progress)
        self.model_picker.activated.connect(self._on_model_picked)
        self.bridge.modelLoading.connect(self._on_model_loading)
        self.bridge.modelLoaded.connect(self._on_model_loaded)
        self.bridge.modelUnloaded.connect(lambda _d: self._set_model_state("No model loaded", loaded=False))
        self.bridge.finished.connect(self._on_request_finished)
        self.welcome.chatRequested.connect(self._start_with_model)

    def _after_show(self) -> None:
        self.bridge.start()  # the engine thread; MLX is imported there on the first load
        self.refresh_models()
        last = self.prefs.get("window/last_conversation", "")
        if last:
            try:
                self.store.conversation(last)
                self.chat.open(last)
            except Exception:  # noqa: BLE001 - deleted since: start fresh
                pass

    # --- models ---

    def refresh_models(self) -> None:
        from engine.convert.discover import find_models

        run_in_background(library.installed_models, self._on_models, self._on_models_error, self)
        run_in_background(find_models, self.welcome.set_found_elsewhere, lambda _e: None, self)

    def _on_models_error(self, error: BaseException) -> None:
        self.show_notice(f"Could not list the models: {error}", "settings")

    def _on_models(self, models: list) -> None:
        self._models = [m for m in models if m.usable]
        self.model_picker.clear()
        for m in self._models:
            verdict = m.fit().verdict.replace("_", " ")
            self.model_picker.addItem(f"{m.name}  ({verdict})", m.ref)
        self.welcome.set_models(self._models)
        if not self._models:
            self.pages.setCurrentWidget(self.welcome)
            return
        wanted = (self._model_wanted or self.chat.model_ref or library.default_model()
                  or self.prefs.get("model/last", ""))
        self._model_wanted = None
        index = max(0, self.model_picker.findData(wanted))
        self.model_picker.setCurrentIndex(index)
        if self.chat.model_ref != self.model_picker.currentData():
            self._on_model_picked(index)

    def _on_model_picked(self, index: int) -> None:
        ref = self.model_picker.itemData(index)
        if not ref or ref == self.chat.model_ref:
            return
        self.chat.stop_any()
        self.chat.model_ref = ref
        context = self.prefs.get("generation/context_length") or None
        self.bridge.load(ref, context_length=context)
        self.prefs.set("model/last", ref)
        self.model_state.setText(f"Loading {ref}…")

    def _start_with_model(self, ref: str) -> None:
        """Chat with this model, which may have just been added: if the picker does not list it yet,
        the model list being read in the background selects it when it arrives."""
        self.pages.setCurrentIndex(1)
        self._model_wanted = ref
        self.refresh_models()
        index = self.model_picker.findData(ref)
        if index >= 0:
            self._model_wanted = None
            self.model_picker.setCurrentIndex(index)
            self._on_model_picked(index)

    def _on_model_loaded(self, loaded: dict) -> None:
        size = loaded["weight_bytes"]
        size_text = f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"
        self.chat.model_revision = loaded.get("revision")
        self._set_model_state(f"{loaded['name']} · {size_text} · {loaded['context_length']:,}-token context",
                              loaded=True)
        self.context_meter.setMaximum(loaded["context_length"])
        self.banner.hide()
        library.mark_used(loaded["ref"])

    def _on_model_loading(self, name: str) -> None:
        self.model_state.setText(f"Loading {name}…")
        self.loading_bar.show()

    def _set_model_state(self, text: str, loaded: bool) -> None:
        self.model_state.setText(text)
        self.model_state.setToolTip(plain_tooltip(text))
        self.unload_button.setEnabled(loaded)
        self.loading_bar.hide()
        self._model_text = text if loaded else ""

    def _show_memory(self, peak_gb: float) -> None:
        """After an answer: how much memory MLX used at its peak (weights, KV cache, work)."""
        if getattr(self, "_model_text", "") and peak_gb:
            self.model_state.setText(f"{self._model_text} · {peak_gb:.2f} GB in use at peak")

    def _on_request_finished(self, _request_id: int, data: dict) -> None:
        if data.get("peak_memory_gb"):
            self._show_memory(data["peak_memory_gb"])
        if data.get("finish_reason") == "error" and data.get("error_kind") not in (None, "PromptError", "ContextOverflow"):
            if not self.chat.busy and "load" not in (data.get("error") or "").lower():
                self._set_model_state("No model loaded", loaded=False)
            self.show_notice(data.get("error") or "Something failed.", "settings")
            if data.get("error_kind") in ("ModelTooLarge", "ModelNotFound", "ConfigError", "WeightsMismatch",
                                          "NoSafetensors", "LegacyNpzLayout", "PickleWeights",
                                          "MissingTokenizer", "UnsupportedModelType", "ModelFolderError"):
                self.chat.model_ref = None
                self._set_model_state("No model loaded", loaded=False)

    def _unload(self) -> None:
        self.chat.stop_any()
        self.chat.model_ref = None
        self.bridge.unload()

    # --- conversations ---

    def _refresh_sidebar(self) -> None:
        self.sidebar.refresh()
        self.sidebar.select(self.chat.conversation_id)

    def _on_conversation_changed(self, conversation_id: str) -> None:
        self.prefs.set("window/last_conversation", conversation_id)
        self.sidebar.select(conversation_id or None)
        self.progress_note.clear()  # an answer being read in another chat goes on unseen

    def _send_message(self, text: str) -> None:
        if self.chat.send(text):
            self.composer.message_sent()

    def _on_delete_requested(self, conversation_id: str) -> None:
        self.chat.conversation_deleted(conversation_id)

    def _export_current(self) -> None:
        if self.chat.conversation_id:
            self._export(self.chat.conversation_id)

    def _export(self, conversation_id: str) -> None:
        from engine.history.export import export_json, export_markdown

        from ..history_cli import write_atomically

        path, chosen = QFileDialog.getSaveFileName(self, "Export conversation", "conversation.md",
                                                   "Markdown (*.md);;JSON, with every branch (*.json)")
        if not path:
            return
        as_json = path.endswith(".json") or "JSON" in chosen
        import json as jsonlib

        text = (jsonlib.dumps(export_json(self.store, [conversation_id]), ensure_ascii=False, indent=1)
                if as_json else export_markdown(self.store, [conversation_id]))
        run_in_background(lambda: write_atomically(__import__("pathlib").Path(path), text),
                          lambda _r: self.statusBar().showMessage(f"Exported to {path}", 5000),
                          lambda e: self.show_notice(f"Export failed: {e}", ""), self)

    def _on_context(self, prompt_tokens: int, context_length: int, dropped: int) -> None:
        if context_length:  # 0 (no model yet) would turn the bar into a busy indicator
            self.context_meter.setMaximum(context_length)
        self.context_meter.setValue(min(prompt_tokens, context_length))
        note = self.chat.dropped_description(dropped)
        self.context_note.setText(note)
        self.context_note.setToolTip(plain_tooltip(note))

    def _on_prompt_progress(self, done: int, total: int) -> None:
        self.progress_note.setText(f"Reading the prompt… {100 * done // max(total, 1)}%" if done < total else "")

    def _edit_system_prompt(self) -> None:
        from .system_prompt import SystemPromptDialog

        dialog = SystemPromptDialog(self.store, self.chat.system_prompt, self)
        if dialog.exec():
            self.chat.set_system_prompt(dialog.text())

    def _edit_sampling(self) -> None:
        from .sampling_dialog import SamplingDialog

        dialog = SamplingDialog(self.chat.sampling, self)
        if dialog.exec():
            self.chat.set_sampling(dialog.result_settings)

    # --- notices, settings ---

    def show_notice(self, text: str, action: str = "") -> None:
        self.banner_text.setText(text)
        self.banner_action.setVisible(action == "settings")
        self.banner.show()

    def open_settings(self) -> None:
        from .settings import SettingsDialog

        if self._settings_dialog is None:
            self._settings_dialog = SettingsDialog(self.prefs, self.store, self.downloads, self)
            self._settings_dialog.modelsChanged.connect(self.refresh_models)
        self._settings_dialog.show()
        self._settings_dialog.raise_()

    # --- window state and quitting ---

    def _restore_state(self) -> None:
        geometry = self.prefs.raw().value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        splitter = self.prefs.raw().value("window/splitter")
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)

    def close_window(self) -> None:
        """File > Close Window (Cmd+W). On a Mac the app goes on running without its window (an
        answer or a download continues) and clicking its Dock icon brings the window back; elsewhere
        closing the only window quits."""
        if self.keeps_running_when_closed:
            self._save_window_state()
            self.hide()
        else:
            self.close()

    def quit_app(self) -> None:
        """Hearth > Quit (Cmd+Q): save, stop the engine and downloads, and quit."""
        self.close()
        QCoreApplication.quit()

    def _on_application_state(self, state: Qt.ApplicationState) -> None:
        if state == Qt.ApplicationState.ApplicationActive and not self.isVisible() and not self._shut_down:
            self.show()  # the Dock icon clicked while the window was closed (Cmd+W)

    def _save_window_state(self) -> None:
        self.prefs.set("window/geometry", self.saveGeometry())
        self.prefs.set("window/splitter", self.splitter.saveState())
        self.prefs.sync()

    def _shut_down_everything(self) -> None:
        """At quit: keep what was typed and streamed, finish deletes, stop the worker threads."""
        if self._shut_down:
            return
        self._shut_down = True
        self.chat.save_partial_for_quit()
        self.sidebar.commit_deletes()
        if self.downloads is not None:
            self.downloads.shutdown(10.0)
        self.bridge.shutdown(10.0)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._save_window_state()
        self._shut_down_everything()
        event.accept()

