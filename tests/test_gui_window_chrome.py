"""The window around the chat, worked as a user works it: the header (sidebar button, model picker,
state, system prompt line), the sidebar (date groups, the ⋯ menu, rename, pin, export, delete, empty
states), light and dark, the Mac's shortcuts, the keyboard alone, and what a screen reader is told."""

from __future__ import annotations

import datetime as dt
import os
import stat
import time

import pytest
from gui_window import (
    WAIT_MS,
    click_row,
    menu_action,
    send,
    set_default_sampling,
    wait_idle,
    window_fixture,  # noqa: F401 - the `window` fixture
)
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QFileDialog, QLineEdit, QWidget

from app.gui.export_file import export_file_name
from app.gui.sidebar import GROUP_ROLE, ID_ROLE, PINNED_ROLE, date_group

LEFT = Qt.MouseButton.LeftButton
DAY = 86400


@pytest.fixture(autouse=True)
def _system_look_again():
    """A test that switches to dark leaves the look as the system has it, even when it fails."""
    yield
    from app.gui.theme import apply_theme

    apply_theme("system")


def _settle(qtbot) -> None:
    QApplication.processEvents()
    qtbot.wait(10)


def _header_controls(win) -> list[QWidget]:
    return [w for w in (win.sidebar_toggle, win.model_picker, win.model_state, win.unload_button,
                        win.sampling_button, win.settings_button, win.system_line.edit, win.system_button)
            if w.isVisible()]


def _in_window(win, widget):
    return widget.geometry().translated(widget.parentWidget().mapTo(win, widget.parentWidget().rect().topLeft()))


# --- the header at every width ---

def test_the_header_fits_every_width_from_640_pixels(qtbot, window):
    for width in (1100, 900, 800, 760, 700, 640):
        window.resize(width, 600)
        _settle(qtbot)
        assert window.width() == width
        controls = _header_controls(window)
        rects = [_in_window(window, w) for w in controls]
        for widget, rect in zip(controls, rects, strict=True):
            assert window.rect().contains(rect), (width, widget.accessibleName())
            if widget is not window.model_state:
                assert widget.width() >= widget.minimumSizeHint().width(), (width, widget.accessibleName())
        overlapping = [(a.accessibleName(), b.accessibleName()) for i, a in enumerate(controls)
                       for b in controls[i + 1:] if rects[controls.index(a)].intersects(rects[controls.index(b)])]
        assert overlapping == [], width
        assert window.model_state.width() >= 80, width  # the state is never squeezed to nothing
        assert window.model_state.text() == "Loaded · 4,096-token context"
        assert window.sidebar.isVisible() == (width >= 800)  # a narrow window gives the chat the room


def test_the_sidebar_button_menu_and_shortcut_hide_and_show_the_sidebar(qtbot, window):
    QTest.mouseClick(window.sidebar_toggle, LEFT)
    assert not window.sidebar.isVisible() and not window.sidebar_toggle.isChecked()
    action = menu_action(window, "Show Sidebar")
    action.trigger()
    assert window.sidebar.isVisible() and window.sidebar_toggle.isChecked()
    assert action.text() == "Hide Sidebar"
    window.sidebar.search.setFocus()
    QTest.keySequence(window.sidebar.search, action.shortcut())
    assert not window.sidebar.isVisible()
    assert QApplication.focusWidget() is window.composer.edit  # the focus does not vanish with it
    window.resize(700, 600)  # hidden by the user: stays hidden, at any width
    window.resize(1100, 600)
    _settle(qtbot)
    assert not window.sidebar.isVisible()
    assert window.prefs.get("window/sidebar_visible", True) is False
    QTest.mouseClick(window.sidebar_toggle, LEFT)
    assert window.sidebar.isVisible() and window.prefs.get("window/sidebar_visible", False) is True


