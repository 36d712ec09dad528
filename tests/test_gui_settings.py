"""The Settings window, its background helper and the download manager, offscreen with pytest-qt.

Downloads, catalog checks, Hub search and token checks go to tests/hub_server.py on 127.0.0.1
through the real huggingface_hub client; models are the tiny ones from tests/tiny_models.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from hub_server import configure_hf_client, running_hub
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QFileDialog,
    QLineEdit,
    QPlainTextEdit,
    QTabBar,
    QTextEdit,
    QWidget,
)

from app.gui import background, settings
from app.gui.downloads import DownloadListModel, DownloadManager, DownloadRow
from app.gui.prefs import Prefs
from app.gui.settings import SettingsDialog
from engine.history import HistoryStore
from engine.history.export import validate_export
from engine.library import hub_cache, library, state

TINY_REPO = "mlx-community/Tiny-Hearth-4bit"
GATED_REPO = "acme/gated-tiny"
OLD_LAYOUT_REPO = "mlx-community/Llama-3.2-1B-Instruct-4bit"  # a catalog entry with source "mlx"
TOKEN = "hf_settings_test_token"
TIMEOUT_MS = 15_000


# --- fixtures and helpers ---

@pytest.fixture(autouse=True)
def restore_appearance(qapp):
    """Appearance tests change the application's font and colour scheme: put them back."""
    font = qapp.font()
    yield
    qapp.setFont(font)
    hints = qapp.styleHints()
    if hasattr(hints, "unsetColorScheme"):
        hints.unsetColorScheme()


@pytest.fixture(name="store")
def store_fixture():
    store = HistoryStore()
    yield store
    store.close()


@pytest.fixture(name="manager")
def manager_fixture(qapp):
    manager = DownloadManager()
    yield manager
    assert manager.shutdown(10.0)


@pytest.fixture(name="open_dialog")
def open_dialog_fixture(qtbot, store, manager):
    """open_dialog() -> a shown SettingsDialog on a fresh Prefs (as after a restart), loaded."""
    dialogs = []

    def open_() -> SettingsDialog:
        dialog = SettingsDialog(Prefs(), store, manager)
        qtbot.addWidget(dialog)
        dialog.show()
        settle(qtbot)
        dialogs.append(dialog)
        return dialog

    yield open_
    for dialog in dialogs:
        dialog.close()
    settle(qtbot)


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny):
    with running_hub(tokens={TOKEN}) as server:
        server.add_repo(TINY_REPO, tiny["spm_legacy"], tags=["mlx"], downloads=10)
        server.add_repo(GATED_REPO, tiny["spm_legacy"], gated=True, tags=["mlx"])
        server.add_repo(OLD_LAYOUT_REPO, {"config.json": json.dumps({"dim": 64, "n_layers": 2}),
                                          "weights.npz": b"\0" * 1000, "tokenizer.model": b"\0" * 10})
        # 8 KiB reads: a pause takes effect within a few kB, not at the end of a 10 MiB chunk.
        configure_hf_client(monkeypatch, server.endpoint, tmp_path / "hf-home", download_chunk_size=8192)
        yield server


def settle(qtbot) -> None:
    """Wait until every background job has delivered its result on the GUI thread."""
    qtbot.waitUntil(lambda: background.active_jobs() == 0, timeout=TIMEOUT_MS)


def texts(model, row: int) -> list[str]:
    return [model.index(row, c).data() for c in range(model.columnCount())]


def row_of(model, first_column: str) -> list[str] | None:
    return next((texts(model, r) for r in range(model.rowCount()) if texts(model, r)[0] == first_column), None)


def fake_cached_repo(source: Path, repo_id: str) -> Path:
    """A repo in the Hugging Face cache layout (blobs, snapshot symlinks, refs/main), as the
    Hugging Face CLI leaves it."""
    folder = hub_cache.repo_folder(repo_id)
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot, blobs = folder / "snapshots" / commit, folder / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    for file in source.iterdir():
        blob = blobs / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    return folder


def click(qtbot, button: QAbstractButton) -> None:
    assert button.isEnabled(), button.accessibleName()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def finished_with(status: str):
    return lambda repo_id, done: done["status"] == status


# --- background helper ---

