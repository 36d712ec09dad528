"""Text from outside the app shown as text, never as HTML.

Errors, model and folder names, chat titles and messages from the Hub can hold anything. QLabel,
QMessageBox and tool tips guess the format by default (Qt.mightBeRichText): a first line with
something like a tag in it is drawn as rich text, so `<img src=x>` in an error would become an
image. Labels and message boxes that show such text are set to Qt.PlainText; a tool tip has no
such setting, so its text is escaped inside markup that makes it rich text for certain.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel


def plain(label: QLabel) -> QLabel:
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def plain_tooltip(text: str) -> str:
    """A tool tip that shows `text` exactly, line breaks included."""
    return f"<p style='white-space: pre-wrap'>{html.escape(text)}</p>" if text else ""
