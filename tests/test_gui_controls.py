"""Every chat control as a user works it: real clicks, keys and menu items on the real window, with
the real engine thread and a tiny model, and what is then on screen and in the history."""

from __future__ import annotations

import threading

from gui_window import (
    WAIT_MS,
    click_action,
    click_row,
    click_show_earlier,
    click_text,
    in_view,
    item_named,
    items,
    menu_action,
    message_item,
    scroll_to_top,
    send,
    set_default_sampling,
    shown_text,
    wait_idle,
    window_fixture,  # noqa: F401 - the `window` fixture
)
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtTest import QTest

from engine import disk_cache
from engine.disk_cache import _deleted_conversations

LEFT = Qt.MouseButton.LeftButton


def _answer(win, conversation_id):
    return win.store.active_path(conversation_id)[-1]


def _cached_conversations(win) -> list[str]:
    """The conversations whose KV cache the engine holds (asked on the engine's own thread)."""
    engine = win.bridge.engine
    return engine.run(lambda _model: list(engine.caches.keys()) if engine.caches else []).result(WAIT_MS / 1000)


# --- 1. Stop ---

def test_clicking_stop_mid_answer_stops_it(qtbot, window):
    set_default_sampling(window, temperature=0.0, max_tokens=4000)
    send(qtbot, window, "Tell me a long story")
    qtbot.waitUntil(lambda: len(window.transcript.streamed_text()) > 20, timeout=WAIT_MS)
    assert window.composer.stop_button.isVisible() and not window.composer.send_button.isVisible()
    # The answer being written shows its speed as it goes.
    qtbot.waitUntil(lambda: "writing… · " in window.transcript.toPlainText()
                    and "tok/s" in window.transcript.toPlainText(), timeout=WAIT_MS)
    QTest.mouseClick(window.composer.stop_button, LEFT)
    wait_idle(qtbot, window)
    answer = _answer(window, window.chat.conversation_id)
    assert answer.finish_reason == "cancelled" and len(answer.content) >= 20
    assert answer.generation_tokens < 4000
    assert "stopped" in window.transcript.toPlainText()
    assert window.composer.send_button.isVisible() and not window.composer.stop_button.isVisible()


def test_the_stop_menu_item_stops_the_answer(qtbot, window):
    set_default_sampling(window, temperature=0.0, max_tokens=4000)
    send(qtbot, window, "Another long story")
    qtbot.waitUntil(lambda: len(window.transcript.streamed_text()) > 20, timeout=WAIT_MS)
    stop = menu_action(window, "Stop")
    assert stop.shortcut() == QKeySequence("Esc")
    stop.trigger()
    wait_idle(qtbot, window)
    assert _answer(window, window.chat.conversation_id).finish_reason == "cancelled"


# --- 2. New chat ---

def test_the_new_chat_button_and_cmd_n_start_an_empty_chat(qtbot, window):
    send(qtbot, window, "The first chat")
    wait_idle(qtbot, window)
    first = window.chat.conversation_id
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    assert window.chat.conversation_id is None
    assert "The first chat" not in window.transcript.toPlainText()
    assert not window.sidebar.list.selectionModel().hasSelection()
    QTest.keyClicks(window.composer.edit, "The second chat")
    QTest.mouseClick(window.composer.send_button, LEFT)
    assert window.composer.edit.toPlainText() == ""
    wait_idle(qtbot, window)
    second = window.chat.conversation_id
    assert second not in (None, first) and window.sidebar.model.rowCount() == 2
    window.composer.edit.setFocus()
    QTest.keySequence(window.composer.edit, QKeySequence(QKeySequence.StandardKey.New))
    assert window.chat.conversation_id is None and "The second chat" not in window.transcript.toPlainText()
    assert [m.content for m in window.store.active_path(first)][0] == "The first chat"


# --- 3. The Edit menu ---

