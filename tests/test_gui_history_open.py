"""Starting the app while another Hearth process holds the history locked: the user sees a waiting
note (the GUI thread is not frozen), and the app opens the same history once the lock is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel

from engine.history import HistoryStore
from engine.history.store import _default_path

HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")  # in WAL mode readers pass a plain write lock
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("UPDATE presets SET name = name")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
""")


def _visible_notes() -> list[str]:
    return [w.text() for w in QApplication.topLevelWidgets()
            if isinstance(w, QLabel) and w.isVisible() and w.accessibleName() == "Waiting for the history"]


def test_a_locked_history_shows_a_waiting_note_then_opens(qtbot):
    from app.gui.app import open_history

    store = HistoryStore()
    conversation = store.create_conversation(title="Kept while locked")
    store.close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(_default_path()), "3"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    seen: list[str] = []
    ticks: list[int] = []
    watcher = QTimer(interval=50)
    watcher.timeout.connect(lambda: (ticks.append(1), seen.extend(_visible_notes())))
    watcher.start()
    opened = open_history(QApplication.instance())
    watcher.stop()
    holder.wait(timeout=30)
    assert opened is not None
    try:
        assert any("waiting for another Hearth window/process" in text for text in seen), seen
        assert len(ticks) > 5  # the GUI thread kept running its timers while it waited
        assert _visible_notes() == []  # the note is gone once the history is open
        assert opened.conversation(conversation.id).title == "Kept while locked"
    finally:
        opened.close()
