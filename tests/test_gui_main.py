"""The main window with the real engine thread on tiny models (pytest-qt, offscreen)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_window import (
    WAIT_MS,
    click_action,
    click_show_earlier,
    scroll_to_top,
    window_fixture,  # noqa: F401 - the `window` fixture
)
from gui_window import send as _send
from gui_window import wait_idle as _wait_idle
from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest

from engine.history import HistoryStore
from engine.sampling import SamplingSettings


def test_send_streams_and_saves_the_exchange(qtbot, window):
    _send(qtbot, window, "Hello there")
    assert window.chat.busy and window.composer.stop_button.isVisible()
    _wait_idle(qtbot, window)
    store = window.store
    [summary] = store.list_conversations()
    user, answer = store.active_path(summary.id)
    assert user.content == "Hello there" and answer.finish_reason == "length" and answer.content
    assert answer.generation_tokens == 12 and answer.model == str(window.chat.model_ref)
    shown = window.transcript.toPlainText()
    assert "Hello there" in shown and "tok/s" in shown and "ms to first token" in shown
    assert f"Assistant · {Path(answer.model).name} · " in shown  # the answer's model, by name
    assert window.context_meter.value() > 0
    assert window.sidebar.model.rowCount() == 1


def test_shift_enter_adds_a_line_and_enter_sends(qtbot, window):
    window.composer.edit.setPlainText("line one")
    window.composer.edit.moveCursor(window.composer.edit.textCursor().MoveOperation.End)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert not window.chat.busy and window.composer.edit.toPlainText() == "line one\n"
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    assert window.chat.busy
    _wait_idle(qtbot, window)


def test_stop_keeps_the_partial_answer(qtbot, window):
    window.chat.sampling = SamplingSettings(temperature=0.0, max_tokens=4000)
    _send(qtbot, window, "Tell me a long story")
    qtbot.waitUntil(lambda: len(window.transcript.streamed_text()) > 20, timeout=WAIT_MS)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
    _wait_idle(qtbot, window)
    [summary] = window.store.list_conversations()
    answer = window.store.active_path(summary.id)[-1]
    assert answer.finish_reason == "cancelled" and len(answer.content) >= 20
    assert answer.generation_tokens < 4000
    assert "stopped" in window.transcript.toPlainText()


def test_regenerate_edit_and_branch_arrows(qtbot, window):
    window.chat.sampling = SamplingSettings(temperature=1.0, max_tokens=8, seed=1)
    _send(qtbot, window, "First question")
    _wait_idle(qtbot, window)
    store, conv = window.store, window.chat.conversation_id
    user, first = store.active_path(conv)
    window.chat.sampling = SamplingSettings(temperature=1.0, max_tokens=8, seed=2)
    view = window.transcript
    click_action(view, first.id, "regenerate")
    _wait_idle(qtbot, window)
    second = store.active_path(conv)[-1]
    assert store.siblings(second.id) == [first.id, second.id] and second.content != first.content
    assert "2/2" in view.toPlainText()
    click_action(view, second.id, "prev")
    assert store.active_path(conv)[-1].id == first.id and "1/2" in view.toPlainText()
    click_action(view, user.id, "edit")
    QTest.keySequence(view, QKeySequence(QKeySequence.StandardKey.SelectAll))
    QTest.keyClicks(view, "An edited question")
    click_action(view, user.id, "save")
    _wait_idle(qtbot, window)
    edited_user, edited_answer = store.active_path(conv)
    assert edited_user.content == "An edited question" and store.siblings(edited_user.id) == [user.id, edited_user.id]
    assert edited_answer.parent_id == edited_user.id and edited_answer.content


def test_deleting_the_conversation_being_answered(qtbot, window):
    window.chat.sampling = SamplingSettings(temperature=0.0, max_tokens=4000)
    _send(qtbot, window, "Doomed chat")
    conv = window.chat.conversation_id
    qtbot.waitUntil(lambda: len(window.transcript.streamed_text()) > 10, timeout=WAIT_MS)
    window.sidebar.delete(conv)
    _wait_idle(qtbot, window)
    assert window.chat.conversation_id is None and window.sidebar.model.rowCount() == 0
    window.sidebar.undo_delete()  # the undo brings it back, answer kept
    assert window.sidebar.model.rowCount() == 1
    assert window.store.active_path(conv)[-1].finish_reason == "cancelled"
    window.sidebar.delete(conv)
    window.sidebar.commit_deletes()
    assert window.store.list_conversations() == []


def test_quit_mid_answer_saves_it_and_stops_the_engine(qtbot, window, hearth_home):
    window.chat.sampling = SamplingSettings(temperature=0.0, max_tokens=4000)
    _send(qtbot, window, "Quit while answering")
    qtbot.waitUntil(lambda: len(window.transcript.streamed_text()) > 10, timeout=WAIT_MS)
    conv = window.chat.conversation_id
    window.close()
    engine_thread = window.bridge.engine._thread
    assert engine_thread.isFinished()
    with HistoryStore(hearth_home / "data" / "history.sqlite3") as store:
        answer = store.active_path(conv)[-1]
    assert answer.status == "complete" and answer.finish_reason == "cancelled" and len(answer.content) > 10


def test_a_broken_model_shows_a_notice_with_a_way_forward(qtbot, window, tmp_path, model_copy):
    broken = model_copy("spm_legacy", name="broken-model")
    (broken / "tokenizer.model").unlink()
    window.bridge.load(str(broken))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT_MS)
    assert "no tokenizer" in window.banner_text.text() and window.banner_action.isVisible()


def test_a_huge_paste_is_refused_with_a_clear_message(qtbot, window):
    data = QMimeData()
    data.setText("x" * 2_000_000)
    window.composer.edit.insertFromMimeData(data)
    assert window.composer.edit.toPlainText() == ""
    assert "KB" in window.composer.notice.text() and window.composer.notice.isVisible()
    small = QMimeData()
    small.setText("a normal paste")
    window.composer.edit.insertFromMimeData(small)
    assert window.composer.edit.toPlainText() == "a normal paste"


def test_search_shows_matching_conversations(qtbot, window):
    _send(qtbot, window, "Tell me about sourdough bread")
    _wait_idle(qtbot, window)
    window.chat.new_chat()
    _send(qtbot, window, "Something else entirely")
    _wait_idle(qtbot, window)
    window.sidebar.search.setText("sourdough")
    model = window.sidebar.model
    assert model.rowCount() >= 1
    from app.gui.sidebar import SNIPPET_ROLE

    assert all("sourdough" in (model.index(r).data(SNIPPET_ROLE) or "").lower() for r in range(model.rowCount()))
    window.sidebar.search.clear()
    assert model.rowCount() == 2


def test_conversation_list_model_passes_the_model_tester(qtmodeltester, qtbot, window):
    _send(qtbot, window, "hello")
    _wait_idle(qtbot, window)
    qtmodeltester.check(window.sidebar.model)


def test_the_transcript_models_pass_the_model_tester(qtmodeltester, qtbot, window):
    _send(qtbot, window, "hello")
    _wait_idle(qtbot, window)
    qtmodeltester.check(window.transcript.model)
    window.transcript.begin_answer()  # as an answer starts: its row, and its pieces as they finish
    window.transcript.append_text("A paragraph.\n\nAnother one", 4)
    window.transcript.model.render_stream()
    qtmodeltester.check(window.transcript.model)
    qtmodeltester.check(window.transcript.model.pieces)


def test_every_control_has_an_accessible_name(qtbot, window):
    from PySide6.QtWidgets import (
        QAbstractButton,
        QAbstractItemView,
        QComboBox,
        QLineEdit,
        QPlainTextEdit,
        QTextEdit,
    )

    kinds = (QAbstractButton, QLineEdit, QComboBox, QPlainTextEdit, QTextEdit, QAbstractItemView)
    controls = [w for kind in kinds for w in window.findChildren(kind)]
    assert len(controls) > 8
    unnamed = [f"{type(w).__name__} in {type(w.parent()).__name__} {w.objectName()!r}"
               for w in controls if not w.accessibleName()]
    assert unnamed == []


def test_the_window_appears_before_mlx_is_imported(tmp_path):
    child = textwrap.dedent("""
        import os, sys, time
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from app.gui.app import build_window
        window = build_window(app)
        window.show()
        app.processEvents()
        print("visible", window.isVisible(), "mlx", "mlx.core" in sys.modules, "mlx_lm", "mlx_lm" in sys.modules)
        window.close()
    """)
    env = dict(os.environ, HEARTH_HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert "visible True mlx False mlx_lm False" in out.stdout, out.stderr[-2000:]


def test_a_long_conversation_opens_with_its_latest_messages(qtbot, window):
    store = window.store
    conv = store.create_conversation(title="Long one")
    parent = None
    for i in range(150):
        message = store.add_user_message(conv.id, f"question {i}", parent_id=parent) if i % 2 == 0 else \
            store.add_answer(conv.id, parent, f"answer {i}")
        parent = message.id
    window.chat.open(conv.id)
    text = window.transcript.toPlainText()
    assert "Show 50 earlier messages" in text and "answer 149" in text and "question 48" not in text
    scroll_to_top(window.transcript)
    click_show_earlier(window.transcript)
    text = window.transcript.toPlainText()
    assert "question 0" in text and "Show 50 earlier" not in text


def _streamed_documents(view):
    """The QQuickTextDocuments of what the answer being written shows (its finished blocks and its
    tail); each one's textDocument() handle lives as long as it does."""
    from gui_window import items

    item = view.message_item(len(view.shown_messages()))
    return [i.property("textDocument") for i in items(item) if i.objectName() in ("piece", "tail") and i.isVisible()]


