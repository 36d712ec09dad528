"""Long lines stay inside the transcript at the narrow window widths the app allows: a code block
with a 300-character line wraps inside its box instead of running off the right edge."""

from __future__ import annotations

import os

import pytest
from gui_window import (
    click_action,
    click_row,
    items,
    message_item,
    shown_text,
    window_fixture,  # noqa: F401 - the `window` fixture
)
from PySide6.QtCore import QObject, QPointF
from PySide6.QtGui import QGuiApplication

SHOTS = os.environ.get("HEARTH_TEST_SHOTS")  # a folder: the window is saved there, to look at
LONG_LINE = ("rows = [" + ", ".join(f"'llama{i}'" for i in range(14)) + "]  # "
             + "wool" * 30 + " " + "x" * 60)


def _bodies(item):
    return [i for i in items(item) if i.objectName() == "body" and i.isVisible()]


@pytest.mark.parametrize("width", [800, 640])
def test_a_long_code_line_stays_inside_the_window(qtbot, window, width):
    assert len(LONG_LINE) >= 300
    store = window.store
    conv = store.create_conversation(title="Wide code")
    question = store.add_user_message(conv.id, "Show me the list on one line")
    answer = store.add_answer(conv.id, question.id,
                              f"Here it is:\n\n```python\n{LONG_LINE}\nprint(rows)\n```\n\nThat is all.")
    window.resize(width, 700)
    window.sidebar.refresh()
    click_row(window, "Wide code")
    view = window.transcript
    messages = view.rootObject().findChild(QObject, "messages")
    list_width = messages.width()
    assert 0 < list_width <= width

    for message_id in (question.id, answer.id):
        item = message_item(view, message_id)
        assert item.width() <= list_width
        for body in _bodies(item):
            # What the text lays out and paints, against the room it has and the list's edge.
            assert body.property("contentWidth") <= body.width() + 0.5, message_id
            right = body.mapToItem(messages, QPointF(body.property("contentWidth"), 0)).x()
            assert right <= list_width, message_id
    if SHOTS:  # the transcript as drawn, and the whole window as the screen shows it
        qtbot.wait(1500)
        window.screen().grabWindow(window.winId()).save(f"{SHOTS}/wide-code-{width}-window.png")
        view.grabFramebuffer().save(f"{SHOTS}/wide-code-{width}-transcript.png")

    # Wrapping is only on screen: the code copies as it was written, on one line.
    click_action(view, answer.id, "copyCode0")
    assert QGuiApplication.clipboard().text() == f"{LONG_LINE}\nprint(rows)"


def test_a_long_code_line_being_streamed_stays_inside_the_transcript(qtbot):
    from app.gui.transcript import TranscriptView

    view = TranscriptView()
    qtbot.addWidget(view)
    view.resize(640, 600)
    view.show()
    view.begin_answer()
    # The fence's first lines become finished pieces; the line still arriving is the tail.
    view.append_text(f"Look:\n\n```python\n{LONG_LINE}\n{LONG_LINE}\n" + "x = 1\n" * 120 + LONG_LINE)
    view.model.render_stream()
    messages = view.rootObject().findChild(QObject, "messages")
    item = view.message_item(0)
    texts = [i for i in items(item) if i.objectName() in ("piece", "tail") and i.isVisible()]
    assert len(texts) >= 2 and LONG_LINE in shown_text(texts[-1]).replace("\u2029", "\n")
    for text in texts:
        assert text.property("contentWidth") <= text.width() + 0.5
        assert text.mapToItem(messages, QPointF(text.property("contentWidth"), 0)).x() <= messages.width()