def test_background_delivers_results_and_errors_on_the_gui_thread(qtbot):
    seen = {}

    def work():
        seen["worker"] = threading.current_thread()
        return 42

    def fail():
        raise ValueError("nope")

    with qtbot.waitSignal(background.run_in_background(work, lambda r: seen.update(result=(r, threading.current_thread()))).finished):
        pass
    with qtbot.waitSignal(background.run_in_background(fail, None, lambda e: seen.update(error=str(e))).finished):
        pass
    assert seen["worker"] is not threading.main_thread()
    assert seen["result"] == (42, threading.main_thread())
    assert seen["error"] == "nope"


def test_background_drops_callbacks_of_a_deleted_parent(qtbot):
    owner, gate, called = QObject(), threading.Event(), []
    op = background.run_in_background(gate.wait, called.append, called.append, parent=owner)
    import shiboken6

    shiboken6.delete(owner)  # e.g. the dialog was closed and deleted while the job ran
    with qtbot.waitSignal(op.finished):
        gate.set()
    assert called == []
    assert background.active_jobs() == 0


# --- list models ---

def test_list_models_pass_the_model_tester(qtmodeltester, qtbot, tiny, open_dialog, manager):
    library.import_folder(tiny["spm_legacy"])
    dialog = open_dialog()
    manager.model.upsert(DownloadRow("org/a", "paused", 10, 100))
    manager.model.upsert(DownloadRow("org/b", "failed", error="boom"))
    models_page = dialog.models_page
    for model in (manager.model, models_page.installed.model, models_page.catalog.model,
                  models_page.search.model):
        qtmodeltester.check(model)
    assert models_page.installed.model.rowCount() == 1
    assert models_page.catalog.model.rowCount() > 0
    assert manager.model.index(1).data(DownloadListModel.ErrorRole) == "boom"
    assert manager.model.index(0).data(DownloadListModel.ProgressRole) == 10


# --- installed models ---

def test_models_page_lists_imported_and_cached_models(tiny, open_dialog):
    library.import_folder(tiny["spm_legacy"])
    fake_cached_repo(tiny["bpe_llama3"], "org/Tiny-Cached")
    dialog = open_dialog()
    model = dialog.models_page.installed.model
    assert model.rowCount() == 2
    imported, cached = row_of(model, "spm_legacy"), row_of(model, "org/Tiny-Cached")
    header = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert header == ["Name", "Size on disk", "Parameters", "Quantization", "Context", "Fit", "Last used", "Status"]
    for row in (imported, cached):
        assert row[1].endswith("kB") and row[2] != "?" and row[4] != "?"
        assert row[5].startswith(("fits:", "tight:")) and "GiB" in row[5]
        assert row[6] == "never" and row[7] == "Ready"


def test_set_default_then_delete_a_cached_model(qtbot, tiny, open_dialog):
    folder = fake_cached_repo(tiny["bpe_llama3"], "org/Tiny-Cached")
    dialog = open_dialog()
    installed = dialog.models_page.installed
    assert installed.select("org/Tiny-Cached")
    with qtbot.waitSignal(dialog.modelsChanged, timeout=TIMEOUT_MS):
        click(qtbot, installed.default_button)
    settle(qtbot)
    assert library.default_model() == "org/Tiny-Cached"
    assert row_of(installed.model, "org/Tiny-Cached")[7] == "Default"

    assert installed.select("org/Tiny-Cached")
    click(qtbot, installed.delete_button)
    box = installed.confirm_box
    assert box.windowModality() == Qt.WindowModality.WindowModal  # a sheet: the app keeps running
    delete = next(b for b in box.buttons() if b.text() == "Delete")
    with qtbot.waitSignal(dialog.modelsChanged, timeout=TIMEOUT_MS):
        click(qtbot, delete)
    settle(qtbot)
    assert not folder.exists()
    assert "freed" in installed.banner.text() and not installed.banner.is_error
    assert installed.model.rowCount() == 0
    assert library.default_model() is None


# Importing through the buttons (folders, GGUF files, found models): tests/test_gui_add_model.py