def _highlighted(documents, word: str) -> bool:
    """Whether `word` shows in a colour of its own (Pygments' highlighting), not the text's."""
    from PySide6.QtGui import QTextCursor

    for wrapper in documents:
        document = wrapper.textDocument()
        found = document.find(word)
        if not found.isNull():
            cursor = QTextCursor(document)
            cursor.setPosition(found.selectionStart() + 1)
            colour = cursor.charFormat().foreground().color().name()
            return colour not in ("#000000", "#ffffff") and cursor.charFormat().fontWeight() > 400
    return False


def test_a_streamed_answer_shows_its_markdown_while_it_streams(qtbot, window):
    """Markdown is rendered live: a code block is highlighted before the answer ends. The model's
    text is scripted (a tiny model writes no code); the engine thread, bridge, chat and transcript
    are the real ones."""
    import threading

    from engine.events import Finished, TextChunk

    gate = threading.Event()
    engine = window.bridge.engine
    pieces = ["Here is **some code**:\n\n", "```python\n", "def greet():\n", "    return 'hi'\n", "```\n\n",
              "That is all"]

    def scripted(handle) -> None:
        for piece in pieces:
            handle.emit(TextChunk(handle.id, piece))
        gate.wait(WAIT_MS / 1000)  # the answer goes on until the test has looked
        handle.emit(Finished(handle.id, "stop", text="".join(pieces), generation_tokens=len(pieces)))

    engine.generate = lambda request, on_event=None: engine._submit(scripted, on_event)
    view = window.transcript
    changed_rows: list[tuple[int, int]] = []
    view.model.dataChanged.connect(lambda top, bottom, _roles: changed_rows.append((top.row(), bottom.row())))
    _send(qtbot, window, "Show me code")
    qtbot.waitUntil(lambda: _highlighted(_streamed_documents(view), "def"), timeout=WAIT_MS)
    assert window.chat.busy and view.streaming
    shown = "".join(wrapper.textDocument().toPlainText() for wrapper in _streamed_documents(view))
    assert "some code" in shown and "**" not in shown and "```" not in shown and "That is all" in shown
    streaming_row = len(view.shown_messages())  # after the question: the answer being written
    assert changed_rows and set(changed_rows) == {(streaming_row, streaming_row)}  # no other row re-laid out
    gate.set()
    _wait_idle(qtbot, window)
    assert not view.streaming and "That is all" in view.toPlainText()


