"""The main window: conversations on the left, the chat on the right, the model and its state above.

It appears before the engine has imported MLX: the engine thread starts after the window is shown,
and every slow thing (model scans, loads, downloads) reports back through signals.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QCoreApplication, QEvent, Qt, QTimer
from PySide6.QtGui import (
    QAccessible,
    QAccessibleAnnouncementEvent,
    QAction,
    QCloseEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
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

from engine.history import HistoryError, HistoryStore
from engine.library import library

from ..history_cli import write_atomically
from .add_model import AddModelMixin
from .background import run_in_background
from .bridge import EngineBridge
from .chat import ChatController
from .composer import Composer
from .export_file import describe_write_error, export_file_name
from .header import ChatHeader
from .plain_text import plain, plain_tooltip
from .prefs import Prefs
from .sidebar import Sidebar
from .theme import ThemeFollower
from .transcript import TranscriptView
from .welcome import WelcomePage

MAC = sys.platform == "darwin"
NARROW = 800  # narrower than this, the sidebar steps aside (the window works from 640 pixels)
MINIMUM_WIDTH = 640
EDIT_COMMANDS = {  # Edit menu item -> the text view's method, and the key that does it
    "Undo": ("undo", QKeySequence.StandardKey.Undo),
    "Redo": ("redo", QKeySequence.StandardKey.Redo),
    "Cut": ("cut", QKeySequence.StandardKey.Cut),
    "Copy": ("copy", QKeySequence.StandardKey.Copy),
    "Paste": ("paste", QKeySequence.StandardKey.Paste),
    "Select All": ("selectAll", QKeySequence.StandardKey.SelectAll),
}


class MainWindow(AddModelMixin, QMainWindow):
    keeps_running_when_closed = MAC  # Cmd+W hides the window; Cmd+Q quits

    def __init__(self, store: HistoryStore, prefs: Prefs, bridge: EngineBridge, downloads=None) -> None:
        super().__init__()
        self.store, self.prefs, self.bridge, self.downloads = store, prefs, bridge, downloads
        self.setWindowTitle("Hearth")
        self.setAccessibleName("Hearth")
        self._settings_dialog = None
        self._shut_down = False
        self._models: list[library.InstalledModel] = []
        self._model_wanted: str | None = None  # a model to select once the model list is read
        self._loaded_ref: str | None = None
        self._loading_ref: str | None = None
        self._model_text = ""
        self._sidebar_auto_hidden = False  # hidden because the window got narrow, not by the user
        self.theme: ThemeFollower | None = None
        self._build()
        self._build_menus()
        self._init_add_model()
        self._connect()
        self.system_line.set_text(self.chat.system_prompt)
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
        self._build_header()
        chat_page = QWidget()
        column = QVBoxLayout(chat_page)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.header)
        column.addWidget(self._build_banner())
        column.addWidget(self._build_chat_area(), 1)
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
        self.splitter.setCollapsible(1, False)
        self.sidebar.setMinimumWidth(180)
        self.splitter.setSizes([260, 840])
        self.setCentralWidget(self.splitter)
        self.status_label = QLabel()  # what announce() said last, for a while
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.statusBar().addWidget(self.status_label, 1)
        self._status_timer = QTimer(self, singleShot=True, interval=8000, timeout=self.status_label.clear)
        self._loading_timer = QTimer(self, interval=1000, timeout=self._show_loading_time)
        self._loading_started, self._loading_name = 0.0, ""
        self.setMinimumWidth(MINIMUM_WIDTH)
        self.resize(1100, 760)

    def _build_header(self) -> None:
        self.header = ChatHeader()
        # The controls by their own names: tests, the screenshots and the rest of the window use them.
        for name in ("model_picker", "model_state", "loading_bar", "unload_button", "sampling_button",
                     "settings_button", "system_button", "system_line", "sidebar_toggle"):
            setattr(self, name, getattr(self.header, name))
        self.unload_button.clicked.connect(self._unload)
        self.sampling_button.clicked.connect(self._edit_sampling)
        self.settings_button.clicked.connect(self.open_settings)
        self.sidebar_toggle.toggled.connect(self._sidebar_toggled)
        self.system_line.edited.connect(self.chat.set_system_prompt)
        self.system_line.fullEditorRequested.connect(self._edit_system_prompt)

    def _build_chat_area(self) -> QWidget:
        """The transcript, or in its place a note for an empty chat: what to do next."""
        self.empty_state = QWidget()
        self.empty_state.setAccessibleName("New chat")
        self.empty_title = QLabel()
        self.empty_title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.empty_title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.empty_title.setFont(font)
        self.empty_text = QLabel()
        self.empty_text.setTextFormat(Qt.TextFormat.PlainText)
        self.empty_text.setWordWrap(True)
        self.empty_action = QPushButton("Get a model…")
        self.empty_action.setAccessibleName("Get a model in Settings")
        self.empty_action.clicked.connect(self.open_settings)
        column = QVBoxLayout(self.empty_state)
        column.setContentsMargins(32, 16, 32, 16)
        column.addStretch(1)
        column.addWidget(self.empty_title, 0, Qt.AlignmentFlag.AlignHCenter)
        column.addWidget(self.empty_text)  # full width: a wrapped label needs it to know its height
        column.addWidget(self.empty_action, 0, Qt.AlignmentFlag.AlignHCenter)
        self.empty_text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        column.addStretch(2)
        self.chat_area = QStackedWidget()
        self.chat_area.addWidget(self.empty_state)
        self.chat_area.addWidget(self.transcript)
        self._show_chat_area()
        return self.chat_area

    def _show_chat_area(self) -> None:
        """The transcript when a conversation is open; otherwise the empty chat's note."""
        if self.chat.conversation_id is not None:
            self.chat_area.setCurrentWidget(self.transcript)
            return
        self.chat_area.setCurrentWidget(self.empty_state)
        if self._loaded_ref:
            self.empty_title.setText("New chat")
            self.empty_text.setText(f"With {self._model_name(self._loaded_ref)}. Type a message below: "
                                    "Return sends it, Shift+Return adds a line.")
        elif self._loading_ref:
            self.empty_title.setText("Loading the model…")
            self.empty_text.setText("You can type your message meanwhile.")
        else:
            self.empty_title.setText("No model loaded")
            self.empty_text.setText("Choose one in the Model list above, or get one in Settings.")
        self.empty_action.setVisible(not self._loaded_ref and not self._loading_ref)

    def _model_name(self, ref: str) -> str:
        return next((m.name for m in self._models if m.ref == ref), ref)

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
        self._action(file_menu, "New Chat", self.new_chat, QKeySequence.StandardKey.New)
        self._action(file_menu, "Add Model…", self.choose_model_to_add)
        self._action(file_menu, "Export Conversation…", self._export_current)
        file_menu.addSeparator()
        self._action(file_menu, "Close Window", self.close_window, QKeySequence.StandardKey.Close)
        quit_action = self._action(file_menu, "Quit Hearth", self.quit_app, QKeySequence.StandardKey.Quit)
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        edit_menu = self.menuBar().addMenu("&Edit")
        for name, (_method, key) in EDIT_COMMANDS.items():
            self._action(edit_menu, name, self._edit_command(name), key)
        edit_menu.addSeparator()
        self._action(edit_menu, "Find in Conversations", self.find_in_conversations,
                     QKeySequence.StandardKey.Find)
        prefs = self._action(edit_menu, "Settings…", self.open_settings)
        # Cmd+, on a Mac; other platforms have no standard key for it, so Ctrl+, there too.
        prefs.setShortcuts(QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences)
                           or [QKeySequence("Ctrl+,")])
        prefs.setMenuRole(QAction.MenuRole.PreferencesRole)
        view_menu = self.menuBar().addMenu("&View")
        # Ctrl+Cmd+S on a Mac, as in Finder and Mail; Qt's Meta is the Mac's Control key.
        self.sidebar_action = self._action(view_menu, "Show Sidebar", self._toggle_sidebar,
                                           "Ctrl+Meta+S" if MAC else "Ctrl+Shift+S")
        self.sidebar_action.setCheckable(True)
        self.sidebar_action.setChecked(True)
        chat_menu = self.menuBar().addMenu("&Chat")
        # Enabled only while this chat is answering, so that Esc otherwise reaches the focused view
        # (cancelling an edit, closing a popup).
        self.stop_action = self._action(chat_menu, "Stop", self.chat.stop, "Esc")
        self.stop_action.setEnabled(False)
        self._action(chat_menu, "Edit System Prompt", self._focus_system_prompt, "Ctrl+Shift+P")
        self._action(chat_menu, "Sampling…", self._edit_sampling)
        self._action(chat_menu, "Focus Message Box", self._focus_composer, "Ctrl+L")
        for button in self.menuBar().findChildren(QAbstractButton):  # Qt's overflow arrow
            button.setAccessibleName("More menus")

    def _action(self, menu, name: str, slot, shortcut=None) -> QAction:
        action = QAction(name, self)
        action.triggered.connect(lambda _checked=False: slot())  # triggered's `checked` is not for slot
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        menu.addAction(action)
        return action

    def _edit_command(self, name: str):
        """A slot doing this Edit menu command in the focused text view: its own method where it has
        one (line edits, text boxes), else the command's key sent to it (the transcript's views)."""
        method, key = EDIT_COMMANDS[name]

        def run() -> None:
            widget = QApplication.focusWidget()
            if name == "Undo" and self._undoes_a_delete(widget):
                self.sidebar.undo_delete()
                return
            if widget is None:
                return
            if hasattr(widget, method):
                getattr(widget, method)()
                return
            combination = QKeySequence(key)[0]
            for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
                QApplication.sendEvent(widget, QKeyEvent(kind, combination.key(), combination.keyboardModifiers()))

        return run

    def _undoes_a_delete(self, widget: QWidget | None) -> bool:
        """Edit > Undo (Cmd+Z) brings back a chat just deleted, unless a text field has the focus
        (its typing comes first)."""
        typing = widget is not None and hasattr(widget, "undo")
        return self.sidebar.can_undo_delete and not typing

    def new_chat(self) -> None:
        """File > New Chat (Cmd+N) and the sidebar's button: an empty chat, ready to type in."""
        self.chat.new_chat()
        self._focus_composer()

    def find_in_conversations(self) -> None:
        """Edit > Find (Cmd+F): the sidebar's search, shown if it was hidden."""
        if not self.sidebar.isVisible():
            self._set_sidebar_visible(True)
        self.sidebar.focus_search()

    def _focus_system_prompt(self) -> None:
        self.system_line.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.system_line.edit.selectAll()

    def _focus_composer(self) -> None:
        self.composer.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)

    # --- the sidebar, shown or hidden ---

    def _toggle_sidebar(self) -> None:
        self._set_sidebar_visible(self.sidebar.isHidden())

    def _sidebar_toggled(self, shown: bool) -> None:
        self._set_sidebar_visible(shown)

    def _set_sidebar_visible(self, shown: bool, by_user: bool = True) -> None:
        focused = QApplication.focusWidget()
        focus_was_inside = focused is not None and self.sidebar.isAncestorOf(focused)
        self.sidebar.setVisible(shown)
        for control in (self.sidebar_toggle, self.sidebar_action):
            control.blockSignals(True)
            control.setChecked(shown)
            control.blockSignals(False)
        self.sidebar_action.setText("Hide Sidebar" if shown else "Show Sidebar")
        if by_user:
            self._sidebar_auto_hidden = False
            self.prefs.set("window/sidebar_visible", shown)
        if not shown and focus_was_inside:
            self.composer.edit.setFocus()  # the typing place, not whatever Qt's focus chain offers

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        """A narrow window gives the chat the room: the sidebar steps aside, and comes back when
        the window is wide again (unless the user hid it)."""
        super().resizeEvent(event)
        narrow = event.size().width() < NARROW
        was_wide = event.oldSize().width() >= NARROW or event.oldSize().width() < 0  # < 0: first show
        if narrow and not self.sidebar.isHidden() and was_wide:
            self._sidebar_auto_hidden = True
            self._set_sidebar_visible(False, by_user=False)
        elif not narrow and self._sidebar_auto_hidden:
            self._sidebar_auto_hidden = False
            self._set_sidebar_visible(True, by_user=False)

    def set_theme(self, theme: ThemeFollower) -> None:
        """Follow light and dark: the drawn icons and the notice's colours are redrawn."""
        self.theme = theme
        theme.changed.connect(self._on_theme)
        self._on_theme(theme.dark)

    def _on_theme(self, dark: bool) -> None:
        self.header.update_icons()
        self.banner.setStyleSheet("background: #5c4a12; color: #f5f0e0;" if dark
                                  else "background: #fff4ce; color: #333;")

    # --- wiring ---

    def _connect(self) -> None:
        self.sidebar.conversationChosen.connect(self.chat.open)
        self.sidebar.searchHitChosen.connect(self.chat.show_search_hit)
        self.sidebar.newChatRequested.connect(self.new_chat)
        self.sidebar.deleteRequested.connect(self._on_delete_requested)
        self.sidebar.deleteCommitted.connect(self.chat.conversation_deleted)  # final: never cached again
        self.sidebar.exportRequested.connect(self._export)
        self.composer.send.connect(self._send_message)
        self.composer.stop.connect(self.chat.stop)
        self.chat.busyChanged.connect(self.composer.set_generating)
        self.chat.busyChanged.connect(self.stop_action.setEnabled)
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
        self.bridge.modelUnloaded.connect(self._on_model_unloaded)
        self.bridge.finished.connect(self._on_request_finished)
        self.welcome.chatRequested.connect(self._start_with_model)
        self.chat.generatingChanged.connect(self._announce_when_finished)
        self.prefs.changed.connect(self._on_pref_changed)

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
        self._list_models()
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

    def _list_models(self) -> None:
        """The picker's items, marking the loaded and the loading model."""
        self.header.set_models(self._models, self._loaded_ref, self._loading_ref)

    def _on_model_picked(self, index: int) -> None:
        ref = self.model_picker.itemData(index)
        if not ref or ref == self.chat.model_ref:
            return
        self.chat.stop_any()
        self.chat.model_ref = ref
        self.prefs.set("model/last", ref)
        self._load_model(ref)

    def _load_model(self, ref: str) -> None:
        """Load a model (on the engine thread) with the context length Settings asks for."""
        context = self.prefs.get("generation/context_length") or None
        self.bridge.load(ref, context_length=context)
        self._loading_ref = ref
        self._list_models()
        self._set_model_state(f"Loading {self._model_name(ref)}…", loaded=False, loading=True)

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
        self.chat.model_revision = loaded.get("revision")
        self._loaded_ref, self._loading_ref = loaded["ref"], None
        # The picker shows the name, size and fit; the state says what loading gave.
        self._set_model_state(f"Loaded · {loaded['context_length']:,}-token context", loaded=True)
        self.context_meter.setMaximum(loaded["context_length"])
        self.banner.hide()
        library.mark_used(loaded["ref"])

    def _on_model_loading(self, name: str) -> None:
        self._loading_name = name
        self._set_model_state(f"Loading {name}…", loaded=False, loading=True)
        self._loading_started = time.monotonic()
        self._loading_timer.start()

    def _show_loading_time(self) -> None:
        """While a model loads (no steps are reported), the seconds so far, so it visibly goes on."""
        if not self._loading_ref:
            self._loading_timer.stop()
            return
        seconds = int(time.monotonic() - self._loading_started)
        self.header.show_state(f"Loading {self._loading_name}… {seconds} s", loading=True)

    def _on_model_unloaded(self, _unloaded: dict) -> None:
        self._loaded_ref = None
        self._set_model_state("No model loaded", loaded=False)

    def _set_model_state(self, text: str, loaded: bool, loading: bool = False) -> None:
        if not loading:
            self._loading_ref = None
        if not loaded:
            self._loaded_ref = None
        self.header.show_state(text, loading=loading)
        self.unload_button.setEnabled(loaded)
        self._model_text = text if loaded else ""
        self._list_models()
        self._show_chat_area()

    def _show_memory(self, peak_gb: float) -> None:
        """After an answer: how much memory MLX used at its peak (weights, KV cache, work)."""
        if self._model_text and peak_gb:
            self.header.show_state(f"{self._model_text} · {peak_gb:.2f} GB in use at peak")

    def _on_request_finished(self, request_id: int, data: dict) -> None:
        if self.chat.is_draft_request(request_id):
            return  # the chat tells how loading the draft model went
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
        self.system_line.set_text(self.chat.system_prompt)
        self._show_chat_area()

    def _on_pref_changed(self, key: str) -> None:
        if key == "generation/context_length" and self._loaded_ref:
            self._load_model(self._loaded_ref)  # the new context applies now (after an answer being written)
        if self.chat.conversation_id is None and key.startswith("generation/"):
            self.system_line.set_text(self.chat.system_prompt)  # a new chat's defaults changed

    def _announce_when_finished(self, conversation_id: str) -> None:
        """Tell a screen reader (and the status bar) how an answer ended."""
        if conversation_id:
            self._answering_in = conversation_id
            self.status_label.clear()  # what was said of the last answer no longer holds
            return
        ended_in, self._answering_in = getattr(self, "_answering_in", ""), ""
        if ended_in:
            where = "" if ended_in == self.chat.conversation_id else f" in “{self.sidebar.title_of(ended_in)}”"
            self.announce(f"{self._how_it_ended(ended_in)}{where}.")

    def _how_it_ended(self, conversation_id: str) -> str:
        try:
            last = self.store.active_path(conversation_id, last=1)
        except HistoryError:
            return "Answer ended"
        if not last or last[-1].role != "assistant":
            return "The answer did not begin"  # stopped first, or failed: the notice says which
        return {"cancelled": "Answer stopped", "error": "Answer failed"}.get(last[-1].finish_reason,
                                                                            "Answer finished")

    def announce(self, text: str) -> None:
        """Say this to a screen reader without moving the focus, and show it in the status bar: in
        a label, which screen readers can read later too (a status bar's own message is painted)."""
        self.last_announcement = text
        self.status_label.setText(text)
        self._status_timer.start()
        QAccessible.updateAccessibility(QAccessibleAnnouncementEvent(self.status_label, text))

    def _send_message(self, text: str) -> None:
        if self.chat.send(text):
            self.composer.message_sent()

    def _on_delete_requested(self, conversation_id: str) -> None:
        self.chat.conversation_deleted(conversation_id, undoable=True)

    def _export_current(self) -> None:
        if self.chat.conversation_id:
            self._export(self.chat.conversation_id)

    def _export(self, conversation_id: str) -> None:
        """Export a conversation to a file the user names: Markdown, or JSON with every branch."""
        from engine.history.export import export_json, export_markdown

        title = self.store.conversation(conversation_id).title
        folder = Path(self.prefs.get("export/folder", "") or Path.home())
        path, chosen = QFileDialog.getSaveFileName(self, "Export conversation",
                                                   str(folder / export_file_name(title)),
                                                   "Markdown (*.md);;JSON, with every branch (*.json)")
        if not path:
            return
        self.prefs.set("export/folder", str(Path(path).parent))
        as_json = path.endswith(".json") or "JSON" in chosen
        import json as jsonlib

        text = (jsonlib.dumps(export_json(self.store, [conversation_id]), ensure_ascii=False, indent=1)
                if as_json else export_markdown(self.store, [conversation_id]))
        run_in_background(lambda: write_atomically(Path(path), text),
                          lambda _r: self.announce(f"Exported to {path}"),
                          lambda e: self.show_notice(describe_write_error(Path(path), e), ""), self)

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
        # Said as well as shown: a screen reader's user would not otherwise know it appeared.
        QAccessible.updateAccessibility(QAccessibleAnnouncementEvent(self.banner_text, text))

    def open_settings(self) -> None:
        from .settings import SettingsDialog

        if self._settings_dialog is None:
            self._settings_dialog = SettingsDialog(self.prefs, self.store, self.downloads, self,
                                                   bridge=self.bridge)
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
        # The user's choice, not the splitter's memory of a sidebar hidden for a narrow window.
        self._set_sidebar_visible(self.prefs.get("window/sidebar_visible", True), by_user=False)

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