def test_copy_and_select_all_in_an_answer(qtbot, window):
    store = window.store
    conv = store.create_conversation(title="Bread")
    question = store.add_user_message(conv.id, "How do I start?")
    answer = store.add_answer(conv.id, question.id, "Sourdough needs a starter and patience.")
    window.sidebar.refresh()
    click_row(window, "Bread")
    view = window.transcript
    assert "Sourdough needs a starter" in view.toPlainText()
    click_text(view, answer.id, "Sourdough", double=True)
    assert view.selected_text() == "Sourdough"
    menu_action(window, "Copy").trigger()
    assert QGuiApplication.clipboard().text() == "Sourdough"
    menu_action(window, "Select All").trigger()
    selected = view.selected_text()
    assert "How do I start?" in selected and "Sourdough needs a starter and patience." in selected
    QTest.keySequence(view, QKeySequence(QKeySequence.StandardKey.Copy))
    copied = QGuiApplication.clipboard().text()
    assert "How do I start?" in copied and "patience." in copied


def test_cut_paste_and_undo_in_the_message_box(qtbot, window):
    box = window.composer.edit
    QTest.mouseClick(box.viewport(), LEFT)
    QTest.keyClicks(box, "a draft to move")
    menu_action(window, "Select All").trigger()
    menu_action(window, "Cut").trigger()
    assert box.toPlainText() == "" and QGuiApplication.clipboard().text() == "a draft to move"
    menu_action(window, "Paste").trigger()
    menu_action(window, "Paste").trigger()
    assert box.toPlainText() == "a draft to movea draft to move"
    menu_action(window, "Undo").trigger()
    assert box.toPlainText() == "a draft to move"
    menu_action(window, "Redo").trigger()
    assert box.toPlainText() == "a draft to movea draft to move"


# --- 4. Nothing typed is lost ---

def test_stop_before_the_first_token_keeps_the_message(qtbot, window):
    gate = threading.Event()
    # The engine is busy with something else (as while a model loads), so the answer cannot begin.
    window.bridge.engine.run(lambda _model: gate.wait(WAIT_MS / 1000))
    send(qtbot, window, "Please keep this question")
    QTest.mouseClick(window.composer.stop_button, LEFT)
    gate.set()
    wait_idle(qtbot, window)
    conv = window.chat.conversation_id
    [user] = window.store.active_path(conv)
    assert user.content == "Please keep this question"
    shown = window.transcript.toPlainText()
    assert "Please keep this question" in shown and "not answered" in shown
    assert window.banner.isVisible() and "Stopped before the answer began" in window.banner_text.text()
    assert window.sidebar.model.index(0).data() == "Please keep this question"
    click_action(window.transcript, user.id, "retry")
    wait_idle(qtbot, window)
    user_again, answer = window.store.active_path(conv)
    assert user_again.id == user.id and answer.content and answer.finish_reason == "length"
    assert "not answered" not in window.transcript.toPlainText()


def test_a_message_too_big_for_the_context_stays_in_the_chat(qtbot, window):
    huge = "words upon words " * 3000
    send(qtbot, window, huge)
    wait_idle(qtbot, window)
    conv = window.chat.conversation_id
    [user] = window.store.active_path(conv)
    assert user.content == huge
    assert window.banner.isVisible() and "does not fit" in window.banner_text.text()
    assert "not answered" in window.transcript.toPlainText()
    send(qtbot, window, "A short one instead")
    wait_idle(qtbot, window)
    short_user, answer = window.store.active_path(conv)
    assert short_user.content == "A short one instead" and answer.content
    assert window.store.siblings(short_user.id) == [user.id, short_user.id]  # the long one is kept


def test_sending_with_no_model_keeps_the_text(qtbot, window):
    QTest.mouseClick(window.unload_button, LEFT)
    qtbot.waitUntil(lambda: window.model_state.text() == "No model loaded", timeout=WAIT_MS)
    QTest.mouseClick(window.composer.edit.viewport(), LEFT)
    QTest.keyClicks(window.composer.edit, "Is anybody there?")
    QTest.keyClick(window.composer.edit, Qt.Key.Key_Return)
    assert window.composer.edit.toPlainText() == "Is anybody there?"
    assert window.composer.notice.isVisible() and "No model is loaded" in window.composer.notice.text()
    assert window.store.list_conversations() == []


# --- 5. Answers go on in the background ---

