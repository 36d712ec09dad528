"""The transcript list keeps what did not change: a send, an answer ending, a branch switch change
only their own rows (no reset of the whole list, no new delegates for the old messages); only
another conversation resets it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from gui_window import items, shown_text
from PySide6.QtCore import Q_ARG, Q_RETURN_ARG, QMetaObject, QObject
from PySide6.QtWidgets import QApplication

from app.gui.transcript import MessageView, TranscriptView


def _conversation(count: int, prefix: str = "m") -> list[MessageView]:
    return [MessageView(f"{prefix}{i}", "user" if i % 2 == 0 else "assistant",
                        f"Question {i}?" if i % 2 == 0 else f"Answer **{i}**, with `code` and more words.")
            for i in range(count)]


class Signals:
    """What a model announced: resets, inserted / removed row ranges, changed rows."""

    def __init__(self, model) -> None:
        self.resets, self.inserted, self.removed, self.changed = 0, [], [], []
        model.modelReset.connect(self._reset)
        model.rowsInserted.connect(lambda _parent, first, last: self.inserted.append((first, last)))
        model.rowsRemoved.connect(lambda _parent, first, last: self.removed.append((first, last)))
        model.dataChanged.connect(lambda top, bottom, _roles: self.changed.append((top.row(), bottom.row())))

    def _reset(self) -> None:
        self.resets += 1


@pytest.fixture
def view(qtbot):
    view = TranscriptView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    return view


def _list(view):
    return view.rootObject().findChild(QObject, "messages")


def _delegate(view, row: int):
    """The delegate the list holds for this row now (None when it has none), not scrolling."""
    return QMetaObject.invokeMethod(_list(view), "itemAtIndex", Q_RETURN_ARG("QQuickItem*"), Q_ARG("int", row))


def _settle(view) -> None:
    QMetaObject.invokeMethod(_list(view), "forceLayout")
    QApplication.processEvents()
    view.grabFramebuffer()  # a frame, as the user sees it


def _mark_delegates(view, rows) -> list[int]:
    """Tag the delegates that exist for these rows; returns the rows tagged."""
    tagged = []
    for row in rows:
        item = _delegate(view, row)
        if item is not None:
            item.setProperty("testTag", f"row {row}")
            tagged.append(row)
    return tagged


def test_a_send_and_its_answer_in_a_1000_message_chat_change_only_their_rows(view):
    messages = _conversation(1000)
    view.show_messages(messages)
    _settle(view)
    tagged = _mark_delegates(view, range(985, 1000))
    assert len(tagged) >= 5, "the last messages are on screen"
    signals = Signals(view.model)

    # Send: the question is recorded and shown, then the answer begins.
    question = MessageView("q-new", "user", "And one more question?")
    view.show_messages([*messages, question])
    view.begin_answer()
    view.append_text("Here is")
    view.model.render_stream()
    _settle(view)
    assert signals.resets == 0 and signals.removed == []
    assert signals.inserted == [(1000, 1000), (1001, 1001)]
    assert signals.changed in ([], [(1001, 1001)])  # the streamed text, nothing older
    for row in tagged:
        item = _delegate(view, row)
        assert item is None or item.property("testTag") == f"row {row}", f"delegate of row {row} was made again"
    assert sum(_delegate(view, row) is not None for row in tagged) >= 3
    assert _list(view).property("atYEnd"), "the view follows the new question"
    streaming_item = _delegate(view, 1001)
    streaming_item.setProperty("testTag", "the answer")

    # The answer ends: the row being written becomes the saved answer, in place.
    signals.inserted.clear()
    signals.changed.clear()
    answer = MessageView("a-new", "assistant", "Here is **the answer**.", finish_reason="stop",
                         generation_tps=42.0)
    view.show_messages([*messages, question, answer])
    _settle(view)
    assert signals.resets == 0 and signals.inserted == [] and signals.removed == []
    assert signals.changed == [(1001, 1001)]
    assert _delegate(view, 1001).property("testTag") == "the answer"
    assert _delegate(view, 1001).property("messageId") == "a-new"
    shown = [i for i in items(_delegate(view, 1001)) if i.isVisible() and i.objectName() in ("body", "piece", "tail")]
    assert [i.objectName() for i in shown] == ["body"] and shown_text(shown[0]) == "Here is the answer."
    assert not view.streaming and view.shown_messages()[-1] == answer
    assert view.toPlainText().endswith("Assistant · 42.0 tok/s\nHere is **the answer**.")
    assert _list(view).property("atYEnd")


def test_the_last_100_of_a_long_chat_slide_on_by_a_row_at_each_send(view):
    """The app shows the last 100 messages of a long chat: a send drops the first shown one."""
    messages = _conversation(1000)
    view.show_messages(messages[900:])
    _settle(view)
    signals = Signals(view.model)
    question = MessageView("q-new", "user", "Next?")
    view.show_messages([*messages[901:], question])
    assert signals.resets == 0
    assert signals.removed == [(0, 0)] and signals.inserted == [(99, 99)]
    assert view.shown_messages() == [*messages[901:], question]
    # "Show earlier": every message, the 100 shown ones kept.
    signals.removed.clear()
    signals.inserted.clear()
    view.show_messages([*messages, question], scroll_to=messages[901].id)
    assert signals.resets == 0 and signals.removed == [] and signals.inserted == [(0, 900)]
    assert view.shown_messages() == [*messages, question]


def test_a_changed_message_is_a_changed_row_and_a_new_branch_replaces_its_rows(view):
    messages = _conversation(10)
    view.show_messages(messages)
    signals = Signals(view.model)
    # The last answer's other version: its row is replaced, the rest stay.
    other = MessageView("m9-v2", "assistant", "Another answer.", version=2, versions=2)
    changed = [*messages[:8], replace(messages[8]), other]
    view.show_messages(changed)
    assert signals.resets == 0 and signals.removed == [(9, 9)] and signals.inserted == [(9, 9)]
    assert signals.changed == []
    # A question whose answer failed: the same message, now marked.
    signals.removed.clear()
    signals.inserted.clear()
    marked = [*changed[:8], replace(changed[8], unanswered=True)]
    view.show_messages(marked)
    assert signals.resets == 0 and signals.removed == [(9, 9)] and signals.inserted == []
    assert signals.changed == [(8, 8)]
    assert view.shown_messages() == marked
    assert "not answered" in view.toPlainText()


def test_another_conversation_resets_the_list(view):
    view.show_messages(_conversation(20))
    signals = Signals(view.model)
    other = _conversation(5, prefix="other")
    view.show_messages(other)
    assert signals.resets == 1 and signals.inserted == [] and signals.removed == []
    assert view.shown_messages() == other
    view.clear_messages()
    assert signals.resets == 2 and view.shown_messages() == []