def test_a_sidebar_shown_again_in_a_narrow_window_comes_back(qtbot, window):
    window.resize(640, 600)
    _settle(qtbot)
    assert not window.sidebar.isVisible()
    QTest.mouseClick(window.sidebar_toggle, LEFT)
    _settle(qtbot)
    assert window.sidebar.isVisible() and window.pages.width() > 300


# --- the model picker and the model's state ---

def test_the_model_picker_shows_size_fit_and_which_is_loaded(qtbot, window):
    picker = window.model_picker
    assert picker.currentText() == "Llama-2-tiny-chat · 0.1 MB · fits · loaded" or (
        "MB" in picker.currentText() and "fits" in picker.currentText() and picker.currentText().endswith("loaded"))
    QTest.mouseClick(window.unload_button, LEFT)
    qtbot.waitUntil(lambda: window.model_state.text() == "No model loaded", timeout=WAIT_MS)
    assert not picker.currentText().endswith("loaded") and not window.unload_button.isEnabled()
    # The empty chat says what to do, with a way to get a model.
    assert window.chat_area.currentWidget() is window.empty_state
    assert window.empty_title.text() == "No model loaded" and window.empty_action.isVisible()
    # Choosing the model again in the picker's list loads it, with a busy indicator meanwhile.
    picker.setFocus()
    picker.showPopup()
    QTest.keyClick(picker.view(), Qt.Key.Key_Return)
    assert window.loading_bar.isVisible() and window.model_state.text().startswith("Loading")
    assert picker.currentText().endswith("loading…") and window.empty_title.text() == "Loading the model…"
    qtbot.waitUntil(lambda: window.model_state.text() == "Loaded · 4,096-token context", timeout=WAIT_MS)
    assert not window.loading_bar.isVisible() and picker.currentText().endswith("loaded")
    assert window.empty_title.text() == "New chat" and not window.empty_action.isVisible()


def test_get_a_model_in_the_empty_chat_opens_settings(qtbot, window):
    QTest.mouseClick(window.unload_button, LEFT)
    qtbot.waitUntil(lambda: window.empty_action.isVisible(), timeout=WAIT_MS)
    QTest.mouseClick(window.empty_action, LEFT)
    assert window._settings_dialog is not None and window._settings_dialog.isVisible()
    window._settings_dialog.close()


# --- the system prompt line ---

def test_the_system_prompt_line_shows_and_edits_this_chats_prompt(qtbot, window):
    store = window.store
    pirate = store.create_conversation(title="Pirate chat", system_prompt="Talk like a pirate.\nAlways.")
    store.add_user_message(pirate.id, "Ahoy")
    window.sidebar.refresh()
    click_row(window, "Pirate chat")
    line = window.system_line.edit
    assert line.text() == "Talk like a pirate.↵Always."
    QTest.mouseClick(line, LEFT)
    QTest.keyClick(line, Qt.Key.Key_End)
    QTest.keyClicks(line, " Arr.")
    QTest.keyClick(line, Qt.Key.Key_Return)
    assert store.conversation(pirate.id).system_prompt == "Talk like a pirate.\nAlways. Arr."
    # A new chat shows the Settings default; an edit there goes with the chat when it is sent.
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    assert line.text() == window.prefs.get("generation/system_prompt")
    QTest.mouseClick(line, LEFT)
    line.selectAll()
    QTest.keyClicks(line, "Answer in one word.")
    QTest.mouseClick(window.composer.edit.viewport(), LEFT)  # leaving the field keeps the edit
    send(qtbot, window, "Hello")
    wait_idle(qtbot, window)
    assert store.conversation(window.chat.conversation_id).system_prompt == "Answer in one word."
    click_row(window, "Pirate chat")
    assert line.text() == "Talk like a pirate.↵Always. Arr."


def test_the_chat_menu_focuses_the_system_prompt_and_the_message_box(qtbot, window):
    menu_action(window, "Edit System Prompt").trigger()
    assert QApplication.focusWidget() is window.system_line.edit
    menu_action(window, "Focus Message Box").trigger()
    assert QApplication.focusWidget() is window.composer.edit


