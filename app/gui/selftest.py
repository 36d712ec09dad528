"""`hearth --self-test [--model PATH]`: the real app, headless, proves it works end to end.

Starts the window offscreen with a temporary Hearth home (the user's history is not touched), loads
the model on the engine's QThread, sends one message through the composer, streams the answer, and
prints one JSON line saying what happened. The exit status is non-zero on any failure, including one
on the engine thread (which arrives as an error event, since that thread survives it).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

PROMPT = "Hello! Please introduce yourself."
TIMEOUT_S = 300.0


def run(model: str | None, max_tokens: int = 8, timeout_s: float = TIMEOUT_S) -> int:
    report: dict[str, Any] = {"ok": False, "model": model}
    started = time.monotonic()
    try:
        report.update(_run(model, max_tokens, timeout_s, started))
    except Exception as exc:  # noqa: BLE001 - the report says what failed, whatever it was
        report["error"] = f"{type(exc).__name__}: {exc}"
    report["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(report, ensure_ascii=False), flush=True)
    return 0 if report["ok"] else 1


def _resolve_model(model: str | None) -> str:
    from engine.library import library

    ref = model or library.default_model()
    if not ref:
        raise RuntimeError("no model: give --model PATH, or choose a default model (hearth default NAME)")
    from engine.model_folder import resolve_model

    return str(resolve_model(ref).path)  # a folder, so the temporary home can load it too


def _run(model: str | None, max_tokens: int, timeout_s: float, started: float) -> dict[str, Any]:
    folder = _resolve_model(model)
    os.environ["HEARTH_HOME"] = tempfile.mkdtemp(prefix="hearth-self-test-")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform == "darwin":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from .app import build_window

    app = QApplication.instance() or QApplication([sys.argv[0]])
    window = build_window(app)
    window.show()
    shown = time.monotonic() - started
    state: dict[str, Any] = {}
    window.bridge.modelLoaded.connect(lambda loaded: state.setdefault("loaded", loaded))
    window.bridge.finished.connect(lambda _rid, data: data.get("finish_reason") == "done"
                                   or state.setdefault("finished", data))
    try:
        return _exercise(app, window, folder, state, shown, max_tokens, timeout_s)
    finally:
        window.close()  # also stops the engine thread, on every path


def _exercise(app, window, folder: str, state: dict[str, Any], shown: float, max_tokens: int,
              timeout_s: float) -> dict[str, Any]:
    from engine.sampling import SamplingSettings

    window.chat.model_ref = folder
    window.bridge.load(folder)
    _wait(app, lambda: "loaded" in state or "finished" in state, timeout_s, "the model to load")
    if "loaded" not in state:
        return {"error": (state["finished"] or {}).get("error") or "the model did not load", "shown_s": shown}
    window.chat.sampling = SamplingSettings(temperature=0.0, max_tokens=max_tokens)
    window.composer.edit.setPlainText(PROMPT)
    window.composer._send()
    _wait(app, lambda: "finished" in state, timeout_s, "the answer")
    result = state["finished"]
    path = window.store.active_path(window.chat.conversation_id) if window.chat.conversation_id else []
    saved = path[-1] if path and path[-1].role == "assistant" else None
    ok = result.get("finish_reason") in ("stop", "length") and bool(saved and saved.content == result.get("text"))
    return {
        "ok": ok, "model": folder, "shown_s": round(shown, 3),
        "load_s": round(state["loaded"]["load_s"], 3), "finish_reason": result.get("finish_reason"),
        "generation_tokens": result.get("generation_tokens"), "ttft_s": result.get("ttft_s"),
        "text_chars": len(result.get("text") or ""), "saved_in_history": bool(saved),
        "error": result.get("error"),
    }


def _wait(app, done, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_s:.0f} s")
        app.processEvents()
        time.sleep(0.01)