def test_reveal_runs_the_libraries_command(qtbot, tiny, open_dialog, monkeypatch):
    library.import_folder(tiny["spm_legacy"])
    started = []
    monkeypatch.setattr(settings.models_page, "open_externally", lambda command: started.append(command) or True)
    dialog = open_dialog()
    installed = dialog.models_page.installed
    assert installed.select("spm_legacy")
    click(qtbot, installed.reveal_button)
    qtbot.waitUntil(lambda: len(started) == 1, timeout=TIMEOUT_MS)
    assert started == [library.reveal_command(tiny["spm_legacy"].resolve())]


# --- downloads ---

def test_download_from_search_shows_progress_pauses_resumes_and_completes(qtbot, hub, open_dialog, manager):
    hub.throttle(15_000)  # the tiny model's 110 kB take ~7 s: time to pause mid-way, also on a busy machine
    dialog = open_dialog()
    search, downloads = dialog.models_page.search, dialog.models_page.downloads
    search.query.setText("Tiny-Hearth")
    click(qtbot, search.search_button)
    settle(qtbot)
    assert search.select(TINY_REPO), search.banner.text()
    assert row_of(search.model, TINY_REPO)[3].startswith("fits")

    # More than config.json and generation_config.json (< 1 kB, fetched first): the weights are
    # under way, so the pause below leaves some of them to resume from.
    with qtbot.waitSignal(manager.progress, timeout=TIMEOUT_MS,
                          check_params_cb=lambda repo, p: p["state"] == "downloading" and p["done_bytes"] > 5_000):
        click(qtbot, search.download_button)
    row = manager.model.row(TINY_REPO)
    assert row.state == "downloading" and 0 < row.done_bytes < row.total_bytes
    assert "%" in manager.model.index(0).data()

    assert downloads.select(TINY_REPO)
    with qtbot.waitSignal(manager.finished, timeout=TIMEOUT_MS, check_params_cb=finished_with("paused")):
        click(qtbot, downloads.pause_button)
    assert manager.model.row(TINY_REPO).state == "paused"
    assert state.load()["downloads"][TINY_REPO]["state"] == "paused"
    assert list((hub_cache.repo_folder(TINY_REPO) / "blobs").glob("*.incomplete"))  # kept for the resume

    hub.throttle(None)
    with qtbot.waitSignal(dialog.modelsChanged, timeout=TIMEOUT_MS):
        click(qtbot, downloads.resume_button)
    assert manager.model.row(TINY_REPO).state == "complete"
    weights = [r for r in hub.requests_for("model.safetensors", "GET") if r.path.endswith("/model.safetensors")]
    assert weights[-1].range  # resumed where it stopped, with a Range request
    settle(qtbot)
    assert row_of(dialog.models_page.installed.model, TINY_REPO)[7] == "Ready"


def test_a_gated_repo_error_is_shown_with_a_way_forward(qtbot, hub, open_dialog, manager):
    dialog = open_dialog()
    downloads = dialog.models_page.downloads
    with qtbot.waitSignal(manager.finished, timeout=TIMEOUT_MS, check_params_cb=finished_with("failed")):
        manager.start(GATED_REPO)
    assert downloads.current().repo_id == GATED_REPO
    assert downloads.banner.is_error
    assert f"{GATED_REPO} is gated" in downloads.banner.text()
    assert "Hugging Face Token tab" in downloads.banner.text()
    assert downloads.resume_button.isEnabled()
    assert QApplication.activeModalWidget() is None


def test_shutdown_pauses_a_running_download_and_a_new_manager_lists_it(qtbot, hub, manager):
    hub.throttle(20_000)
    with qtbot.waitSignal(manager.progress, timeout=TIMEOUT_MS,
                          check_params_cb=lambda repo, p: p["done_bytes"] > 0):
        manager.start(TINY_REPO)
    assert manager.shutdown(10.0)
    assert state.load()["downloads"][TINY_REPO]["state"] == "paused"

    restarted = DownloadManager()
    qtbot.waitUntil(lambda: restarted.model.rowCount() == 1, timeout=TIMEOUT_MS)
    row = restarted.model.row(TINY_REPO)
    assert row.state == "paused" and row.done_bytes > 0 and row.total_bytes > row.done_bytes

    with qtbot.waitSignal(restarted.finished, timeout=TIMEOUT_MS, check_params_cb=finished_with("cancelled")):
        restarted.cancel(TINY_REPO)  # not running: the partial files are deleted in the background
    assert restarted.model.rowCount() == 0
    assert not hub_cache.repo_folder(TINY_REPO).exists()
    assert TINY_REPO not in state.load()["downloads"]