# --- the sidebar ---

def _age(store, conversation_id: str, days: float) -> None:
    with store.transaction() as tx:
        tx.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                   (time.time() - days * DAY, conversation_id))


def test_date_groups():
    today = dt.date(2026, 12, 5)

    def at(days: int) -> float:
        return time.mktime((today - dt.timedelta(days=days)).timetuple()) + 3600

    assert [date_group(at(d), False, today) for d in (0, 1, 2, 7, 8, 30, 31, 400)] == [
        "Today", "Yesterday", "Previous 7 days", "Previous 7 days", "Previous 30 days", "Previous 30 days",
        "November", "October 2025"]
    assert date_group(at(0), True, today) == "Pinned"


def test_conversations_are_grouped_by_date_with_pinned_first(qtbot, window):
    store = window.store
    for title, days in (("Old trip", 40), ("Last week", 3), ("Yesterday's bread", 1), ("Just now", 0)):
        conv = store.create_conversation(title=title)
        store.add_user_message(conv.id, title)
        _age(store, conv.id, days)
    window.sidebar.refresh()
    model = window.sidebar.model

    def rows() -> list[tuple[str, str | None]]:
        return [(model.index(r).data(), model.index(r).data(GROUP_ROLE)) for r in range(model.rowCount())]

    assert rows()[:3] == [("Just now", "Today"), ("Yesterday's bread", "Yesterday"),
                          ("Last week", "Previous 7 days")]
    assert rows()[3][0] == "Old trip" and rows()[3][1] not in (None, "Today", "Previous 30 days")
    # Pin "Last week" from its ⋯ menu: it goes first, under Pinned.
    click_row(window, "Last week")
    assert window.sidebar.row_button.isVisible()
    QTest.mouseClick(window.sidebar.row_button, LEFT)
    menu = window.sidebar.row_menu
    assert menu.isVisible() and [a.text() for a in menu.actions() if a.text()] == [
        "Rename…", "Pin", "Export…", "Delete"]
    _menu_item(menu, "Pin").trigger()
    assert rows()[0] == ("Last week", "Pinned") and rows()[1] == ("Just now", "Today")
    assert store.conversation(model.index(0).data(ID_ROLE)).pinned and model.index(0).data(PINNED_ROLE)
    # Unpin with a right-click on the row.
    rect = window.sidebar.list.visualRect(model.index(0))
    QApplication.sendEvent(window.sidebar.list.viewport(), _context_menu_event(rect.center(), window))
    _menu_item(window.sidebar.row_menu, "Unpin").trigger()
    assert rows()[0] == ("Just now", "Today") and not any(g == "Pinned" for _, g in rows())


def _menu_item(menu, text: str):
    return next(a for a in menu.actions() if a.text() == text)


def _context_menu_event(pos, window):
    from PySide6.QtGui import QContextMenuEvent

    viewport = window.sidebar.list.viewport()
    return QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, viewport.mapToGlobal(pos))


def test_the_keyboard_menu_key_renames_in_place(qtbot, window):
    store = window.store
    conv = store.create_conversation(title="Untitled thoughts")
    store.add_user_message(conv.id, "Hmm")
    window.sidebar.refresh()
    click_row(window, "Untitled thoughts")
    window.sidebar.list.setFocus()
    QTest.keyClick(window.sidebar.list, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    menu = window.sidebar.row_menu
    assert menu is not None and menu.isVisible()
    _menu_item(menu, "Rename…").trigger()
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit) and editor.text() == "Untitled thoughts"
    assert editor.accessibleName() == "Conversation title"
    editor.selectAll()
    QTest.keyClicks(editor, "Thoughts on bread")
    QTest.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.sidebar.model.index(0).data() == "Thoughts on bread", timeout=WAIT_MS)
    assert store.conversation(conv.id).title == "Thoughts on bread"
    # F2 renames too, and Escape leaves the title as it was.
    window.sidebar.list.setFocus()
    window.sidebar.list.setCurrentIndex(window.sidebar.model.index(0))
    QTest.keyClick(window.sidebar.list, Qt.Key.Key_F2)
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit)
    QTest.keyClicks(editor, "nothing")
    QTest.keyClick(editor, Qt.Key.Key_Escape)
    _settle(qtbot)
    assert store.conversation(conv.id).title == "Thoughts on bread"