def test_an_answer_goes_on_while_another_chat_is_open(qtbot, window):
    set_default_sampling(window, temperature=0.0, max_tokens=1500)
    send(qtbot, window, "Chat A, a long answer")
    conv_a = window.chat.conversation_id
    qtbot.waitUntil(lambda: len(window.transcript.streamed_text()) > 10, timeout=WAIT_MS)
    assert window.chat.busy
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    assert window.chat.conversation_id is None and not window.transcript.streaming
    assert window.sidebar.model.index(0).data() == "✎ Chat A, a long answer"
    assert window.composer.send_button.isVisible()  # Stop belongs to chat A, not here
    # A second message while chat A is being answered: refused, said so, kept in the box.
    QTest.keyClicks(window.composer.edit, "Chat B")
    QTest.keyClick(window.composer.edit, Qt.Key.Key_Return)
    assert window.composer.edit.toPlainText() == "Chat B"
    assert "Still answering in “Chat A, a long answer”" in window.composer.notice.text()
    # Back to chat A: still streaming, with what came meanwhile.
    click_row(window, "Chat A, a long answer")
    assert window.chat.conversation_id == conv_a and window.transcript.streaming
    assert window.composer.stop_button.isVisible()
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    wait_idle(qtbot, window)
    answer = _answer(window, conv_a)
    assert answer.finish_reason == "length" and answer.generation_tokens == 1500
    assert not window.composer.notice.isVisible()  # "still answering" no longer holds
    assert window.composer.edit.toPlainText() == "Chat B"
    assert window.sidebar.model.index(0).data() == "Chat A, a long answer"
    click_row(window, "Chat A, a long answer")
    assert not window.transcript.streaming and "tok/s" in window.transcript.toPlainText()


def test_leaving_a_chat_saves_its_cache_to_disk(qtbot, window):
    """Issue 13: a conversation's KV cache goes to disk when the user leaves it, so coming back
    (also after a restart, or from the terminal) reads only what is new."""
    from engine import disk_cache

    def saved() -> list:
        return sorted(disk_cache.folder().glob(f"*{disk_cache.SUFFIX}"))

    send(qtbot, window, "Remember this chat")
    wait_idle(qtbot, window)
    before = saved()
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    qtbot.waitUntil(lambda: len(saved()) > len(before), timeout=WAIT_MS)


# --- 6. Settings reach new chats at once, nothing leaks between chats ---

def test_a_new_chat_starts_from_the_settings_defaults_not_the_chat_before(qtbot, window):
    store = window.store
    pirate = store.create_conversation(title="Pirate chat", system_prompt="Talk like a pirate.",
                                       settings={"temperature": 1.5, "max_tokens": 5})
    store.add_user_message(pirate.id, "Ahoy")
    window.sidebar.refresh()
    click_row(window, "Pirate chat")
    assert window.chat.system_prompt == "Talk like a pirate." and window.chat.sampling.temperature == 1.5
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    send(qtbot, window, "A fresh start")
    wait_idle(qtbot, window)
    fresh = store.conversation(window.chat.conversation_id)
    assert fresh.system_prompt == window.prefs.get("generation/system_prompt") != "Talk like a pirate."
    assert fresh.settings["max_tokens"] == 12 and fresh.settings["temperature"] == 0.0


def test_changed_settings_reach_the_next_new_chat_at_once(qtbot, window):
    menu_action(window, "Settings…").trigger()
    page = window._settings_dialog.generation_page
    page.system_prompt.setPlainText("Answer in French.")
    page.sampling.max_tokens.setValue(7)
    window._settings_dialog.close()
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    send(qtbot, window, "Bonjour")
    wait_idle(qtbot, window)
    conv = window.store.conversation(window.chat.conversation_id)
    assert conv.system_prompt == "Answer in French." and conv.settings["max_tokens"] == 7
    assert _answer(window, conv.id).generation_tokens == 7


def test_a_preset_marked_default_applies_to_new_chats(qtbot, window):
    menu_action(window, "Settings…").trigger()
    presets = window._settings_dialog.generation_page.presets
    presets.name.setText("Terse")
    presets.prompt.setPlainText("Be terse.")
    presets.make_default.setChecked(True)
    QTest.mouseClick(presets.save_button, LEFT)
    qtbot.waitUntil(lambda: presets.list.count() and presets.list.item(0).text() == "Terse (default)",
                    timeout=WAIT_MS)
    window._settings_dialog.close()
    send(qtbot, window, "Under the preset")  # the empty chat open since the start
    wait_idle(qtbot, window)
    assert window.store.conversation(window.chat.conversation_id).system_prompt == "Be terse."
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    send(qtbot, window, "Again under the preset")
    wait_idle(qtbot, window)
    assert window.store.conversation(window.chat.conversation_id).system_prompt == "Be terse."


