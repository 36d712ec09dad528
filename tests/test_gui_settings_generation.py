"""Settings > Generation, applied at once: the speculative decoding choice (Prefs "generation/draft",
with draft models from the library that share the default model's tokenizer) and the context length."""

from __future__ import annotations

import pytest
import tiny_models
from gui_window import send, wait_idle, window_fixture  # noqa: F401 - window_fixture: the `window` fixture
from PySide6.QtCore import Qt
from test_gui_settings import (  # noqa: F401 - the fixtures open_dialog (a shown Settings dialog) needs
    manager_fixture,
    open_dialog_fixture,
    store_fixture,
)

from app.gui.prefs import Prefs
from engine.library import library


@pytest.fixture
def library_models(tmp_path, model_copy):
    """A default model, a smaller one with its tokenizer, one with another tokenizer, and one with its
    tokenizer but larger: only the second can draft for it."""
    target = tiny_models.build_model(tmp_path / "target", "spm_legacy", hidden_size=128, num_heads=2,
                                     num_kv_heads=1, intermediate_size=256)
    draft = model_copy("spm_legacy", "small-draft")
    other = model_copy("bpe_llama3", "other-vocabulary")
    larger = tiny_models.build_model(tmp_path / "larger", "spm_legacy", hidden_size=256, num_heads=4,
                                     num_kv_heads=2, intermediate_size=512)
    refs = {name: library.import_folder(path).ref
            for name, path in (("target", target), ("draft", draft), ("other", other), ("larger", larger))}
    library.set_default(refs["target"])
    return refs


def _generation_tab(qtbot, dialog):
    tab_bar = dialog.tabs.tabBar()
    index = next(i for i in range(tab_bar.count()) if tab_bar.tabText(i) == "Generation")
    qtbot.mouseClick(tab_bar, Qt.MouseButton.LeftButton, pos=tab_bar.tabRect(index).center())
    assert dialog.tabs.currentWidget() is dialog.generation_page
    return dialog.generation_page


def test_speculative_decoding_is_chosen_with_the_keyboard_and_kept(qtbot, library_models, open_dialog):
    page = _generation_tab(qtbot, open_dialog())
    combo = page.draft
    assert combo.currentData() == "auto"  # the default
    items = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    assert items == [("Automatic (prompt lookup where it pays)", "auto"), ("Prompt lookup", "lookup"),
                     ("Off", "off"), ("Draft model: small-draft", library_models["draft"])]

    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: Prefs().get("generation/draft") == "lookup", timeout=5_000)  # saved shortly
    qtbot.keyClick(combo, Qt.Key.Key_End)
    assert combo.currentText() == "Draft model: small-draft"
    page.window().close()  # closing Settings saves at once
    assert Prefs().get("generation/draft") == library_models["draft"]

    again = _generation_tab(qtbot, open_dialog())  # as after a restart
    assert again.draft.currentData() == library_models["draft"]
    again.draft.setFocus()
    qtbot.keyClick(again.draft, Qt.Key.Key_Up)
    assert again.draft.currentData() == "off"
    again.window().close()
    assert Prefs().get("generation/draft") == "off"


def test_a_chosen_draft_model_no_longer_matching_stays_chosen_and_says_so(qtbot, library_models,
                                                                        open_dialog):
    Prefs().set("generation/draft", library_models["other"])  # e.g. chosen for an earlier default model
    page = _generation_tab(qtbot, open_dialog())
    assert page.draft.currentData() == library_models["other"]
    assert "not checked" in page.draft.currentText()
    page.window().close()
    assert Prefs().get("generation/draft") == library_models["other"]  # not silently changed


def test_the_bridge_loads_the_chosen_draft_model_after_the_main_one(qtbot, library_models):
    from app.gui.bridge import EngineBridge
    from engine.generation import GenerationRequest
    from engine.sampling import SamplingSettings

    bridge = EngineBridge()
    bridge.start()
    results: dict[int, dict] = {}
    bridge.finished.connect(lambda request_id, result: results.__setitem__(request_id, result))

    def outcome(request_id: int) -> dict:
        qtbot.waitUntil(lambda: request_id in results, timeout=60_000)
        return results[request_id]

    try:
        assert outcome(bridge.load(library_models["target"]))["finish_reason"] == "done"
        refused = outcome(bridge.load_draft(library_models["other"]))
        assert refused["finish_reason"] == "error" and "tokenizers differ" in refused["error"]
        assert outcome(bridge.load_draft(library_models["draft"]))["finish_reason"] == "done"
        request = GenerationRequest([{"role": "user", "content": "Say something."}],
                                    SamplingSettings(temperature=0.0, max_tokens=8), draft="model")
        answer = outcome(bridge.generate(request))
        assert answer["finish_reason"] in ("stop", "length") and answer["generation_tokens"] > 0
        assert answer["draft_proposed"] > 0  # the draft model drafted
    finally:
        bridge.shutdown()


def test_the_window_answers_with_the_draft_model_settings_chose(qtbot, window, model_copy):
    """The choice reaches the chat at once: the draft model is loaded beside the model and drafts
    the next answer; one that cannot draft is refused with a notice, and answers go on without it."""
    results: list[dict] = []
    window.bridge.finished.connect(lambda _request_id, data: results.append(data))
    other = library.import_folder(model_copy("bpe_llama3", "other-vocabulary")).ref
    window.prefs.set("generation/draft", other)  # what closing Settings does with the choice
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=30_000)
    assert "draft model" in window.banner_text.text() and "tokenizers differ" in window.banner_text.text()
    assert window.chat.session.draft == "auto"
    assert "4,096-token context" in window.model_state.text()  # the model itself is still loaded

    draft = library.import_folder(model_copy("spm_legacy", "small-draft")).ref
    window.prefs.set("generation/draft", draft)
    qtbot.waitUntil(lambda: window.chat.session.draft == "model", timeout=30_000)
    results.clear()
    send(qtbot, window, "Say something.")
    wait_idle(qtbot, window)
    [answer] = [r for r in results if r.get("generation_tokens")]
    assert answer["finish_reason"] in ("stop", "length") and answer["draft_proposed"] > 0

    window.prefs.set("generation/draft", "off")
    assert window.chat.session.draft == "off"


def test_a_new_context_length_in_settings_reloads_the_model_with_it(qtbot, window):
    """Settings > Generation > Context length, typed in: the loaded model is loaded again with it,
    and the next answer's context meter counts against it."""
    settings = next(a for a in window.menuBar().actions() if a.text().replace("&", "") == "Edit")
    next(a for a in settings.menu().actions() if a.text() == "Settings…").trigger()
    qtbot.waitUntil(lambda: window._settings_dialog is not None and window._settings_dialog.isVisible(),
                    timeout=10_000)
    page = _generation_tab(qtbot, window._settings_dialog)
    page.context_length.setFocus()
    qtbot.keyClick(page.context_length, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(page.context_length, "2048")
    qtbot.keyClick(page.context_length, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "2,048-token context" in window.model_state.text(), timeout=30_000)
    window._settings_dialog.close()
    send(qtbot, window, "Hello")
    wait_idle(qtbot, window)
    assert window.context_meter.maximum() == 2048 and window.context_meter.value() > 0