def test_export_from_the_menu_is_named_after_the_chat_and_readable_by_others(qtbot, window, tmp_path):
    store = window.store
    conv = store.create_conversation(title="Plans: Lisbon/Porto?")
    question = store.add_user_message(conv.id, "Where first?")
    store.add_answer(conv.id, question.id, "Lisbon, then the train north.", finish_reason="stop")
    window.sidebar.refresh()
    folder = tmp_path / "exports"
    folder.mkdir()
    window.prefs.set("export/folder", str(folder))
    click_row(window, "Plans: Lisbon/Porto?")
    QTest.mouseClick(window.sidebar.row_button, LEFT)
    suggested = []

    def save(dialog: QFileDialog) -> None:
        suggested.append(dialog.selectedFiles()[0])
        dialog.accept()

    _in_next_dialog(QFileDialog, save)
    _menu_item(window.sidebar.row_menu, "Export…").trigger()
    path = folder / "Plans Lisbon Porto.md"
    assert [os.path.realpath(p) for p in suggested] == [os.path.realpath(path)]
    qtbot.waitUntil(path.exists, timeout=WAIT_MS)
    assert "Lisbon, then the train north." in path.read_text(encoding="utf-8")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left


def test_an_export_to_a_folder_that_cannot_be_written_says_so(qtbot, window, tmp_path):
    store = window.store
    conv = store.create_conversation(title="Locked out")
    store.add_user_message(conv.id, "Hi")
    window.sidebar.refresh()
    click_row(window, "Locked out")
    target = tmp_path / "gone" / "Locked out.md"

    def save(dialog: QFileDialog) -> None:
        dialog.selectFile(str(target))
        dialog.accept()

    _in_next_dialog(QFileDialog, save)
    menu_action(window, "Export Conversation…").trigger()
    qtbot.waitUntil(window.banner.isVisible, timeout=WAIT_MS)
    notice = window.banner_text.text()
    assert notice.startswith("Could not export to ") and notice.endswith(
        "gone/Locked out.md: that folder does not exist. Nothing was written.")
    dismiss = next(b for b in window.banner.findChildren(QAbstractButton) if b.accessibleName() == "Dismiss notice")
    QTest.mouseClick(dismiss, LEFT)
    assert not window.banner.isVisible()


def test_export_file_names():
    assert export_file_name("Plans: Lisbon/Porto?") == "Plans Lisbon Porto.md"
    assert export_file_name("  ...  ") == "Conversation.md"
    assert export_file_name("a\x00b\nc", ".json") == "a b c.json"
    assert len(export_file_name("x" * 300)) == 83


def test_delete_from_the_menu_hides_the_chat_with_undo(qtbot, window):
    send(qtbot, window, "Delete me from the menu")
    wait_idle(qtbot, window)
    click_row(window, "Delete me from the menu")
    QTest.mouseClick(window.sidebar.row_button, LEFT)
    _menu_item(window.sidebar.row_menu, "Delete").trigger()
    assert window.sidebar.model.rowCount() == 0 and window.chat.conversation_id is None
    assert window.sidebar.undo_bar.isVisible()
    QTest.mouseClick(window.sidebar.undo_button, LEFT)
    assert window.sidebar.model.index(0).data() == "Delete me from the menu"