# --- 7. Delete key, Cmd+W, Cmd+Q ---

def test_the_delete_key_deletes_the_selected_chat_with_undo_and_frees_its_cache(qtbot, window):
    send(qtbot, window, "Delete me")
    wait_idle(qtbot, window)
    conv = window.chat.conversation_id
    assert conv in _cached_conversations(window)
    click_row(window, "Delete me")
    QTest.keyClick(window.sidebar.list, Qt.Key.Key_Delete)
    assert window.sidebar.model.rowCount() == 0 and window.chat.conversation_id is None
    assert window.sidebar.undo_bar.isVisible() and "Delete me" in window.sidebar.undo_label.text()
    assert "Delete me" not in window.transcript.toPlainText()
    assert conv not in _cached_conversations(window)
    assert conv not in _deleted_conversations(disk_cache.folder())  # Undo may still bring it back
    QTest.mouseClick(window.sidebar.undo_button, LEFT)
    assert window.sidebar.model.rowCount() == 1
    click_row(window, "Delete me")
    QTest.keyClick(window.sidebar.list, Qt.Key.Key_Backspace)  # the Mac keyboard's delete key
    assert window.sidebar.model.rowCount() == 0
    window.sidebar.commit_deletes()
    assert window.store.list_conversations() == []
    _cached_conversations(window)  # the engine has served the final forget before this
    assert conv in _deleted_conversations(disk_cache.folder())  # no process may save it again


def test_cmd_w_closes_the_window_and_cmd_q_quits(qtbot, window):
    window.keeps_running_when_closed = True  # as on a Mac
    menu_action(window, "Close Window").trigger()
    assert not window.isVisible() and window.bridge.engine._thread.isRunning()
    QGuiApplication.instance().applicationStateChanged.emit(Qt.ApplicationState.ApplicationActive)  # Dock click
    assert window.isVisible()
    send(qtbot, window, "Still here")
    wait_idle(qtbot, window)
    assert _answer(window, window.chat.conversation_id).content
    menu_action(window, "Quit Hearth").trigger()  # Cmd+Q on a Mac
    assert not window.isVisible() and window.bridge.engine._thread.isFinished()


def test_close_window_quits_where_closing_the_only_window_means_quit(qtbot, window):
    window.keeps_running_when_closed = False  # Linux and Windows
    QTest.keySequence(window, QKeySequence(QKeySequence.StandardKey.Close))
    assert not window.isVisible() and window.bridge.engine._thread.isFinished()


# --- 8. The context meter ---

def test_the_context_meter_shows_the_open_chats_count(qtbot, window):
    send(qtbot, window, "Short")
    wait_idle(qtbot, window)
    conv_a = window.chat.conversation_id
    answer_a = _answer(window, conv_a)
    used_a = answer_a.prompt_tokens + answer_a.generation_tokens
    assert window.context_meter.value() == used_a > 0
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    assert window.context_meter.value() == 0
    set_default_sampling(window, temperature=0.0, max_tokens=1500)
    send(qtbot, window, "A much longer question than the first one, with many more words in it")
    qtbot.waitUntil(lambda: len(window.transcript.streamed_text()) > 10, timeout=WAIT_MS)
    assert window.context_meter.value() != used_a
    click_row(window, "Short")  # chat B goes on answering meanwhile
    assert window.context_meter.value() == used_a
    wait_idle(qtbot, window)
    assert window.context_meter.value() == used_a and window.context_meter.maximum() == 4096


# --- Finding one's place: earlier messages, branches, search hits, the highlighted chat ---

def _long_conversation(store, title: str, exchanges: int, parent=None, conversation=None, start=0):
    conversation = conversation or store.create_conversation(title=title)
    first = None
    for i in range(start, start + exchanges):
        question = store.add_user_message(conversation.id, f"question {i}", parent_id=parent,
                                          branch=parent is None)
        parent = store.add_answer(conversation.id, question.id, f"answer {i}").id
        first = first or parent
    return conversation, first