def test_sampling_is_per_chat_and_saved_with_it(qtbot, window):
    from app.gui.sampling_dialog import SamplingDialog

    _send(qtbot, window, "hello")
    _wait_idle(qtbot, window)
    conv = window.chat.conversation_id
    dialog = SamplingDialog(window.chat.sampling, window)
    dialog.temperature.setValue(0.3)
    dialog.use_seed.setChecked(True)
    dialog.seed.setValue(42)
    dialog.stop.setPlainText("END\n\n### User")
    dialog._accept()
    assert dialog.result_settings.stop == ("END", "### User")
    window.chat.set_sampling(dialog.result_settings)
    assert window.store.conversation(conv).settings["temperature"] == 0.3
    window.chat.new_chat()
    window.chat.sampling = SamplingSettings()
    window.chat.open(conv)
    assert window.chat.sampling.temperature == 0.3 and window.chat.sampling.seed == 42
    assert window.chat.sampling.stop == ("END", "### User")
    dialog.top_p.setValue(0.0)
    dialog.temperature.setValue(0.0)
    dialog._accept()
    assert dialog.result_settings.temperature == 0.0


def test_the_context_note_says_which_messages_no_longer_fit(qtbot, window):
    store = window.store
    conv = store.create_conversation(title="Long context", settings={"temperature": 0.0, "max_tokens": 8})
    parent = None
    for i in range(12):
        question = store.add_user_message(conv.id, f"question {i}: " + "many words here " * 60, parent_id=parent)
        parent = store.add_answer(conv.id, question.id, f"answer {i}: " + "more words " * 60).id
    window.chat.open(conv.id)
    _send(qtbot, window, "the newest question")
    _wait_idle(qtbot, window)
    note = window.context_note.text()
    assert note.startswith("Left out, no longer fitting: the ") and "“question 0:" in note
    assert window.context_meter.value() <= window.context_meter.maximum() == 4096