def test_empty_states_for_no_chats_and_no_search_results(qtbot, window):
    sidebar = window.sidebar
    assert sidebar.empty_label.isVisible() and not sidebar.list.isVisible()
    assert sidebar.empty_label.text().startswith("No conversations yet.")
    send(qtbot, window, "Something to find")
    wait_idle(qtbot, window)
    assert sidebar.list.isVisible() and not sidebar.empty_label.isVisible()
    QTest.mouseClick(sidebar.search, LEFT)
    QTest.keyClicks(sidebar.search, "marzipan")
    assert sidebar.empty_label.isVisible() and sidebar.empty_label.text() == "No conversations match “marzipan”."
    QTest.keyClick(sidebar.search, Qt.Key.Key_Escape)  # Esc clears the search
    assert sidebar.search.text() == ""
    assert sidebar.list.isVisible() and not sidebar.empty_label.isVisible()
    # Down goes from the search field to the results; Return opens one.
    QTest.keyClicks(sidebar.search, "Something")
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    sidebar.search.setFocus()
    QTest.keyClick(sidebar.search, Qt.Key.Key_Down)
    assert QApplication.focusWidget() is sidebar.list
    QTest.keyClick(sidebar.list, Qt.Key.Key_Return)
    assert window.chat.conversation_id is not None


# --- light and dark ---

def _contrast(palette: QPalette, fg: QPalette.ColorRole, bg: QPalette.ColorRole) -> int:
    return abs(palette.color(fg).lightness() - palette.color(bg).lightness())


def test_the_dark_setting_makes_the_window_dark_and_readable(qtbot, window):
    menu_action(window, "Settings…").trigger()
    page = window._settings_dialog.appearance_page
    page.theme.setFocus()
    while page.theme.currentData() != "dark":
        QTest.keyClick(page.theme, Qt.Key.Key_Down)
    _settle(qtbot)
    palette = window.palette()
    assert palette.color(QPalette.ColorRole.Window).lightness() < 60
    for fg, bg in ((QPalette.ColorRole.Text, QPalette.ColorRole.Base),
                   (QPalette.ColorRole.WindowText, QPalette.ColorRole.Window),
                   (QPalette.ColorRole.ButtonText, QPalette.ColorRole.Button),
                   (QPalette.ColorRole.PlaceholderText, QPalette.ColorRole.Base)):
        assert _contrast(palette, fg, bg) > 90, fg
    assert window.composer.edit.palette().color(QPalette.ColorRole.Base).lightness() < 60
    assert window.theme.dark and "#5c4a12" in window.banner.styleSheet()
    while page.theme.currentData() != "light":
        QTest.keyClick(page.theme, Qt.Key.Key_Up)
    _settle(qtbot)
    assert window.palette().color(QPalette.ColorRole.Window).lightness() > 200 and not window.theme.dark
    while page.theme.currentData() != "system":
        QTest.keyClick(page.theme, Qt.Key.Key_Up)
    window._settings_dialog.close()


def test_with_system_the_look_is_applied_again_when_the_system_changes(qtbot, window):
    """The platform announces a dark/light switch through styleHints().colorSchemeChanged; the
    offscreen platform cannot switch, so the announcement is made here as the platform would."""
    from PySide6.QtGui import QGuiApplication

    assert window.prefs.get("appearance/theme") == "system"
    with qtbot.waitSignal(window.theme.changed):
        QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    window.prefs.set("appearance/theme", "dark")
    with qtbot.assertNotEmitted(window.theme.changed):  # a forced theme ignores the system
        QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert window.theme.dark
    window.prefs.set("appearance/theme", "system")


# --- the Mac's shortcuts ---

def test_cmd_f_shows_the_sidebar_and_searches(qtbot, window):
    QTest.mouseClick(window.sidebar_toggle, LEFT)
    assert not window.sidebar.isVisible()
    window.composer.edit.setFocus()
    QTest.keySequence(window.composer.edit, QKeySequence(QKeySequence.StandardKey.Find))
    assert window.sidebar.isVisible() and QApplication.focusWidget() is window.sidebar.search