def test_show_earlier_messages_keeps_the_reading_place(qtbot, window):
    _long_conversation(window.store, "Long one", 75)
    window.sidebar.refresh()
    click_row(window, "Long one")
    view = window.transcript
    assert "Show 50 earlier messages" in view.toPlainText() and not in_view(view, "question 25")
    assert in_view(view, "answer 74")
    scroll_to_top(view)
    click_show_earlier(view)
    assert "question 0" in view.toPlainText()
    assert in_view(view, "question 25") and not in_view(view, "answer 74")


def test_branch_arrows_keep_the_message_in_view(qtbot, window):
    store = window.store
    conv, first_answer = _long_conversation(store, "Branchy", 20)
    question = store.message(first_answer).parent_id
    second_answer = store.add_answer(conv.id, question, "another answer 0").id
    _long_conversation(store, "", 20, parent=second_answer, conversation=conv, start=100)
    window.sidebar.refresh()
    click_row(window, "Branchy")
    view = window.transcript
    assert "2/2" in view.toPlainText() and in_view(view, "question 119")
    scroll_to_top(view)
    click_action(view, second_answer, "prev")
    assert "1/2" in view.toPlainText() and "question 19" in view.toPlainText()
    assert in_view(view, "1/2") and not in_view(view, "question 19")


def test_a_search_hit_opens_the_chat_at_the_match(qtbot, window):
    store = window.store
    conv, _ = _long_conversation(store, "Haystack", 10)
    last = store.active_path(conv.id)[-1]
    needle = store.add_user_message(conv.id, "somewhere here is the word marzipan, once", parent_id=last.id)
    tail = store.add_answer(conv.id, needle.id, "answer after the needle")
    _long_conversation(store, "", 60, parent=tail.id, conversation=conv, start=200)
    window.sidebar.refresh()
    QTest.mouseClick(window.sidebar.search, LEFT)
    QTest.keyClicks(window.sidebar.search, "marzipan")
    click_row(window, "Haystack")
    view = window.transcript
    assert window.chat.conversation_id == conv.id and "question 259" in view.toPlainText()
    assert view.selected_text().lower() == "marzipan" and in_view(view, "marzipan")


def test_the_sidebar_highlight_stays_on_the_open_chat(qtbot, window):
    send(qtbot, window, "First of two")
    wait_idle(qtbot, window)
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    send(qtbot, window, "Second of two")
    wait_idle(qtbot, window)
    click_row(window, "First of two")
    open_id = window.chat.conversation_id

    def highlighted() -> list[str]:
        return [index.data() for index in window.sidebar.list.selectionModel().selectedIndexes()]

    assert highlighted() == ["First of two"]
    QTest.mouseClick(window.sidebar.search, LEFT)
    QTest.keyClicks(window.sidebar.search, "Second")
    window.sidebar.search.clear()
    assert highlighted() == ["First of two"]
    send(qtbot, window, "A follow-up that moves this chat to the top")
    wait_idle(qtbot, window)
    assert window.chat.conversation_id == open_id and highlighted() == ["First of two"]


