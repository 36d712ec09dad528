"""The main window on the real engine thread with a tiny model, and what a user does to it:
shared by the GUI tests (pytest-qt, offscreen)."""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import Q_ARG, Q_RETURN_ARG, QEvent, QMetaObject, QObject, QPoint, QPointF, Qt
from PySide6.QtGui import QAction, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from engine.library import library
from engine.sampling import SamplingSettings

WAIT_MS = 60_000
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture(name="window")
def window_fixture(qtbot, llama2_chat):
    """The app's window, shown, with the tiny Llama 2 model loaded and short greedy answers as the
    Settings default. A test module imports window_fixture to use `window`."""
    from PySide6.QtWidgets import QApplication

    from app.gui.app import build_window

    library.import_folder(llama2_chat)
    win = build_window(QApplication.instance())
    qtbot.addWidget(win)
    win.show()
    win.activateWindow()
    qtbot.waitUntil(lambda: "4,096-token context" in win.model_state.text(), timeout=WAIT_MS)
    set_default_sampling(win, temperature=0.0, max_tokens=12)
    yield win
    if not win._shut_down:
        win.close()


def set_default_sampling(win, **values) -> None:
    """What Settings > Generation does with the defaults for new conversations."""
    win.prefs.set_sampling(SamplingSettings(**values))


def send(qtbot, win, text: str) -> None:
    win.composer.edit.setPlainText(text)
    qtbot.keyClick(win.composer.edit, Qt.Key.Key_Return)


def wait_idle(qtbot, win) -> None:
    qtbot.waitUntil(lambda: not win.chat.busy, timeout=WAIT_MS)


def menu_action(win, text: str) -> QAction:
    """The window's menu item with this text."""
    for menu_bar_action in win.menuBar().actions():
        for action in menu_bar_action.menu().actions():
            if action.text() == text:
                return action
    raise LookupError(text)


def click_row(win, title: str) -> None:
    """Click the sidebar's row for the conversation with this title."""
    model, view = win.sidebar.model, win.sidebar.list
    row = next(r for r in range(model.rowCount()) if model.index(r).data().endswith(title))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view.visualRect(model.index(row)).center())


def items(item):
    """This Qt Quick item and every item inside it."""
    yield item
    for child in item.childItems():
        yield from items(child)


def item_named(item, name: str, visible_only: bool = True):
    """The first item inside `item` with this objectName (shown ones only, unless told)."""
    return next((i for i in items(item) if i.objectName() == name and (i.isVisible() or not visible_only)), None)


def message_item(view, message_id: str):
    """The transcript's delegate for this message, brought into view as a reader scrolls to it."""
    row = next(i for i, m in enumerate(view.shown_messages()) if m.id == message_id)
    item = view.message_item(row)
    assert item is not None, message_id
    return item


def _settle(view) -> None:
    """What happens before a user's next click: delegates of a conversation shown before are
    deleted (deleteLater; processEvents alone leaves them on screen), and a frame is drawn, which
    lays out what changed (an editor that opened, text typed into it) where the click will land."""
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QMetaObject.invokeMethod(view.rootObject().findChild(QObject, "messages"), "forceLayout")
    view.grabFramebuffer()


def click_item(view, item, double: bool = False) -> None:
    """Move the mouse onto a Qt Quick item in the transcript and click it (the view is the
    QQuickWidget whose scene holds it)."""
    _settle(view)
    point = item.mapToScene(QPointF(item.width() / 2, item.height() / 2)).toPoint()
    QTest.mouseMove(view, point)
    (QTest.mouseDClick if double else QTest.mouseClick)(view, LEFT, Qt.KeyboardModifier.NoModifier, point)


def click_action(view, message_id: str, name: str) -> None:
    """Click a message's action (copy, edit, retry, regenerate, continue, prev, next, save)."""
    item = message_item(view, message_id)
    _settle(view)
    QTest.mouseMove(view, item.mapToScene(QPointF(20, 10)).toPoint())  # hover: the actions show
    button = item_named(item, name)
    assert button is not None and button.isEnabled(), name
    click_item(view, button)


def _body(item):
    return next(i for i in items(item) if i.objectName() == "body")


def shown_text(text_item) -> str:
    """The text a Qt Quick TextEdit shows, as plain text."""
    length = text_item.property("length")
    return QMetaObject.invokeMethod(text_item, "getText", Q_RETURN_ARG("QString"), Q_ARG("int", 0),
                                    Q_ARG("int", length))


def _text_point(text_item, offset: int):
    rect = QMetaObject.invokeMethod(text_item, "positionToRectangle", Q_RETURN_ARG("QRectF"),
                                    Q_ARG("int", offset))
    return text_item.mapToScene(rect.center()).toPoint()


def click_text(view, message_id: str, text: str, after: str | None = None, double: bool = False) -> None:
    """Click (or double-click) the first place this text shows in a message (a link, a word), or
    the first after the text `after`."""
    body = _body(message_item(view, message_id))
    _settle(view)
    shown = shown_text(body)
    start = shown.index(after) + len(after) if after else 0
    offset = shown.index(text, start)
    point = _text_point(body, offset + 1)
    QTest.mouseMove(view, point)
    (QTest.mouseDClick if double else QTest.mouseClick)(view, LEFT, Qt.KeyboardModifier.NoModifier, point)


def in_view(view, text: str) -> bool:
    """Whether this text shows, whole, in the transcript's viewport now (nothing is scrolled)."""
    messages = view.rootObject().findChild(QObject, "messages")
    for row in range(len(view.shown_messages())):
        item = QMetaObject.invokeMethod(messages, "itemAtIndex", Q_RETURN_ARG("QQuickItem*"), Q_ARG("int", row))
        if item is None or not item.isVisible():
            continue
        for text_item in (i for i in items(item) if i.objectName() in ("body", "branch") and i.isVisible()):
            shown = shown_text(text_item) if text_item.objectName() == "body" else text_item.property("text")
            if text not in shown:
                continue
            top = text_item.mapToItem(messages, QPointF(0, 0)).y()
            if text_item.objectName() == "body":
                top += QMetaObject.invokeMethod(text_item, "positionToRectangle", Q_RETURN_ARG("QRectF"),
                                                Q_ARG("int", shown.index(text))).top()
            if 0 <= top and top + 14 <= messages.height():
                return True
    return False


def scroll_to_top(view) -> None:
    """Turn the mouse wheel over the transcript until it shows its first line, as a reader does."""
    messages = view.rootObject().findChild(QObject, "messages")
    centre = QPointF(view.width() / 2, view.height() / 2)
    for _ in range(300):
        if messages.property("atYBeginning"):
            for _ in range(250):  # the wheel's glide comes to rest
                if not messages.property("moving"):
                    return
                QTest.qWait(20)
            return
        wheel = QWheelEvent(centre, view.mapToGlobal(centre), QPoint(), QPoint(0, 600),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                            Qt.ScrollPhase.NoScrollPhase, False)
        wheel.setTimestamp(int(time.monotonic() * 1000))  # Qt Quick scrolls by the wheel's speed
        QApplication.sendEvent(view, wheel)
        QTest.qWait(20)
    raise AssertionError("the transcript never reached its top")


def click_show_earlier(view) -> None:
    button = item_named(view.rootObject(), "showEarlier")
    assert button is not None, "no Show earlier button in view"
    click_item(view, button)