def test_cmd_comma_opens_settings(qtbot, window):
    action = menu_action(window, "Settings…")
    window.composer.edit.setFocus()
    QTest.keySequence(window.composer.edit, action.shortcut())
    assert window._settings_dialog is not None and window._settings_dialog.isVisible()
    window._settings_dialog.close()
    QTest.mouseClick(window.settings_button, LEFT)  # and the header's button
    assert window._settings_dialog.isVisible()
    window._settings_dialog.close()


def test_cmd_n_starts_a_chat_ready_to_type_in(qtbot, window):
    send(qtbot, window, "An earlier chat")
    wait_idle(qtbot, window)
    window.sidebar.search.setFocus()
    QTest.keySequence(window.sidebar.search, QKeySequence(QKeySequence.StandardKey.New))
    assert window.chat.conversation_id is None and QApplication.focusWidget() is window.composer.edit
    assert window.chat_area.currentWidget() is window.empty_state and window.empty_title.text() == "New chat"


def test_the_chat_menus_sampling_item_opens_this_chats_sampling(qtbot, window):
    from PySide6.QtWidgets import QDialogButtonBox

    from app.gui.sampling_dialog import SamplingDialog

    def lower_max_tokens(dialog) -> None:
        dialog.form.max_tokens.setValue(3)
        QTest.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok), LEFT)

    _in_next_dialog(SamplingDialog, lower_max_tokens)
    menu_action(window, "Sampling…").trigger()
    assert window.chat.sampling.max_tokens == 3


def test_the_edit_menu_works_in_the_line_fields(qtbot, window):
    line = window.system_line.edit
    QTest.mouseClick(line, LEFT)
    line.selectAll()
    menu_action(window, "Copy").trigger()
    assert QApplication.clipboard().text() == window.prefs.get("generation/system_prompt")
    search = window.sidebar.search
    QTest.mouseClick(search, LEFT)
    menu_action(window, "Paste").trigger()
    assert search.text() == window.prefs.get("generation/system_prompt")
    menu_action(window, "Select All").trigger()
    menu_action(window, "Cut").trigger()
    assert search.text() == ""
    menu_action(window, "Undo").trigger()
    assert search.text() == window.prefs.get("generation/system_prompt")


def test_esc_does_nothing_to_an_idle_chat_and_stops_an_answer(qtbot, window):
    stop = menu_action(window, "Stop")
    assert not stop.isEnabled()
    set_default_sampling(window, temperature=0.0, max_tokens=4000)
    send(qtbot, window, "A long story please")
    qtbot.waitUntil(lambda: window.chat.busy and stop.isEnabled(), timeout=WAIT_MS)
    window.sidebar.search.setFocus()  # Esc works wherever the focus is
    QTest.keyClick(window.sidebar.search, Qt.Key.Key_Escape)
    wait_idle(qtbot, window)
    last = window.store.active_path(window.chat.conversation_id)[-1]
    # Stopped: mid-answer, or before the first token (the question then stays, unanswered).
    assert last.finish_reason == "cancelled" or last.role == "user"
    assert not stop.isEnabled()


# --- the keyboard alone, and a screen reader ---

def test_tab_reaches_every_control_in_order(qtbot, window):
    send(qtbot, window, "A chat to tab through")
    wait_idle(qtbot, window)
    window.sidebar.new_button.setFocus()
    seen = []
    for _ in range(40):
        widget = QApplication.focusWidget()
        if seen and widget is seen[0]:
            break
        seen.append(widget)
        QTest.keyClick(widget, Qt.Key.Key_Tab)
    wanted = [window.sidebar.new_button, window.sidebar.search, window.sidebar.list, window.sidebar_toggle,
              window.model_picker, window.unload_button, window.sampling_button, window.settings_button,
              window.system_line.edit, window.system_button, window.composer.edit, window.composer.send_button]
    assert [w for w in seen if w in wanted] == wanted, [w.accessibleName() for w in seen]
    assert all(w.accessibleName() for w in seen), [type(w).__name__ for w in seen if not w.accessibleName()]


