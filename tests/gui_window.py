"""The main window on the real engine thread with a tiny model, and what a user does to it:
shared by the GUI tests (pytest-qt, offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest

from engine.library import library
from engine.sampling import SamplingSettings

WAIT_MS = 60_000


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


def click_text(view, text: str, after: str | None = None) -> None:
    """Click on the first place this text shows in a QTextBrowser (a link, a word), or the first
    after the text `after`."""
    start = view.document().find(after).selectionEnd() if after else 0
    cursor = view.document().find(text, start)
    assert not cursor.isNull(), text
    view.setTextCursor(cursor)
    view.ensureCursorVisible()
    cursor.setPosition(cursor.selectionStart() + 1)
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view.cursorRect(cursor).center())
