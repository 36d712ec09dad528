"""Text is text in the app: markup in an error, a model's name or a chat's title is shown as typed.

QLabel and tool tips take text that looks like HTML for rich text unless told otherwise. What a
label shows is read back the way a screen reader reads it (Qt's accessible name of a label is its
text as displayed: rich text comes back with the tags gone).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible

from engine.library import library

WAIT_MS = 60_000
MARKUP = "<b>bold</b><img src=x>"


def _shown(label) -> str:
    """The text a label displays (tags that were rendered are not in it)."""
    return QAccessible.queryAccessibleInterface(label).text(QAccessible.Text.Name)


@pytest.fixture
def window(qtbot, llama2_chat):
    from PySide6.QtWidgets import QApplication

    from app.gui.app import build_window

    library.import_folder(llama2_chat)
    win = build_window(QApplication.instance())
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: "4,096-token context" in win.model_state.text(), timeout=WAIT_MS)
    yield win
    if win.isVisible():
        win.close()


def test_the_error_banner_shows_markup_from_a_model_folder_as_text(qtbot, window, model_copy):
    folder = model_copy("spm_legacy", name="<i>odd name")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = MARKUP  # the load error quotes it
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    window.bridge.load(str(folder))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT_MS)
    banner = window.banner_text
    assert MARKUP in banner.text() and "<i>odd name" in banner.text()
    assert banner.textFormat() == Qt.TextFormat.PlainText
    assert MARKUP in _shown(banner) and "<i>odd name" in _shown(banner)
    assert window.model_state.textFormat() == Qt.TextFormat.PlainText


def test_a_notice_that_is_all_markup_is_shown_as_text(qtbot, window):
    window.show_notice(f"{MARKUP}\n<h1>not a heading</h1>")
    assert _shown(window.banner_text) == f"{MARKUP}\n<h1>not a heading</h1>"


def test_a_deleted_chat_titled_with_markup_is_named_as_text(qtbot, window):
    from PySide6.QtWidgets import QApplication

    conversation = window.store.create_conversation(model="m", title=MARKUP)
    window.sidebar.model.refresh()
    window.sidebar.delete(conversation.id)
    QApplication.processEvents()
    assert _shown(window.sidebar.undo_label) == f"Deleted “{MARKUP}”"


def test_tool_tips_show_markup_as_text():
    from PySide6.QtGui import Qt as GuiQt
    from PySide6.QtGui import QTextDocument

    from app.gui.plain_text import plain_tooltip

    text = f"{MARKUP}\nsecond line & more"
    tip = plain_tooltip(text)
    assert GuiQt.mightBeRichText(tip)  # so Qt renders the escaped form, never the raw one
    document = QTextDocument()
    document.setHtml(tip)
    assert document.toPlainText() == text


def test_a_settings_section_shows_a_failed_jobs_markup_as_text(qtbot):
    """Settings pages run their work in the background and show its error in their banner."""
    from app.gui.settings.widgets import Section
    from engine.errors import HearthError

    section = Section("Test message")
    qtbot.addWidget(section)

    def fails():
        raise HearthError(f"{MARKUP} is not a model folder")

    section.run(fails, lambda _result: None, "Could not add it")
    qtbot.waitUntil(lambda: section.banner.text() != "", timeout=WAIT_MS)
    assert section.banner.text() == f"Could not add it: {MARKUP} is not a model folder"
    assert section.banner.textFormat() == Qt.TextFormat.PlainText  # its accessible name is fixed


def test_table_tool_tips_show_markup_as_text(qtbot):
    """The Settings tables (catalog, Hub search, installed models): a name or a fit note from
    outside, shown in a tool tip, keeps its markup as text."""
    from PySide6.QtGui import QTextDocument

    from app.gui.settings.tables import Column, RowTableModel

    model = RowTableModel([Column("Name", lambda row: row)])
    model.set_rows([MARKUP])
    document = QTextDocument()
    document.setHtml(model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole))
    assert document.toPlainText() == MARKUP
    assert model.index(0, 0).data(Qt.ItemDataRole.DisplayRole) == MARKUP
