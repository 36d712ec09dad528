"""The transcript's stall when a message is sent and when an answer ends, in a 1,000-message chat:
the list updated row by row (TranscriptModel.set_messages now) against the list reset whole (what
set_messages did before), alternated in the same process.

What is timed is what the chat controller does to the transcript at those moments, up to the next
frame on screen: on send, show_messages(every message + the question), begin_answer(),
append_text(...); at the end of the answer, show_messages(every message + the question + the saved
answer). Then the posted events are run (the delegates a reset dropped are deleted) and a frame is
drawn (QQuickWidget.grabFramebuffer: polish, layout, paint). The conversation's messages are the
same Markdown as bench/gui.py's (about 500 characters each, code blocks in some); the answer is new
each round (its Markdown is rendered at the end either way, as in the app).

Two shapes: all 1,000 messages in the list (after "Show earlier"), and the app's default view of a
long chat, its last 100 messages (a send moves that window on by one message).

Run: `QT_QPA_PLATFORM=offscreen python bench/transcript_updates.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench.gui import _assistant_text, _paragraph  # noqa: E402

MESSAGES = 1_000
VISIBLE = 100  # what the app shows of a long chat before "Show earlier"


def reset_whole_list(model, messages) -> None:
    """TranscriptModel.set_messages as it was before it compared rows: the list reset whole."""
    model.beginResetModel()
    model._messages = list(messages)
    model._stop_stream()
    model.endResetModel()


def conversation(count: int):
    from app.gui.transcript import MessageView

    rng = random.Random(0)
    return [MessageView(f"m{i}", "user", _paragraph(rng, 40)) if i % 2 == 0 else
            MessageView(f"m{i}", "assistant", _assistant_text(rng, i), finish_reason="stop",
                        generation_tps=21.5, ttft_s=0.35, model="bench-model")
            for i in range(count)]


def one_round(view, app, base, shown: int, round_no: int) -> tuple[float, float]:
    """(send ms, answer end ms) for one send and answer into the chat `base`."""
    from PySide6.QtCore import QEvent

    from app.gui.transcript import MessageView

    def frame() -> None:
        app.processEvents()
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        view.grabFramebuffer()

    view.show_messages(base[-shown:])
    frame()
    question = MessageView(f"q{round_no}", "user", "Tell me more about llamas, please.")
    rng = random.Random(round_no)
    answer_text = _assistant_text(rng, 5)
    answer = MessageView(f"a{round_no}", "assistant", answer_text, finish_reason="stop", generation_tps=20.0)
    after_send = [*base, question][-shown:]
    after_answer = [*base, question, answer][-shown:]

    t = time.perf_counter()
    view.show_messages(after_send)
    view.begin_answer()
    view.append_text(answer_text[:20], 4)
    frame()
    send_ms = (time.perf_counter() - t) * 1000

    view.append_text(answer_text[20:], 300)
    view.model.render_stream()
    frame()

    t = time.perf_counter()
    view.show_messages(after_answer)
    frame()
    return send_ms, (time.perf_counter() - t) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from app.gui.transcript import TranscriptView, use_software_scene_graph
    from app.gui.transcript_model import TranscriptModel

    use_software_scene_graph()
    app = QApplication([sys.argv[0]])
    view = TranscriptView()
    view.resize(800, 700)
    view.show()
    base = conversation(MESSAGES)
    row_by_row = TranscriptModel.set_messages
    figures: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for round_no in range(args.rounds + 1):  # round 0 warms up (first delegates, first renders)
        for shown in (MESSAGES, VISIBLE):
            for way in ("reset", "rows"):
                TranscriptModel.set_messages = reset_whole_list if way == "reset" else row_by_row
                view.clear_messages()
                result = one_round(view, app, base, shown, round_no * 10 + (way == "rows"))
                if round_no:
                    figures.setdefault((shown, way), []).append(result)
    TranscriptModel.set_messages = row_by_row

    print(f"transcript stalls, {args.rounds} rounds, ms (median; min-max); QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}")
    for shown in (MESSAGES, VISIBLE):
        medians = {}
        for way in ("reset", "rows"):
            sends, ends = zip(*figures[(shown, way)], strict=True)
            medians[way] = (statistics.median(sends), statistics.median(ends))
            print(f"  {shown:>5} rows shown, list {way:5}: send {medians[way][0]:6.1f} ({min(sends):.1f}-{max(sends):.1f})"
                  f"   answer end {medians[way][1]:6.1f} ({min(ends):.1f}-{max(ends):.1f})")
        print(f"  {shown:>5} rows shown, row by row / reset: send {medians['rows'][0] / medians['reset'][0]:.2f}"
              f"   answer end {medians['rows'][1] / medians['reset'][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