# --- catalog and token ---

def test_check_online_marks_an_old_layout_repo_unusable(qtbot, hub, open_dialog):
    dialog = open_dialog()
    section = dialog.models_page.catalog
    name = next(r.entry.name for r in section.model.rows() if r.entry.repo_id == OLD_LAYOUT_REPO)
    assert row_of(section.model, name)[6] in ("Available", "Recommended")
    click(qtbot, section.check_button)
    settle(qtbot)
    status = row_of(section.model, name)[6]
    assert status.startswith("Unusable:") and "old MLX layout (weights.npz)" in status
    assert not section.banner.is_error and "unusable" in section.banner.text()
    row = next(i for i, r in enumerate(section.model.rows()) if r.entry.repo_id == OLD_LAYOUT_REPO)
    section.view.setCurrentIndex(section.model.index(row, 0))
    assert not section.download_button.isEnabled()


def test_token_is_checked_with_the_hub_then_saved(qtbot, hub, open_dialog):
    dialog = open_dialog()
    section = dialog.models_page.token
    assert section.status.text() == "No token stored."
    assert section.entry.echoMode() == QLineEdit.EchoMode.Password

    section.entry.setText("hf_wrong")
    click(qtbot, section.save_button)
    settle(qtbot)
    assert section.banner.is_error and "401" in section.banner.text()
    assert not Path(os.environ["HF_TOKEN_PATH"]).exists()

    section.entry.setText(TOKEN)
    click(qtbot, section.save_button)
    settle(qtbot)
    assert section.status.text() == f"A token is stored for {hub.user}."
    assert Path(os.environ["HF_TOKEN_PATH"]).read_text() == TOKEN
    assert section.entry.text() == ""
    assert TOKEN not in section.banner.text() + section.status.text()

    again = open_dialog().models_page.token  # a new window (after a restart) knows whose token it is
    assert again.status.text() == f"A token is stored for {hub.user}."


# --- generation, appearance, data ---

def test_generation_defaults_and_presets_persist(qtbot, store, open_dialog):
    dialog = open_dialog()
    page = dialog.generation_page
    page.system_prompt.setPlainText("Answer briefly.")
    page.sampling.temperature.setValue(0.3)
    page.sampling.top_k.setValue(40)
    page.sampling.fixed_seed.setChecked(True)
    page.sampling.seed.setValue(1234)
    page.context_length.setValue(4096)
    page.presets.new_preset()
    page.presets.name.setText("Pirate")
    page.presets.prompt.setPlainText("Talk like a pirate.")
    page.presets.make_default.setChecked(True)
    click(qtbot, page.presets.save_button)
    settle(qtbot)
    dialog.close()  # saves what the delay had not saved yet

    sampling = Prefs().sampling()
    assert (sampling.temperature, sampling.top_k, sampling.seed) == (0.3, 40, 1234)
    again = open_dialog().generation_page
    assert again.system_prompt.toPlainText() == "Answer briefly."
    assert again.sampling.temperature.value() == pytest.approx(0.3)
    assert again.sampling.fixed_seed.isChecked() and again.sampling.seed.value() == 1234
    assert again.context_length.value() == 4096
    assert again.context_policy.currentData() == "drop_oldest"
    assert again.presets.list.item(0).text() == "Pirate (default)"
    preset = store.default_preset()
    assert preset.name == "Pirate" and preset.settings["temperature"] == 0.3

    again.presets.list.setCurrentRow(0)
    assert again.presets.prompt.toPlainText() == "Talk like a pirate."
    click(qtbot, again.presets.delete_button)
    settle(qtbot)
    assert "Pirate" not in [p.name for p in store.presets()]
    assert all(again.presets.list.item(i).text() != "Pirate (default)" for i in range(again.presets.list.count()))