def test_window_size_splitter_and_last_conversation_are_restored(qtbot, window):
    from PySide6.QtWidgets import QApplication

    from app.gui.app import build_window

    _send(qtbot, window, "remember me")
    _wait_idle(qtbot, window)
    conv = window.chat.conversation_id
    window.resize(1200, 650)
    window.splitter.setSizes([320, 880])
    size, splitter_state = (window.width(), window.height()), window.splitter.saveState()
    window.close()
    assert window.prefs.raw().value("window/splitter") == splitter_state
    again = build_window(QApplication.instance())
    qtbot.addWidget(again)
    again.show()
    qtbot.waitUntil(lambda: again.chat.conversation_id == conv, timeout=WAIT_MS)
    # The offscreen screen is 800 pixels wide, so Qt clamps a restored width (and with it the
    # splitter) to fit; the height comes back exactly.
    assert again.height() == size[1] == 650
    assert "remember me" in again.transcript.toPlainText()
    answer = again.store.active_path(conv)[-1]
    # The meter shows the reopened chat's count once the model (and its context length) is back.
    qtbot.waitUntil(lambda: again.context_meter.maximum() == 4096, timeout=WAIT_MS)
    assert again.context_meter.value() == answer.prompt_tokens + answer.generation_tokens > 0
    again.close()


def test_menus_follow_the_platform_shortcuts(window):
    from PySide6.QtGui import QKeySequence

    actions = {a.text(): a for menu in window.menuBar().findChildren(type(window.menuBar().actions()[0].menu()))
               for a in menu.actions()}
    assert actions["New Chat"].shortcut() == QKeySequence(QKeySequence.StandardKey.New)
    preferences = QKeySequence(QKeySequence.StandardKey.Preferences)  # Cmd+, on a Mac; none elsewhere
    assert actions["Settings…"].shortcut() == (QKeySequence("Ctrl+,") if preferences.isEmpty() else preferences)
    assert actions["Find in Conversations"].shortcut() == QKeySequence(QKeySequence.StandardKey.Find)
    assert actions["Quit Hearth"].menuRole() == actions["Quit Hearth"].MenuRole.QuitRole
    assert {"Undo", "Redo", "Cut", "Copy", "Paste", "Select All"} <= set(actions)
