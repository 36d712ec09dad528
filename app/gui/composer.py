"""The message box: Enter sends, Shift+Enter adds a line, Esc stops; huge pastes are refused clearly."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

# A Llama 2 context holds about 16 KB of text; a paste far beyond that cannot be answered, and
# laying out megabytes in the box would stall the window.
MAX_MESSAGE_CHARS = 256 * 1024
MIN_LINES, MAX_LINES = 2, 8  # the message box's height, in lines of text


class MessageEdit(QPlainTextEdit):
    """Signals:
        sendRequested(): Enter pressed.
        stopRequested(): Esc pressed.
        pasteRefused(str): a paste was too large; the message says so.
    """

    sendRequested = Signal()
    stopRequested = Signal()
    pasteRefused = Signal(str)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.sendRequested.emit()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.stopRequested.emit()
            return
        super().keyPressEvent(event)

    def insertFromMimeData(self, source: QMimeData) -> None:
        text = source.text() if source.hasText() else ""
        total = len(self.toPlainText()) + len(text)
        if total > MAX_MESSAGE_CHARS:
            self.pasteRefused.emit(
                f"That paste is {len(text.encode('utf-8')) / 1024:,.0f} KB; a message can hold up to "
                f"{MAX_MESSAGE_CHARS // 1024} KB (the model reads about 16 KB at a time). Paste a "
                f"smaller part.")
            return
        super().insertFromMimeData(source)


class Composer(QWidget):
    """Signals:
        send(str): the user asked to send this text. The box keeps it until `message_sent()`: a
            message that could not be sent is never lost.
        stop(): stop the answer being generated.
    """

    send = Signal(str)
    stop = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.edit = MessageEdit()
        self.edit.setAccessibleName("Message")
        self.edit.setPlaceholderText("Message (Return sends, Shift+Return: new line)")
        self.edit.setTabChangesFocus(True)  # Tab moves on, as everywhere else in the window
        self.edit.textChanged.connect(self._fit_height)
        self._fit_height()
        self.edit.sendRequested.connect(self._send)
        self.edit.stopRequested.connect(self._stop)
        self.edit.pasteRefused.connect(self.show_notice)
        self.send_button = QPushButton("Send")
        self.send_button.clicked.connect(self._send)
        self.send_button.setAccessibleName("Send message")
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self._stop)
        self.stop_button.setAccessibleName("Stop generating")
        self.stop_button.hide()
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.PlainText)  # it can quote a chat's title
        self.notice.setAccessibleName("Composer notice")
        self.notice.hide()
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.edit, 1)
        row.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 6)
        layout.addWidget(self.notice)
        layout.addLayout(row)

    def _fit_height(self) -> None:
        """The box grows with its text, from two lines to about eight, then scrolls."""
        lines = max(MIN_LINES, min(MAX_LINES, int(self.edit.document().size().height())))
        frame = self.edit.frameWidth() * 2 + int(self.edit.document().documentMargin() * 2)
        self.edit.setFixedHeight(lines * self.edit.fontMetrics().lineSpacing() + frame + 4)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override: lines wrap anew
        super().resizeEvent(event)
        self._fit_height()

    # Slots, not the signals' emit: clicked(bool) would hand its `checked` to a signal with no
    # arguments, and the click would do nothing.
    def _send(self) -> None:
        text = self.edit.toPlainText()
        if text.strip():
            self.send.emit(text)

    def _stop(self) -> None:
        self.stop.emit()

    def message_sent(self) -> None:
        """The message was taken: empty the box."""
        self.notice.hide()
        self.edit.clear()

    def set_generating(self, generating: bool) -> None:
        self.stop_button.setVisible(generating)
        self.send_button.setVisible(not generating)

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
