"""Selecting across messages as a user does: press the mouse on one message's text, drag over the
next ones, let go in another, then Copy (the key or Edit > Copy): the clipboard holds the end of the
first message, every message between, and the start of the last, in order, a blank line apart."""

from __future__ import annotations

from gui_window import (
    WAIT_MS,
    click_row,
    click_text,
    items,
    menu_action,
    message_item,
    shown_text,
    window_fixture,  # noqa: F401 - the `window` fixture
)
from gui_window import _settle as settle
from gui_window import _text_point as text_point
from PySide6.QtCore import QObject, QPoint, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtTest import QTest

LEFT = Qt.MouseButton.LeftButton
NONE = Qt.KeyboardModifier.NoModifier


def _chat(window, title: str, turns: list[tuple[str, str]]):
    """A saved conversation opened from the sidebar; its messages, in order."""
    store = window.store
    conv = store.create_conversation(title=title)
    messages = []
    for question, answer in turns:
        asked = store.add_user_message(conv.id, question)
        messages += [asked, store.add_answer(conv.id, asked.id, answer)]
    window.sidebar.refresh()
    click_row(window, title)
    return messages


def _body(view, message_id: str):
    return next(i for i in items(message_item(view, message_id)) if i.objectName() == "body")


def _point_at(view, message_id: str, text: str) -> QPoint:
    """Where this text begins in the message, on screen."""
    body = _body(view, message_id)
    settle(view)
    return text_point(body, shown_text(body).index(text))


def _drag(view, start: QPoint, end: QPoint, steps: int = 10) -> None:
    QTest.mouseMove(view, start)
    QTest.mousePress(view, LEFT, NONE, start)
    for step in range(1, steps + 1):
        QTest.mouseMove(view, start + (end - start) * (step / steps))
    QTest.mouseRelease(view, LEFT, NONE, end)


def _copy_with_the_key(view) -> str:
    QGuiApplication.clipboard().clear()
    QTest.keySequence(view, QKeySequence(QKeySequence.StandardKey.Copy))
    return QGuiApplication.clipboard().text()


def _copy_from_the_menu(window) -> str:
    QGuiApplication.clipboard().clear()
    menu_action(window, "Copy").trigger()
    return QGuiApplication.clipboard().text()


TURNS = [("Where do llamas live? In the Andes mostly.",
          "Llamas live **high** in the Andes.\n\nThey carry packs for days."),
         ("How much can they carry in a day?", "About a quarter of their weight.")]
SPAN = ("Andes mostly.\n\nLlamas live high in the Andes.\nThey carry packs for days.\n\n"
        "How much can they ")


def test_a_drag_from_one_message_into_another_copies_the_text_between(qtbot, window):
    question, answer, follow_up, last = _chat(window, "Llamas", TURNS)
    view = window.transcript
    start = _point_at(view, question.id, "Andes mostly")
    end = _point_at(view, follow_up.id, "carry in a day")
    _drag(view, start, end)
    # Each message shows its part of the selection; the last answer none.
    assert [shown_text_selected(view, m.id) for m in (question, answer, follow_up, last)] == [
        "Andes mostly.", "Llamas live high in the Andes.\u2029They carry packs for days.", "How much can they ", ""]
    assert view.selected_text() == SPAN
    assert _copy_with_the_key(view) == SPAN
    assert _copy_from_the_menu(window) == SPAN

    # Upwards, from the third message back into the first: the same text.
    _drag(view, end, start)
    assert _copy_with_the_key(view) == SPAN

    # A click ends it; a drag within one message still selects within it alone.
    click_text(view, last.id, "quarter")
    assert view.selected_text() == ""
    assert [shown_text_selected(view, m.id) for m in (question, answer, follow_up)] == ["", "", ""]
    _drag(view, _point_at(view, last.id, "quarter"), _point_at(view, last.id, " of their"))
    assert _copy_from_the_menu(window) == "quarter"


def test_dragging_back_into_the_first_message_selects_only_there(qtbot, window):
    question, answer, follow_up, _last = _chat(window, "Back again", TURNS)
    view = window.transcript
    start = _point_at(view, question.id, "In the Andes")
    QTest.mouseMove(view, start)
    QTest.mousePress(view, LEFT, NONE, start)
    QTest.mouseMove(view, _point_at(view, answer.id, "They carry"))
    QTest.mouseMove(view, _point_at(view, follow_up.id, "in a day"))
    back = _point_at(view, question.id, " mostly")
    QTest.mouseMove(view, back)
    QTest.mouseRelease(view, LEFT, NONE, back)
    assert [shown_text_selected(view, m.id) for m in (answer, follow_up)] == ["", ""]
    assert _copy_with_the_key(view) == "In the Andes"


def test_a_drag_held_below_the_transcript_scrolls_and_selects_what_comes_into_view(qtbot, window):
    turns = [(f"Question number {i}: what about llama {i}?", f"Answer number {i}.\n\n" + "Wool and hay. " * 20)
             for i in range(12)]
    messages = _chat(window, "Many llamas", turns)
    view = window.transcript
    messages_list = view.rootObject().findChild(QObject, "messages")
    QTest.mouseMove(view, QPoint(view.width() // 2, view.height() // 2))
    # From the top of the conversation, as a reader who scrolled up.
    view.show_messages(view.shown_messages(), scroll_to=messages[0].id)
    start = _point_at(view, messages[0].id, "what about")
    QTest.mouseMove(view, start)
    QTest.mousePress(view, LEFT, NONE, start)
    below = QPoint(start.x(), view.height() + 10)
    QTest.mouseMove(view, QPoint(start.x(), view.height() - 5))
    QTest.mouseMove(view, below)  # held there: the list scrolls on by itself
    qtbot.waitUntil(lambda: messages_list.property("atYEnd"), timeout=WAIT_MS)
    QTest.mouseRelease(view, LEFT, NONE, below)
    copied = _copy_with_the_key(view)
    assert copied.startswith("what about llama 0?\n\nAnswer number 0.\n")
    for i in range(1, 12):
        assert f"\n\nQuestion number {i}: what about llama {i}?\n\nAnswer number {i}.\n" in copied
    assert copied.endswith("Wool and hay.")


def shown_text_selected(view, message_id: str) -> str:
    return _body(view, message_id).property("selectedText")
