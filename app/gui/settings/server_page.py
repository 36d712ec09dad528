"""The Server tab: serve the model loaded in the app to other apps over HTTP (OpenAI and Ollama APIs).

Off by default and off at every start: nothing listens until the user turns it on. The server sends
its requests to the app's own engine thread (EngineBridge.engine), where they queue in order with the
window's. It listens on 127.0.0.1 only, so it needs no key.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from ..background import run_in_background
from ..bridge import EngineBridge
from ..plain_text import plain
from .widgets import Banner, hbox, int_spin, named, push_button

DEFAULT_PORT = 8470
HOST = "127.0.0.1"


class AppServer(QObject):
    """The app's one server: started and stopped from the GUI thread, never waited on there.

    Signals:
        changed(): started, stopped, or a request started or ended (on the GUI thread).
    """

    changed = Signal()
    _from_loop = Signal()  # emitted on the server's loop thread; queued to the GUI thread

    def __init__(self, bridge: EngineBridge, parent: QObject | None = None) -> None:
        super().__init__(parent)
        from app.server.backend import ServedEngine

        self.served = ServedEngine(bridge.engine, on_change=self._from_loop.emit)
        self._from_loop.connect(self._relay, Qt.ConnectionType.QueuedConnection)
        self.server = None  # app.server.running.Server while on
        self._wanted = False  # on, as far as the user knows (a start may still be binding)
        self._stopping: list = []  # servers asked to stop, whose threads may still be ending
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else ""

    def start(self, port: int, on_error, parent: QObject) -> None:
        """Bind and serve in the background; on_error(exc) on the GUI thread if it cannot."""

        self._wanted = True
        stopping = list(self._stopping)

        def bind():
            from app.server.running import Server

            for old in stopping:  # the port is free once the previous server has ended
                old.wait(5)
            return Server(self.served, HOST, port).start()

        run_in_background(bind, self._started, on_error, parent=parent)

    def _started(self, server) -> None:
        if not self._wanted:  # turned off again while it was starting
            server.stop()
            self._stopping.append(server)
            return
        self.server = server
        self._stopping = [old for old in self._stopping if old.running]
        self.changed.emit()

    def _relay(self) -> None:
        self.changed.emit()

    def stop(self) -> None:
        self._wanted = False
        if self.server is None:
            return
        server, self.server = self.server, None
        server.stop()  # asks; the server's own thread ends it (and frees the port) shortly
        self._stopping.append(server)
        self.changed.emit()


class ServerIndicator(QLabel):
    """For the main window's status bar: the server's address while it is on, and when it is
    answering a client (hidden while off)."""

    def __init__(self, server: AppServer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        plain(self)
        named(self, "Server status")
        self.server = server
        server.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        url = self.server.url
        self.setVisible(bool(url))
        busy = self.server.served.active
        self.setText(f"Serving at {url}" + (f"; answering {busy} client(s)" if busy else ""))


class ServerPage(QWidget):
    def __init__(self, bridge: EngineBridge | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.server = AppServer(bridge, self) if bridge is not None else None
        # The main window puts this in its status bar (see SettingsDialog).
        self.indicator = ServerIndicator(self.server) if self.server is not None else None
        self.switch = named(QCheckBox("Serve the loaded model to other apps on this computer"),
                            "Local server", "OpenAI- and Ollama-compatible HTTP on 127.0.0.1")
        self.port = int_spin("Server port", 1024, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.address = named(plain(QLabel("Off")), "Server address")
        self.model = named(plain(QLabel()), "Served model")
        self.requests = named(plain(QLabel("0")), "Requests served")
        self.example = named(QPlainTextEdit(), "Example request")
        self.example.setReadOnly(True)
        self.example.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.copy_button = push_button("Copy Example", "Copy example request", self._copy)
        self.banner = Banner("Server message")
        form = QFormLayout()
        form.addRow("Port:", self.port)
        form.addRow("Address:", self.address)
        form.addRow("Model:", self.model)
        form.addRow("Requests served:", self.requests)
        layout = QVBoxLayout(self)
        layout.addWidget(self.switch)
        layout.addLayout(form)
        layout.addWidget(self.banner)
        layout.addWidget(QLabel("Try it (any OpenAI or Ollama client works the same way):"))
        layout.addWidget(self.example, 1)
        layout.addLayout(hbox(self.copy_button))
        self.switch.toggled.connect(self._toggled)
        if self.server is None:
            self.switch.setEnabled(False)
            self.banner.show_info("The server runs inside the app window's session.")
        else:
            self.server.changed.connect(self.refresh)
            bridge.modelLoaded.connect(self.refresh)
            bridge.modelUnloaded.connect(self.refresh)
        self.refresh()

    def _toggled(self, on: bool) -> None:
        self.banner.clear_message()
        if on:
            self.port.setEnabled(False)
            self.address.setText("Starting…")
            self.server.start(self.port.value(), self._failed, self)
        else:
            self.server.stop()
            self.port.setEnabled(True)

    def _failed(self, exc: Exception) -> None:
        self.switch.setChecked(False)  # (clears the banner, so the error goes after)
        self.banner.show_error(f"The server did not start: {exc}")

    def refresh(self, *_args) -> None:
        served = self.server.served if self.server is not None else None
        model = served.model_id() if served is not None else None
        self.model.setText(model or "None loaded: load a model in the chat window")
        url = self.server.url if self.server is not None else ""
        if url:
            busy = served.active
            self.address.setText(f"{url}/v1 (OpenAI) and {url}/api (Ollama)"
                                 + (f"; generating for {busy} client(s)" if busy else ""))
        elif not self.switch.isChecked():
            self.address.setText("Off: nothing is listening")
        self.requests.setText(str(served.served if served is not None else 0))
        self.example.setPlainText(_example(url or f"http://{HOST}:{self.port.value()}", model or "MODEL"))

    def _copy(self) -> None:
        QApplication.clipboard().setText(self.example.toPlainText())
        self.banner.show_info("Example copied.")


def _example(url: str, model: str) -> str:
    model = json.dumps(model)[1:-1]  # as it must be written inside a JSON or Python string
    return (
        f"curl {url}/v1/chat/completions \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'\n"
        f"\n"
        f"# Python, with the openai package:\n"
        f"from openai import OpenAI\n"
        f"client = OpenAI(base_url=\"{url}/v1\", api_key=\"hearth\")\n"
        f"reply = client.chat.completions.create(model=\"{model}\",\n"
        f"    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}])\n"
        f"print(reply.choices[0].message.content)\n"
    )