def test_the_actions_on_each_message_work_when_clicked(qtbot, window):
    store = window.store
    conv = store.create_conversation(title="Links", settings={"temperature": 0.0, "max_tokens": 12})
    question = store.add_user_message(conv.id, "Show me code")
    answer = store.add_answer(conv.id, question.id, "Here:\n\n```python\nprint('hi')\n```\n",
                              finish_reason="stop")
    window.sidebar.refresh()
    click_row(window, "Links")
    view = window.transcript
    click_text(view, answer.id, "Copy", after="python")  # the code block's own Copy
    assert QGuiApplication.clipboard().text().strip() == "print('hi')"
    QGuiApplication.clipboard().clear()
    click_action(view, answer.id, "copyCode0")  # the same, as a button in the message's actions
    assert QGuiApplication.clipboard().text() == "print('hi')"
    click_action(view, answer.id, "copy")
    assert QGuiApplication.clipboard().text() == "Here:\n\n```python\nprint('hi')\n```\n"
    click_action(view, answer.id, "regenerate")
    wait_idle(qtbot, window)
    first, second = store.siblings(store.active_path(conv.id)[-1].id)
    assert "2/2" in view.toPlainText() and store.active_path(conv.id)[-1].id == second
    cut_short = store.message(second)
    assert cut_short.finish_reason == "length"
    click_action(view, second, "continue")
    wait_idle(qtbot, window)
    continued = store.message(second)
    assert continued.content.startswith(cut_short.content.rstrip()) and len(continued.content) > len(cut_short.content)
    # Edit in place: the message becomes an editor holding its text; Save sends the new version.
    click_action(view, question.id, "edit")
    editor = item_named(message_item(view, question.id), "editor", visible_only=False)
    assert editor.isVisible() and editor.property("text") == "Show me code"
    QTest.keySequence(view, QKeySequence(QKeySequence.StandardKey.SelectAll))
    QTest.keyClicks(view, "Show me other code")
    QTest.keyClick(view, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # Save, from the keyboard
    wait_idle(qtbot, window)
    edited, answer = store.active_path(conv.id)
    assert edited.content == "Show me other code" and store.siblings(edited.id) == [question.id, edited.id]
    assert answer.content and "Show me other code" in view.toPlainText()


def test_editing_in_place_is_cancelled_with_escape_and_saved_with_a_click(qtbot, window):
    store = window.store
    conv = store.create_conversation(title="Keep")
    question = store.add_user_message(conv.id, "Leave me be")
    store.add_answer(conv.id, question.id, "Fine.", finish_reason="stop")
    window.sidebar.refresh()
    click_row(window, "Keep")
    view = window.transcript
    click_action(view, question.id, "edit")
    QTest.keyClicks(view, " or not")
    QTest.keyClick(view, Qt.Key.Key_Escape)
    editor = item_named(message_item(view, question.id), "editor", visible_only=False)
    assert not editor.isVisible() and not window.chat.busy
    assert [m.content for m in store.active_path(conv.id)] == ["Leave me be", "Fine."]
    click_action(view, question.id, "edit")
    QTest.keyClicks(view, ", please")
    click_action(view, question.id, "save")
    wait_idle(qtbot, window)
    assert store.active_path(conv.id)[0].content == "Leave me be, please"


def test_a_messages_actions_show_on_hover_and_on_keyboard_focus(qtbot, window):
    store = window.store
    conv = store.create_conversation(title="Hover")
    question = store.add_user_message(conv.id, "Anything?")
    answer = store.add_answer(conv.id, question.id, "Something.", finish_reason="stop")
    window.sidebar.refresh()
    click_row(window, "Hover")
    view = window.transcript
    actions = item_named(message_item(view, answer.id), "actions")
    below_the_messages = QPoint(view.width() // 2, view.height() - 5)
    QTest.mouseMove(view, below_the_messages)
    assert actions.opacity() == 0
    body = item_named(message_item(view, answer.id), "body")
    QTest.mouseMove(view, body.mapToScene(QPointF(5, 5)).toPoint())
    assert actions.opacity() == 1
    QTest.mouseMove(view, below_the_messages)
    assert actions.opacity() == 0
    # From the keyboard: Tab into the transcript reaches the answer's buttons, and they show.
    view.setFocus(Qt.FocusReason.TabFocusReason)
    for _ in range(12):
        focused = view.quickWindow().activeFocusItem()
        if focused is not None and focused.objectName() == "copy" and focused.parentItem() is actions:
            break
        QTest.keyClick(view, Qt.Key.Key_Tab)
    else:
        raise AssertionError("Tab never reached the answer's Copy button")
    assert actions.opacity() == 1
    QTest.keyClick(view, Qt.Key.Key_Space)
    assert QGuiApplication.clipboard().text() == "Something."


def test_an_edit_in_progress_survives_the_answer_ending_and_a_chat_switch(qtbot, window):
    set_default_sampling(window, temperature=0.0, max_tokens=1500)
    send(qtbot, window, "Tell me about bread")
    qtbot.waitUntil(lambda: len(window.transcript.streamed_text()) > 10, timeout=WAIT_MS)
    conv = window.chat.conversation_id
    view = window.transcript
    question = window.store.active_path(conv)[0]
    click_action(view, question.id, "edit")
    QTest.keyClicks(view, " and butter")
    wait_idle(qtbot, window)  # the answer ends: the list is rebuilt with it
    editor = item_named(message_item(view, question.id), "editor")
    assert editor is not None and editor.property("text") == "Tell me about bread and butter"
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    click_row(window, "Tell me about bread")
    editor = item_named(message_item(view, question.id), "editor")
    assert editor is not None and editor.property("text") == "Tell me about bread and butter"
    set_default_sampling(window, temperature=0.0, max_tokens=12)
    window.chat.set_sampling(window.prefs.sampling())
    click_action(view, question.id, "save")
    wait_idle(qtbot, window)
    assert window.store.active_path(conv)[0].content == "Tell me about bread and butter"


def test_a_keyboard_user_moves_between_messages_and_edits_one(qtbot, window):
    store = window.store
    conv = store.create_conversation(title="Keys", settings={"temperature": 0.0, "max_tokens": 12})
    first = store.add_user_message(conv.id, "First question")
    answer = store.add_answer(conv.id, first.id, "First answer.", finish_reason="stop")
    second = store.add_user_message(conv.id, "Second question", parent_id=answer.id)
    store.add_answer(conv.id, second.id, "Second answer.", finish_reason="stop")
    window.sidebar.refresh()
    click_row(window, "Keys")
    view = window.transcript
    view.setFocus(Qt.FocusReason.TabFocusReason)
    focused = view.quickWindow().activeFocusItem
    for _ in range(3):  # from the last message, where the view ends, up to the first
        QTest.keyClick(view, Qt.Key.Key_Up)
    assert focused().objectName() == f"message:{first.id}"
    assert item_named(message_item(view, first.id), "actions").opacity() == 1
    for _ in range(12):
        if focused().objectName() == "edit":
            break
        QTest.keyClick(view, Qt.Key.Key_Tab)
    else:
        raise AssertionError("Tab never reached the message's Edit button")
    QTest.keyClick(view, Qt.Key.Key_Space)
    assert focused().objectName() == "editor"
    QTest.keySequence(view, QKeySequence(QKeySequence.StandardKey.SelectAll))
    QTest.keyClicks(view, "First question, reworded")
    QTest.keyClick(view, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    wait_idle(qtbot, window)
    edited, new_answer = store.active_path(conv.id)
    assert edited.content == "First question, reworded" and store.siblings(edited.id) == [first.id, edited.id]
    assert new_answer.content


def test_markup_in_messages_shows_as_text(qtbot, window):
    store = window.store
    conv = store.create_conversation(title="Markup")
    question = store.add_user_message(conv.id, "Is <i>this</i> **bold**?")
    answer = store.add_answer(conv.id, question.id, "Try <script>alert('x')</script>, <b>not bold</b> and "
                              "[a link](javascript:alert(1)).", finish_reason="stop")
    window.sidebar.refresh()
    click_row(window, "Markup")
    view = window.transcript
    [user_text] = [shown_text(i) for i in items(message_item(view, question.id)) if i.objectName() == "body"]
    assert user_text == "Is <i>this</i> **bold**?"  # a user's message is shown exactly as typed
    [answer_text] = [shown_text(i) for i in items(message_item(view, answer.id)) if i.objectName() == "body"]
    assert answer_text == "Try <script>alert('x')</script>, <b>not bold</b> and [a link](javascript:alert(1))."


def test_the_dark_setting_reaches_the_transcript_and_its_code(qtbot, window):
    from PySide6.QtGui import QColor, QTextCursor

    from app.gui import markdown

    store = window.store
    conv = store.create_conversation(title="Night")
    question = store.add_user_message(conv.id, "Code, please")
    answer = store.add_answer(conv.id, question.id, "```python\nprint('night')\n```", finish_reason="stop")
    window.sidebar.refresh()
    click_row(window, "Night")
    view = window.transcript

    def code_background() -> str:
        body = item_named(message_item(view, answer.id), "body")
        wrapper = body.property("textDocument")  # its document's Python handle lives as long as it
        cursor = QTextCursor(wrapper.textDocument().find("print"))
        return cursor.currentTable().format().background().color().name()

    assert code_background() == markdown.LIGHT.code_bg
    menu_action(window, "Settings…").trigger()
    page = window._settings_dialog.appearance_page
    page.theme.setFocus()
    while page.theme.currentData() != "dark":
        QTest.keyClick(page.theme, Qt.Key.Key_Down)
    window._settings_dialog.close()
    qtbot.waitUntil(lambda: code_background() == markdown.DARK.code_bg, timeout=WAIT_MS)  # the palette event
    body = item_named(message_item(view, answer.id), "body")
    assert QColor(body.property("color")).lightness() > 180  # light text on the dark list
    assert QColor(view.rootObject().property("color")).lightness() < 80
    window.prefs.set("appearance/theme", "system")


def _accessible_tree(interface, depth: int = 0):
    """(role, name, interface) of everything a screen reader finds under `interface`, shown or not
    ignored."""
    from PySide6.QtGui import QAccessible

    if interface is None or depth > 12:
        return
    yield interface.role(), interface.text(QAccessible.Text.Name), interface
    for i in range(interface.childCount()):
        yield from _accessible_tree(interface.child(i), depth + 1)


def test_a_screen_reader_reads_the_messages_and_presses_their_buttons(qtbot, window):
    from PySide6.QtGui import QAccessible

    store = window.store
    conv = store.create_conversation(title="Spoken")
    question = store.add_user_message(conv.id, "How do I start?")
    store.add_answer(conv.id, question.id, "**Sourdough** needs a starter.", finish_reason="stop")
    window.sidebar.refresh()
    click_row(window, "Spoken")
    tree = list(_accessible_tree(QAccessible.queryAccessibleInterface(window.transcript)))
    items = {name: interface for role, name, interface in tree if role == QAccessible.Role.ListItem}
    assert "You said: How do I start?" in items
    assert "Assistant said: Sourdough needs a starter." in items  # the text as shown, not its Markdown
    answer_buttons = {name: interface for role, name, interface in _accessible_tree(items["Assistant said: "
                      "Sourdough needs a starter."]) if role == QAccessible.Role.Button}
    assert {"Copy message", "Regenerate answer"} <= set(answer_buttons)
    assert "Edit message" not in answer_buttons  # answers are regenerated, not edited
    press = answer_buttons["Copy message"].actionInterface()
    press.doAction(press.pressAction())
    assert QGuiApplication.clipboard().text() == "**Sourdough** needs a starter."


def _in_next_dialog(kind, act) -> None:
    """Work the modal dialog of this kind that the next click opens, as a user would."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def run() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, kind), dialog
        act(dialog)

    QTimer.singleShot(0, run)


def test_the_system_prompt_and_sampling_buttons_set_this_chat(qtbot, window):
    from PySide6.QtWidgets import QDialogButtonBox

    from app.gui.sampling_dialog import SamplingDialog
    from app.gui.system_prompt import SystemPromptDialog

    def choose_preset(dialog) -> None:
        while dialog.presets.currentText() != "Concise":
            QTest.keyClick(dialog.presets, Qt.Key.Key_Down)
        assert dialog.editor.toPlainText().startswith("You are a helpful assistant. Answer briefly")
        dialog.editor.setPlainText("Answer like a sommelier.")
        QTest.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok), LEFT)

    _in_next_dialog(SystemPromptDialog, choose_preset)
    QTest.mouseClick(window.system_button, LEFT)

    def lower_max_tokens(dialog) -> None:
        dialog.form.max_tokens.setValue(5)
        QTest.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok), LEFT)

    _in_next_dialog(SamplingDialog, lower_max_tokens)
    QTest.mouseClick(window.sampling_button, LEFT)
    send(qtbot, window, "Which wine?")
    wait_idle(qtbot, window)
    conv = window.store.conversation(window.chat.conversation_id)
    assert conv.system_prompt == "Answer like a sommelier." and conv.settings["max_tokens"] == 5
    assert _answer(window, conv.id).generation_tokens == 5
    QTest.mouseClick(window.sidebar.new_button, LEFT)  # the next chat starts from the defaults again
    assert window.chat.system_prompt == window.prefs.get("generation/system_prompt")
    assert window.chat.sampling.max_tokens == 12
