"""The first-run page: Llama 2 7B Chat from its real source (a GGUF file) in one click, then a chat."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import tiny_models
from gguf_writer import write_gguf
from hub_server import HubServer, configure_hf_client
from PySide6.QtWidgets import QApplication, QLabel, QPushButton

from engine.library import catalog


@pytest.fixture
def hub(tmp_path, monkeypatch):
    float_model = tiny_models.build_model(tmp_path / "float", "spm_legacy", quantize=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    llama2 = next(e for e in catalog.load() if e.id == "llama-2-7b-chat")
    write_gguf(float_model, repo / llama2.file, tensor_type="Q4_0", name="llama-2-7b-chat")
    with HubServer() as server:
        server.add_repo(llama2.repo_id, repo)
        configure_hf_client(monkeypatch, server.endpoint, tmp_path / "hf")
        yield server, llama2


def test_welcome_downloads_and_imports_llama2_then_offers_the_chat(qtbot, hub):
    from app.gui.app import build_window

    server, llama2 = hub
    window = build_window(QApplication.instance())
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.welcome, timeout=30_000)
    buttons = [b for b in window.welcome.findChildren(QPushButton) if b.accessibleName() == f"Download {llama2.name}"]
    assert len(buttons) == 1 and buttons[0].isEnabled()
    with qtbot.waitSignal(window.welcome.chatRequested, timeout=120_000) as chat:
        buttons[0].click()
    assert chat.args == ["llama-2-7b-chat.Q4_0"]
    assert any(r.path.endswith(llama2.file) for r in server.requests if r.method == "GET")
    qtbot.waitUntil(lambda: "4,096-token context" in window.model_state.text(), timeout=60_000)
    assert window.pages.currentIndex() == 1
    statuses = [label.text() for label in window.welcome.findChildren(QLabel)
                if label.accessibleName() == f"{llama2.name} progress"]
    assert statuses == ["Ready"]
    window.close()


def test_welcome_offers_ollama_models_for_import(qtbot, tmp_path, monkeypatch):
    import test_discover

    from app.gui.app import build_window

    float_model = tiny_models.build_model(tmp_path / "f", "spm_legacy", quantize=False)
    data = write_gguf(float_model, tmp_path / "m.gguf", tensor_type="Q8_0", name="llama-2-7b-chat").read_bytes()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    test_discover._ollama(tmp_path / "home", data)
    window = build_window(QApplication.instance())
    qtbot.addWidget(window)
    window.show()
    name = "Import llama2-7b-chat from Ollama"
    qtbot.waitUntil(lambda: any(b.accessibleName() == name for b in window.welcome.findChildren(QPushButton)),
                    timeout=30_000)
    button = next(b for b in window.welcome.findChildren(QPushButton) if b.accessibleName() == name)
    with qtbot.waitSignal(window.welcome.chatRequested, timeout=120_000) as chat:
        button.click()
    assert chat.args == ["llama2-7b-chat"]
    window.close()
