"""Settings > Server: the app's switch for the OpenAI/Ollama server, clicked as a user does.

The server answers through the app's own engine thread (a real EngineBridge with a tiny Llama 2
style model loaded), with the real `openai` client. Waits are bounded by qtbot's timeouts.
"""

from __future__ import annotations

import socket
import threading

import openai
import pytest
from gui_window import WAIT_MS, menu_action, send, wait_idle, window_fixture  # noqa: F401 - `window`
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from app.gui.bridge import EngineBridge
from app.gui.prefs import Prefs
from app.gui.settings import SettingsDialog
from app.gui.settings.server_page import DEFAULT_PORT
from engine.generation import GenerationRequest
from engine.history import HistoryStore
from engine.sampling import SamplingSettings

TIMEOUT_MS = 60_000
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def bridge(qtbot, llama2_chat):
    bridge = EngineBridge()
    bridge.start()
    with qtbot.waitSignal(bridge.modelLoaded, timeout=TIMEOUT_MS):
        bridge.load(str(llama2_chat))
    yield bridge
    bridge.shutdown(10.0)


@pytest.fixture
def dialog(qtbot, bridge):
    from app.gui.downloads import DownloadManager

    store, downloads = HistoryStore(), DownloadManager()
    dialog = SettingsDialog(Prefs(), store, downloads, bridge=bridge)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.tabs.setCurrentWidget(dialog.server_page)
    yield dialog
    page = dialog.server_page
    if page.switch.isChecked():
        _click(qtbot, page.switch)
    for server in page.server._stopping:
        server.wait(10)
    downloads.shutdown(10.0)
    store.close()


def _click(qtbot, checkbox) -> None:
    qtbot.mouseClick(checkbox, Qt.MouseButton.LeftButton, pos=QPoint(6, checkbox.height() // 2))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _switch_on(qtbot, page, port: int) -> str:
    page.port.setValue(port)
    _click(qtbot, page.switch)
    qtbot.waitUntil(lambda: page.address.text().startswith("http://"), timeout=TIMEOUT_MS)
    return f"http://127.0.0.1:{port}"


def test_off_by_default_then_serves_the_apps_model_and_stops(qtbot, dialog):
    page = dialog.server_page
    port = _free_port()
    assert not page.switch.isChecked() and page.port.value() == DEFAULT_PORT
    assert page.address.text().startswith("Off") and not _listening(DEFAULT_PORT)
    assert page.model.text() == "spm_legacy"

    url = _switch_on(qtbot, page, port)
    assert page.address.text().startswith(f"{url}/v1 (OpenAI)")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="hearth", timeout=60, max_retries=0)
    reply = client.chat.completions.create(model="spm_legacy", messages=HELLO, temperature=0, max_tokens=8)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 8
    qtbot.waitUntil(lambda: page.requests.text() == "1", timeout=TIMEOUT_MS)

    assert f"{url}/v1" in page.example.toPlainText() and '"spm_legacy"' in page.example.toPlainText()
    qtbot.mouseClick(page.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == page.example.toPlainText()

    _click(qtbot, page.switch)
    assert page.address.text().startswith("Off")
    qtbot.waitUntil(lambda: not _listening(port), timeout=TIMEOUT_MS)


def test_server_and_window_requests_share_the_engine_and_the_page_shows_it_generating(qtbot, dialog, bridge):
    page = dialog.server_page
    url = _switch_on(qtbot, page, _free_port())
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="hearth", timeout=60, max_retries=0)
    results = {}

    def ask() -> None:
        stream = client.chat.completions.create(model="spm_legacy", messages=HELLO, temperature=0,
                                                max_tokens=300, stream=True)
        results["server"] = "".join(c.choices[0].delta.content or "" for c in stream)

    asking = threading.Thread(target=ask)
    asking.start()
    qtbot.waitUntil(lambda: "generating for 1 client" in page.address.text(), timeout=TIMEOUT_MS)
    # The window asks meanwhile: its request queues behind the client's on the same engine thread.
    with qtbot.waitSignal(bridge.finished, timeout=TIMEOUT_MS) as finished:
        window_request = bridge.generate(GenerationRequest(HELLO, SamplingSettings(temperature=0, max_tokens=8)))
    asking.join(60)
    assert finished.args[0] == window_request and finished.args[1]["finish_reason"] == "length"
    assert results["server"].startswith(finished.args[1]["text"])  # greedy: the same opening
    qtbot.waitUntil(lambda: "generating" not in page.address.text(), timeout=TIMEOUT_MS)


def test_a_port_in_use_is_shown_and_the_switch_goes_back_off(qtbot, dialog):
    page = dialog.server_page
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        page.port.setValue(taken.getsockname()[1])
        _click(qtbot, page.switch)
        qtbot.waitUntil(lambda: page.banner.is_error, timeout=TIMEOUT_MS)
    assert "in use" in page.banner.text() and not page.switch.isChecked()
    assert page.port.isEnabled()


def test_without_the_apps_engine_the_switch_is_disabled(qtbot):
    from app.gui.downloads import DownloadManager

    store, downloads = HistoryStore(), DownloadManager()
    try:
        dialog = SettingsDialog(Prefs(), store, downloads)
        qtbot.addWidget(dialog)
        assert not dialog.server_page.switch.isEnabled()
    finally:
        downloads.shutdown(10.0)
        store.close()


def test_in_the_app_the_window_shows_a_client_being_answered_and_still_answers_its_user(qtbot, window):
    menu_action(window, "Settings…").trigger()
    dialog = window._settings_dialog
    page = dialog.server_page
    dialog.tabs.setCurrentWidget(page)
    indicator = page.indicator
    assert window.statusBar().isAncestorOf(indicator) and not indicator.isVisible()
    port = _free_port()
    url = _switch_on(qtbot, page, port)
    try:
        assert indicator.isVisible() and indicator.text() == f"Serving at {url}"
        model = page.model.text()  # what a user copies from the page
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="hearth", timeout=60, max_retries=0)
        results = {}

        def ask() -> None:
            stream = client.chat.completions.create(model=model, messages=HELLO, temperature=0,
                                                    max_tokens=300, stream=True)
            results["server"] = [c.choices[0].finish_reason for c in stream if c.choices]

        asking = threading.Thread(target=ask)
        asking.start()
        qtbot.waitUntil(lambda: "answering 1 client" in indicator.text(), timeout=WAIT_MS)
        send(qtbot, window, "Hello from the window")  # queued behind the client on the engine thread
        wait_idle(qtbot, window)
        asking.join(60)
        assert results["server"][-1] == "length"
        assert "Hello from the window" in window.transcript.toPlainText()
        qtbot.waitUntil(lambda: indicator.text() == f"Serving at {url}", timeout=WAIT_MS)
    finally:
        _click(qtbot, page.switch)
    assert not indicator.isVisible()
    qtbot.waitUntil(lambda: not _listening(port), timeout=WAIT_MS)
    dialog.close()