def test_a_finished_answer_is_announced(qtbot, window):
    send(qtbot, window, "Tell me something")
    wait_idle(qtbot, window)
    assert window.last_announcement == "Answer finished."
    assert window.status_label.text() == "Answer finished." and window.status_label.isVisible()
    set_default_sampling(window, temperature=0.0, max_tokens=600)
    send(qtbot, window, "And in the background")
    QTest.mouseClick(window.sidebar.new_button, LEFT)
    wait_idle(qtbot, window)
    assert window.last_announcement == "Answer finished in “Tell me something”."
    set_default_sampling(window, temperature=0.0, max_tokens=4000)
    send(qtbot, window, "A long one to stop")
    qtbot.waitUntil(lambda: window.chat.busy, timeout=WAIT_MS)
    assert window.status_label.text() == ""  # the last answer's news is gone once another starts
    QTest.mouseClick(window.composer.stop_button, LEFT)
    wait_idle(qtbot, window)
    assert window.last_announcement in ("Answer stopped.", "The answer did not begin.")


def _in_next_dialog(kind, act) -> None:
    from PySide6.QtCore import QTimer

    def run() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, kind), dialog
        act(dialog)

    QTimer.singleShot(0, run)


def test_the_menu_button_follows_the_pointer_over_the_rows(qtbot, window):
    store = window.store
    for title in ("First row", "Second row"):
        conv = store.create_conversation(title=title)
        store.add_user_message(conv.id, title)
    window.sidebar.refresh()
    view, model = window.sidebar.list, window.sidebar.model
    click_row(window, "Second row")
    second = view.visualRect(model.index(0))
    assert second.contains(window.sidebar.row_button.geometry().center())
    first = view.visualRect(model.index(1))
    QTest.mouseMove(view.viewport(), first.center())
    qtbot.waitUntil(lambda: first.contains(window.sidebar.row_button.geometry().center()), timeout=WAIT_MS)
    QTest.mouseClick(window.sidebar.row_button, LEFT)
    _menu_item(window.sidebar.row_menu, "Rename…").trigger()
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit) and editor.text() == "First row"
    QTest.keyClick(editor, Qt.Key.Key_Escape)


def test_edit_undo_brings_back_a_deleted_chat(qtbot, window):
    send(qtbot, window, "Deleted by mistake")
    wait_idle(qtbot, window)
    click_row(window, "Deleted by mistake")
    QTest.keyClick(window.sidebar.list, Qt.Key.Key_Delete)
    assert window.sidebar.model.rowCount() == 0
    QTest.keySequence(window, QKeySequence(QKeySequence.StandardKey.Undo))
    assert window.sidebar.model.index(0).data() == "Deleted by mistake" and not window.sidebar.undo_bar.isVisible()
    window.sidebar.commit_deletes()
    assert [c.title for c in window.store.list_conversations()] == ["Deleted by mistake"]


def test_export_all_from_settings_is_readable_by_others_too(qtbot, window, tmp_path):
    send(qtbot, window, "One to export")
    wait_idle(qtbot, window)
    menu_action(window, "Settings…").trigger()
    page = window._settings_dialog.data_page
    QTest.mouseClick(page.export_button, LEFT)
    dialog = page.findChild(QFileDialog)
    path = tmp_path / "all.md"
    dialog.selectFile(str(path))
    dialog.accept()
    qtbot.waitUntil(lambda: "Exported 1 conversation" in page.banner.text(), timeout=WAIT_MS)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask and "One to export" in path.read_text()
    window._settings_dialog.close()
