"""Every door of the app that gets a model goes through the acquisition pipeline, and works when used:
the Settings catalog's Download on a GGUF entry, Settings' Import Folder / Import GGUF buttons, the
models Ollama found, File > Add Model…, and a .gguf dropped onto the window."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import tiny_models
from gguf_writer import write_gguf
from hub_server import HubServer, configure_hf_client
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog

from engine.library import catalog, library
from engine.sampling import SamplingSettings

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    return tiny_models.build_model(tmp_path_factory.mktemp("float") / "tiny", "spm_legacy", quantize=False)


@pytest.fixture
def gguf_file(tmp_path, float_model):
    return write_gguf(float_model, tmp_path / "tiny-llama-2-chat.Q8_0.gguf", tensor_type="Q8_0",
                      name="llama-2-7b-chat")


@pytest.fixture
def window(qtbot):
    from app.gui.app import build_window

    window = build_window(QApplication.instance())
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


def _pick_in_file_dialog(qtbot, path) -> None:
    """Do what a user does in the open file dialog: choose the path and press Open."""
    qtbot.waitUntil(lambda: _open_file_dialog() is not None, timeout=10_000)
    dialog = _open_file_dialog()
    dialog.selectFile(str(path))
    dialog.accept()


def _open_file_dialog() -> QFileDialog | None:
    return next((w for w in QApplication.topLevelWidgets() if isinstance(w, QFileDialog) and w.isVisible()), None)


def _menu_action(window, menu_title: str, text: str):
    menu = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == menu_title)
    return next(a for a in menu.actions() if a.text() == text)


def _models_page(qtbot, window):
    """Edit > Settings…, whose first page is Models."""
    _menu_action(window, "Edit", "Settings…").trigger()
    qtbot.waitUntil(lambda: window._settings_dialog is not None and window._settings_dialog.isVisible(),
                    timeout=10_000)
    dialog = window._settings_dialog
    assert dialog.tabs.currentWidget() is dialog.models_page
    return dialog, dialog.models_page


def test_settings_catalog_download_of_a_gguf_entry_ends_with_a_usable_model(qtbot, window, tmp_path,
                                                                             monkeypatch, float_model):
    llama2 = next(e for e in catalog.load() if e.id == "llama-2-7b-chat")
    repo = tmp_path / "repo"
    repo.mkdir()
    write_gguf(float_model, repo / llama2.file, tensor_type="Q4_0", name="llama-2-7b-chat")
    with HubServer() as server:
        server.add_repo(llama2.repo_id, repo)
        configure_hf_client(monkeypatch, server.endpoint, tmp_path / "hf")
        dialog, page = _models_page(qtbot, window)
        section = page.catalog
        page.setCurrentWidget(section)
        qtbot.waitUntil(lambda: section.model.rowCount() > 0, timeout=10_000)
        row = next(i for i, r in enumerate(section.model.rows()) if r.entry.id == "llama-2-7b-chat")
        section.view.setCurrentIndex(section.model.index(row, 0))
        with qtbot.waitSignal(window.downloads.finished, timeout=TIMEOUT_MS) as done:
            qtbot.mouseClick(section.download_button, Qt.MouseButton.LeftButton)
        assert done.args[1]["status"] == "complete", done.args[1]
        assert done.args[1]["ref"] == "llama-2-7b-chat.Q4_0"
    model = library.find("llama-2-7b-chat.Q4_0")
    assert model.usable and model.kind == "converted"  # converted, not a bare .gguf "without config.json"
    qtbot.waitUntil(lambda: page.installed.select("llama-2-7b-chat.Q4_0"), timeout=10_000)
    dialog.close()
    _chat_with(qtbot, window, "llama-2-7b-chat.Q4_0")


def _chat_with(qtbot, window, ref: str) -> None:
    """Pick the model in the toolbar with the keyboard, type a message, press Return: an answer."""
    picker = window.model_picker
    qtbot.waitUntil(lambda: picker.findData(ref) >= 0, timeout=10_000)
    picker.setFocus()
    while picker.currentData() != ref:
        before = picker.currentIndex()
        QTest.keyClick(picker, Qt.Key.Key_Down if picker.findData(ref) > before else Qt.Key.Key_Up)
        assert picker.currentIndex() != before
    qtbot.waitUntil(lambda: window.chat.model_ref == ref and "context" in window.model_state.text(),
                    timeout=60_000)
    window.chat.sampling = SamplingSettings(temperature=0.0, max_tokens=6)
    QTest.keyClicks(window.composer.edit, "Hello there")
    QTest.keyClick(window.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.chat.busy, timeout=10_000)
    qtbot.waitUntil(lambda: not window.chat.busy, timeout=60_000)
    path = window.chat.store.active_path(window.chat.conversation_id)
    assert [m.role for m in path][-2:] == ["user", "assistant"] and path[-1].content


def test_import_gguf_button_shows_a_bad_files_error_then_imports_a_good_one(qtbot, window, tmp_path,
                                                                             gguf_file):
    dialog, page = _models_page(qtbot, window)
    installed = page.installed
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(gguf_file.read_bytes()[:5000])
    with qtbot.waitSignal(window.downloads.finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(installed.import_file_button, Qt.MouseButton.LeftButton)
        _pick_in_file_dialog(qtbot, broken)
    assert installed.banner.is_error and "broken.gguf" in installed.banner.text()
    assert "Traceback" not in installed.banner.text()

    with qtbot.waitSignal(installed.modelsChanged, timeout=TIMEOUT_MS):
        qtbot.mouseClick(installed.import_file_button, Qt.MouseButton.LeftButton)
        _pick_in_file_dialog(qtbot, gguf_file)
    assert not installed.banner.is_error
    qtbot.waitUntil(lambda: installed.select("tiny-llama-2-chat.Q8_0"), timeout=10_000)
    assert library.find("tiny-llama-2-chat.Q8_0").usable


def test_import_folder_button_takes_an_mlx_lm_folder_and_says_why_a_bad_one_is_refused(
        qtbot, window, model_copy):
    dialog, page = _models_page(qtbot, window)
    installed = page.installed
    bad = model_copy("spm_legacy", name="no-tokenizer")
    (bad / "tokenizer.model").unlink()
    with qtbot.waitSignal(window.downloads.finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(installed.import_button, Qt.MouseButton.LeftButton)
        _pick_in_file_dialog(qtbot, bad)
    assert installed.banner.is_error
    assert "has no tokenizer: neither tokenizer.json nor tokenizer.model is there" in installed.banner.text()

    good = model_copy("spm_legacy", name="good-model")
    with qtbot.waitSignal(installed.modelsChanged, timeout=TIMEOUT_MS):
        qtbot.mouseClick(installed.import_button, Qt.MouseButton.LeftButton)
        _pick_in_file_dialog(qtbot, good)
    qtbot.waitUntil(lambda: installed.select("good-model"), timeout=10_000)


def test_models_ollama_downloaded_can_be_imported_from_settings_any_time(qtbot, tmp_path, monkeypatch,
                                                                        float_model):
    import test_discover

    from app.gui.app import build_window

    data = write_gguf(float_model, tmp_path / "m.gguf", tensor_type="Q8_0", name="llama-2-7b-chat").read_bytes()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    test_discover._ollama(tmp_path / "home", data)
    library.import_folder(tiny_models_folder(tmp_path))  # a model is already there: no welcome page
    window = build_window(QApplication.instance())
    qtbot.addWidget(window)
    window.show()
    dialog, page = _models_page(qtbot, window)
    installed = page.installed
    qtbot.mouseClick(installed.found_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: installed.found_menu.isVisible(), timeout=10_000)
    action = next(a for a in installed.found_menu.actions() if a.text().startswith("llama2-7b-chat (Ollama"))
    with qtbot.waitSignal(installed.modelsChanged, timeout=TIMEOUT_MS):
        action.trigger()
    assert library.find("llama2-7b-chat").usable
    window.close()


def tiny_models_folder(tmp_path):
    return tiny_models.build_model(tmp_path / "already-there", "spm_legacy")


def test_file_add_model_menu_imports_a_gguf_and_opens_a_chat_with_it(qtbot, tmp_path, gguf_file):
    from app.gui.app import build_window

    default = library.import_folder(tiny_models_folder(tmp_path))
    library.set_default(default.ref)  # another model is the default: the added one must still win
    window = build_window(QApplication.instance())
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.chat.model_ref == default.ref, timeout=60_000)
    action = _menu_action(window, "File", "Add Model…")
    with qtbot.waitSignal(window.downloads.finished, timeout=TIMEOUT_MS) as done:
        action.trigger()
        _pick_in_file_dialog(qtbot, gguf_file)
    assert done.args[1]["status"] == "complete", done.args[1]
    qtbot.waitUntil(lambda: window.model_picker.currentText().startswith("tiny-llama-2-chat.Q8_0 ·")
                    and window.model_state.text().startswith("Loaded"), timeout=60_000)
    assert window.model_picker.currentData() == "tiny-llama-2-chat.Q8_0"
    _chat_with(qtbot, window, "tiny-llama-2-chat.Q8_0")
    window.close()


def test_a_gguf_dropped_on_the_window_is_imported(qtbot, window, gguf_file):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(gguf_file))])
    centre = QPoint(window.width() // 2, window.height() // 2)
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(centre.toPointF(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.downloads.finished, timeout=TIMEOUT_MS) as done:
        QApplication.sendEvent(window, drop)
    assert done.args[1]["status"] == "complete", done.args[1]
    assert library.find("tiny-llama-2-chat.Q8_0").usable


def test_a_text_file_dropped_on_the_window_is_refused(qtbot, window, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(text))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def _answer_question(qtbot, button_text: str) -> None:
    """Click a button of the question box the app shows (a window-modal sheet on macOS)."""
    from PySide6.QtWidgets import QMessageBox

    def box():
        return next((w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()),
                    None)

    qtbot.waitUntil(lambda: box() is not None, timeout=10_000)
    button = next(b for b in box().buttons() if b.text() == button_text)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


@pytest.mark.parametrize("choice", ["Convert to 4-bit", "Use As It Is"])
def test_a_16_bit_folder_is_converted_to_4_bit_or_used_as_it_is_as_the_user_chooses(qtbot, window, tmp_path,
                                                                                     choice):
    from test_convert_hf import build_hf_folder

    source = build_hf_folder(tmp_path / "Tiny-Llama-2-chat-hf")
    dialog, page = _models_page(qtbot, window)
    installed = page.installed
    with qtbot.waitSignal(installed.modelsChanged, timeout=TIMEOUT_MS):
        qtbot.mouseClick(installed.import_button, Qt.MouseButton.LeftButton)
        _pick_in_file_dialog(qtbot, source)
        _answer_question(qtbot, choice)
    if choice == "Convert to 4-bit":
        model = library.find("Tiny-Llama-2-chat-hf-4bit")
        assert model.kind == "converted" and model.info.quantization == {"bits": 4, "group_size": 64}
    else:
        model = library.find(str(source.resolve()))
        assert model.kind == "folder" and model.info.quantization is None
    assert model.usable