def test_theme_change_is_applied_announced_and_saved(qtbot, qapp, open_dialog):
    from app.gui.theme import is_dark

    # The offscreen platform cannot switch its own look, so Hearth's palette does it.
    dialog = open_dialog()
    page = dialog.appearance_page
    assert not is_dark()
    with qtbot.waitSignal(dialog.appearanceChanged):
        page.theme.setCurrentIndex(page.theme.findData("dark"))
    assert Prefs().get("appearance/theme") == "dark" and is_dark()
    with qtbot.waitSignal(dialog.appearanceChanged):
        page.font_size.setValue(17)
    assert Prefs().get("appearance/font_size") == 17 and qapp.font().pointSize() == 17
    assert open_dialog().appearance_page.theme.currentData() == "dark"
    with qtbot.waitSignal(dialog.appearanceChanged):
        page.theme.setCurrentIndex(page.theme.findData("system"))
    assert not is_dark()  # the system's look again: light here


def _conversations(store: HistoryStore, n: int) -> None:
    for i in range(n):
        conv = store.create_conversation(system_prompt="Be kind.")
        user = store.add_user_message(conv.id, f"Question {i}?")
        store.add_answer(conv.id, user.id, f"Answer {i}.")


def test_export_all_writes_a_valid_json_export(qtbot, store, tmp_path, open_dialog):
    _conversations(store, 2)
    page = open_dialog().data_page
    assert page.places["data"].text() and page.places["hf"].text().endswith("hub")
    target = tmp_path / "export.json"
    page.export_to(target)
    settle(qtbot)
    data = json.loads(target.read_text(encoding="utf-8"))
    assert len(validate_export(data)) == 2
    assert "Exported 2 conversations" in page.banner.text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_through_the_file_dialog_writes_markdown(qtbot, store, tmp_path, open_dialog):
    _conversations(store, 1)
    page = open_dialog().data_page
    click(qtbot, page.export_button)
    chooser = page.findChild(QFileDialog)
    chooser.setOption(QFileDialog.Option.DontConfirmOverwrite, True)
    chooser.selectFile(str(tmp_path / "chats.md"))
    chooser.accept()
    settle(qtbot)
    text = (tmp_path / "chats.md").read_text(encoding="utf-8")
    assert "Question 0?" in text and "Answer 0." in text


# --- accessibility ---

INTERACTIVE = (QAbstractButton, QLineEdit, QComboBox, QAbstractSpinBox, QAbstractItemView, QPlainTextEdit, QTextEdit)
# Parts Qt builds inside these (a spin box's line edit, a table's header, a tab bar's scroll
# arrows) are announced through their owner.
COMPOSITE = (QAbstractSpinBox, QComboBox, QAbstractItemView, QTabBar)


def _inside_composite(widget: QWidget, top: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None and parent is not top:
        if isinstance(parent, COMPOSITE):
            return True
        parent = parent.parentWidget()
    return False


def test_every_control_has_an_accessible_name(qtbot, open_dialog, manager):
    manager.model.upsert(DownloadRow("org/a", "paused", 10, 100))
    dialog = open_dialog()
    controls = [w for w in dialog.findChildren(QWidget)
                if isinstance(w, INTERACTIVE) and not _inside_composite(w, dialog)]
    assert len(controls) > 40
    unnamed = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in controls if not w.accessibleName()]
    assert unnamed == []


def test_downloads_list_paints_every_kind_of_row(qtbot, open_dialog, manager):
    dialog = open_dialog()
    dialog.models_page.setCurrentWidget(dialog.models_page.downloads)
    model = manager.model
    model.upsert(DownloadRow("org/running", "downloading", 40_000_000, 100_000_000, 8e6, 7.5))
    model.upsert(DownloadRow("org/checking", "checking"))
    model.upsert(DownloadRow("org/failed", "failed", 5, 10, error="The Hub answered 503; try again later."))
    model.upsert(DownloadRow("org/done", "complete", 10, 10))
    assert model.index(0).data() == "org/running: downloading 40%, 40.0 MB of 100.0 MB, 8.0 MB/s, 0:07 left"
    assert model.index(2).data(Qt.ItemDataRole.AccessibleTextRole).endswith("try again later.")
    image = dialog.models_page.downloads.view.grab()  # runs the delegate's paint for each row
    assert not image.isNull()
    downloads = dialog.models_page.downloads
    assert downloads.select("org/done")
    assert downloads.cancel_button.text() == "Clear" and not downloads.resume_button.isEnabled()
    click(qtbot, downloads.cancel_button)
    assert model.row("org/done") is None
