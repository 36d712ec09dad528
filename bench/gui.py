"""GUI benchmark: the desktop window while it streams, starts and holds a model.

1. Event-loop stalls while an answer streams at 200 tokens/s into a conversation of 1,000 messages
   (about 500,000 characters): p50 / p99 / max gap between the callbacks of a 1 ms timer on the GUI
   thread, against the same measured idle (same window, same conversation) as the baseline.
   Goal: p99 <= 16 ms.
   The answer has a paragraph break every ~60 tokens; the same is run with the whole answer as one
   paragraph (no newline in 4,000 tokens) as the worst case.
2. GUI-thread CPU time per streamed token over the first and the last 200 tokens of a 4,000-token
   answer (the same stream as 1). Goal: flat (last / first <= 1.25). time.thread_time() is read on
   the GUI thread as each token's signal arrives: all of the GUI's work (dispatch, buffering, the
   transcript, the history checkpoint, layout and painting) runs on that thread, while
   time.process_time() would also count the scripted engine thread, which a real model replaces
   with its own work (it is printed too). The idle loop's own CPU (the 1 ms timer, the cursor
   blink), measured in the idle baseline, is shown as a share of a token; "net" ratios subtract it.
   Also per token at the 1,000th message against the 1st (the same stream into an empty chat):
   goal <= 1.2. And opening a 5,000-message chat to the transcript's first frame after it
   (its Qt Quick window's afterRendering), median of 5: goal < 100 ms.
3. Launch to a visible window that takes typed input, in a fresh process, against a bare
   QApplication + QMainWindow (a QPlainTextEdit inside) shown the same way in the same run.
   Goal: <= 1 s. Hearth is started through the `hearth` command's own code (app.cli.main, which
   opens the window with app.gui.app.main); the clock stops in the first event-loop pass where the
   window is visible and exposed and a key event sent to the composer lands in it. Measured from
   just before the process is spawned (and from the child script's first line), median of 3 after
   a warm-up; also with the 1,000-message chat as the one to reopen.
4. Resident memory (VmRSS from /proc/self/status): the window with no model loaded and the
   1,000-message chat open (goal <= 250 MB), and, in the same process, while generating with a
   ~127 MB random model (bench.memory's), beyond its weights and KV cache (goal <= 300 MB). RSS is
   sampled every 10 ms while generating; VmHWM is shown too.

Every measurement runs in a child process (`python bench/gui.py --child ...`) with its own
HEARTH_HOME, so the figures are the app's own and a crash cannot take the parent down. The children
use QT_QPA_PLATFORM from the environment, offscreen if unset; under `xvfb-run -a` with
QT_QPA_PLATFORM=xcb they draw on a real (virtual) X display.

How the answer is streamed: the real window (app.gui.app.build_window) sends a message through its
composer, and ChatController.send records the turn and calls EngineBridge.generate as usual; only
Engine.generate is replaced, by a scripted generation that runs on the engine's own QThread and emits
PromptReady, one TextChunk per token at 200 tokens/s and Finished through the same event sink a
model's generation uses. So the GUI does exactly the work it does for a real model (queued events,
dispatch, buffering, 16 ms flushes into the transcript and the AnswerWriter, the history checkpoint
every second, the final re-render), minus the model's compute.
"""

from __future__ import annotations

import time

T0 = time.time()  # the launch children measure from here too (the first thing the script does)

import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
for _path in (str(REPO), str(REPO / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

FRAME_MS = 16.0
MESSAGES = 1_000
TARGET_CHARS = 500_000
RATE = 200.0  # tokens per second
STREAM_TOKENS = 4_000
WINDOW_TOKENS = 200  # the "start" and "end" windows for the CPU figure
IDLE_S = 3.0
PROBE_MS = 1
LAUNCH_REPEATS = 3
GEN_TOKENS = 48
STALL_GOAL_MS = 16.0
FLAT_GOAL = 1.25  # "flat": last / first at most this
DEPTH_GOAL = 1.2  # per-token cost at the 1,000th message / at the 1st
DEPTH_RUNS = 3
OPEN_MESSAGES = 5_000
OPEN_GOAL_MS = 100.0
LAUNCH_GOAL_S = 1.0
RSS_IDLE_GOAL_MB = 250.0
RSS_GEN_GOAL_MB = 300.0
RESULT_TAG = "BENCH_GUI_RESULT "
MB = 1e6

# --------------------------------------------------------------------------- shared by both sides

WORDS = (
    "the llama is a domesticated South American camelid widely used as a meat and pack animal by "
    "Andean cultures since the pre-Columbian era llamas are social animals and live with others as a "
    "herd their wool is soft and contains only a small amount of lanolin llamas can learn simple tasks "
    "after a few repetitions when using a pack they can carry about a quarter of their body weight for "
    "several kilometres in mountainous terrain the name llama was adopted by European settlers from "
    "native Peruvians sourdough bread is made by the fermentation of dough using wild lactobacilli and "
    "yeast the lactic acid gives it a more sour taste and improved keeping qualities"
).split()


def _tokens(count: int, paragraphs: bool = True) -> list[str]:
    """About four characters a token, words split in two when long, a paragraph every ~60 tokens
    (or none at all: one paragraph of 4,000 tokens, the worst case for laying out the text)."""
    import random

    rng = random.Random(1)
    out: list[str] = []
    since_break = 0
    while len(out) < count:
        word = rng.choice(WORDS)
        if len(word) > 6:
            out += [" " + word[: len(word) // 2], word[len(word) // 2:]]
        else:
            out.append(" " + word)
        since_break += 1
        if paragraphs and since_break > 45 and rng.random() < 0.08:
            out.append(".\n\n")
            since_break = 0
    return out[:count]


def _rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB (10^6 bytes)."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0]) * 1024 / MB
    return values["VmRSS"], values["VmHWM"]


def _report(result: dict) -> None:
    print(RESULT_TAG + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent: set-up


def _paragraph(rng, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _assistant_text(rng, i: int) -> str:
    parts = [_paragraph(rng, 55), "", f"- **{rng.choice(WORDS)}**: {_paragraph(rng, 10)}",
             f"- *{rng.choice(WORDS)}*: {_paragraph(rng, 10)}", f"- `{rng.choice(WORDS)}`: {_paragraph(rng, 8)}", ""]
    if i % 5 == 0:
        parts += ["```python", f"def {rng.choice(WORDS)}(x):", f"    return x * {i}", "```", ""]
    parts.append(_paragraph(rng, 45))
    return "\n".join(parts)


def build_home(home: Path, messages: int = MESSAGES) -> tuple[str, int]:
    """A Hearth home whose history holds one conversation of `messages` messages; (its id, characters)."""
    import random
    import uuid

    from engine.history import HistoryStore
    from engine.history.store import DB_NAME

    (home / "data").mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    now = time.time() - messages
    chars = 0
    with HistoryStore(home / "data" / DB_NAME) as store:
        conv = store.create_conversation(title=f"A long chat ({messages:,} messages)",
                                         system_prompt="You are a helpful assistant.")
        with store.transaction() as tx:
            parent = None
            for m in range(messages):
                mid = uuid.uuid4().hex
                if m % 2 == 0:
                    role, text, extra = "user", _paragraph(rng, 40), (None, None, None, None, None)
                else:
                    role, text = "assistant", _assistant_text(rng, m)
                    extra = ("bench-model", "stop", 180, 0.35, 21.5)
                chars += len(text)
                tx.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, status,"
                           " created_at, updated_at, model, finish_reason, generation_tokens, ttft_s,"
                           " generation_tps) VALUES (?, ?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?, ?)",
                           (mid, conv.id, parent, role, text, now + m, now + m, *extra))
                parent = mid
            tx.execute("UPDATE conversations SET active_leaf_id = ?, updated_at = ? WHERE id = ?",
                       (parent, now + messages, conv.id))
    return conv.id, chars


def _set_last_conversation(home: Path, conversation_id: str) -> None:
    """What the app remembers at quit (Prefs is a QSettings INI file): it reopens this one at start."""
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hearth.ini").write_text(f"[window]\nlast_conversation={conversation_id}\n", encoding="utf-8")


def _child(args: list[str], home: Path, tmp: Path, timeout: float = 120.0) -> tuple[dict, float]:
    """Run `bench/gui.py --child ARGS`; (its result, the wall time when it was spawned)."""
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.update(HEARTH_HOME=str(home), HF_HOME=str(tmp / "hf-home"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_NO_ADVISORY_WARNINGS="1", PYTHONDONTWRITEBYTECODE="1")
    spawned = time.time()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", *args], env=env,
                          cwd=str(REPO), capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):]), spawned
    raise RuntimeError(f"child {args} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


# --------------------------------------------------------------------------- children: Qt helpers


def _app():
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("Hearth")
    app.setOrganizationName("Hearth")
    return app


def _spin(seconds: float, until=None, poll_ms: int = 5) -> bool:
    """Run the real event loop for up to `seconds`, or until until() is true; whether it became true."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    met = [False]

    def check() -> None:
        if until is not None and until():
            met[0] = True
            loop.quit()

    poll = QTimer(interval=poll_ms, timeout=check)
    if until is not None:
        poll.start()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    check()
    if not met[0]:
        loop.exec()
    poll.stop()
    return met[0]


class _Probe:
    """A 1 ms timer on the GUI thread; the gaps between its callbacks are the event loop's stalls."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.times: list[float] = []
        self.timer = QTimer(interval=PROBE_MS)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))

    def start(self) -> None:
        self.times.append(time.perf_counter())
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def gaps_ms(self, start: float, end: float) -> list[float]:
        """Gaps (ms) between consecutive callbacks, for those wholly within [start, end]."""
        t = self.times
        return [(t[i] - t[i - 1]) * 1000 for i in range(1, len(t)) if start <= t[i - 1] and t[i] <= end]

    def max_gap_ms(self, start: float, end: float) -> float:
        """The longest gap that overlaps [start, end]."""
        t = self.times
        return max(((t[i] - t[i - 1]) * 1000 for i in range(1, len(t)) if t[i] > start and t[i - 1] < end),
                   default=0.0)


def _stats(gaps: list[float]) -> dict:
    if not gaps:
        return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0, "over_16ms": 0}
    ordered = sorted(gaps)
    return {"n": len(gaps), "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], "max": ordered[-1],
            "over_16ms": sum(g > FRAME_MS for g in gaps)}


def _scripted_engine(window, tokens: list[str], rate: float, prompt_tokens: int = 1200):
    """Replace the window's Engine.generate with a scripted stream on the engine's own thread."""
    from engine.events import Finished, PromptReady, TextChunk

    engine = window.bridge.engine
    emitted: list[float] = []

    def scripted(handle, request) -> None:
        handle.emit(PromptReady(handle.id, prompt_tokens, 0, 4096, len(tokens)))
        start = time.perf_counter()
        for i, token in enumerate(tokens):
            if handle.cancelled:
                handle.emit(Finished(handle.id, "cancelled", text="".join(tokens[:i]), generation_tokens=i))
                return
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            emitted.append(time.perf_counter())
            handle.emit(TextChunk(handle.id, token))
        took = time.perf_counter() - start
        handle.emit(Finished(handle.id, "length", text="".join(tokens), prompt_tokens=prompt_tokens,
                             generation_tokens=len(tokens), ttft_s=0.25, prompt_tps=4000.0,
                             generation_tps=len(tokens) / max(took, 1e-9), seed=0))

    engine.generate = lambda request, on_event=None: engine._submit(lambda h: scripted(h, request), on_event)
    return emitted


def _window_ready(window) -> None:
    """After the model list arrived (no models: the welcome page), show the chat page as with a model."""
    _spin(15.0, lambda: window.pages.currentWidget() is window.welcome or window.model_picker.count() > 0)
    window.pages.setCurrentIndex(1)


# --------------------------------------------------------------------------- child: streaming


def child_stream(conversation_id: str, shape: str = "paragraphs") -> None:
    from PySide6.QtWidgets import QApplication

    from app.gui.app import build_window
    from engine.sampling import SamplingSettings

    app = _app()
    window = build_window(app)
    window.show()
    _window_ready(window)
    probe = _Probe()
    probe.start()
    _spin(0.5)

    # Opening the long conversation (as a click in the sidebar does); "new": an empty chat.
    t = time.perf_counter()
    window.chat.open(None if conversation_id == "new" else conversation_id)
    open_ms = (time.perf_counter() - t) * 1000
    _spin(1.0)
    shown = len(window.transcript.shown_messages())

    # Idle baseline: the same window and conversation, nothing happening.
    idle_start, idle_cpu0 = time.perf_counter(), time.thread_time()
    _spin(IDLE_S)
    idle_end, idle_cpu1 = time.perf_counter(), time.thread_time()
    idle = _stats(probe.gaps_ms(idle_start, idle_end))
    idle_cpu_per_s = (idle_cpu1 - idle_cpu0) / (idle_end - idle_start)

    tokens = _tokens(STREAM_TOKENS, paragraphs=shape == "paragraphs")
    emitted = _scripted_engine(window, tokens, RATE)
    window.chat.model_ref = "bench-model"  # a model is "loaded": Engine.generate is scripted
    window.chat.sampling = SamplingSettings(temperature=0.0, max_tokens=STREAM_TOKENS)
    arrivals: list[tuple[float, float, float]] = []  # (wall, GUI-thread CPU, process CPU) per token
    finished_at: list[float] = []
    window.bridge.textChunk.connect(
        lambda _rid, _text: arrivals.append((time.perf_counter(), time.thread_time(), time.process_time())))
    window.bridge.finished.connect(lambda _rid, _data: finished_at.append(time.perf_counter()))

    window.composer.edit.setPlainText("Tell me everything about llamas, at length.")
    t = time.perf_counter()
    window.composer._send()  # what Enter does
    send_ms = (time.perf_counter() - t) * 1000
    sent_at = time.perf_counter()
    _spin(STREAM_TOKENS / RATE + 60, lambda: bool(finished_at))
    _spin(1.5)
    probe.stop()

    first, last = arrivals[0][0], arrivals[-1][0]
    streaming = _stats(probe.gaps_ms(first, last))
    n = len(arrivals)
    k = WINDOW_TOKENS

    def per_token(a: int, b: int, column: int) -> float:
        return (arrivals[b][column] - arrivals[a][column]) / (b - a) * 1e6  # microseconds

    quarter = n // 4
    answer_chars = len(window.transcript.streamed_text()) if window.transcript.streaming else len("".join(tokens))
    rss, hwm = _rss_mb()
    stored = window.store.active_path(window.chat.conversation_id)[-1]
    _report({
        "platform": QApplication.platformName(),
        "open_ms": open_ms,
        "messages_shown": shown,
        "idle": idle,
        "idle_gui_cpu_per_s": idle_cpu_per_s,
        "send_ms": send_ms,
        "send_stall_ms": probe.max_gap_ms(sent_at - send_ms / 1000, first),
        "streaming": streaming,
        "streaming_first_quarter": _stats(probe.gaps_ms(first, arrivals[quarter][0])),
        "streaming_last_quarter": _stats(probe.gaps_ms(arrivals[n - quarter][0], last)),
        "finish_stall_ms": probe.max_gap_ms(finished_at[0] - 0.0001, finished_at[0] + 1.5),
        "finish_handling_ms": (finished_at[0] - last) * 1000,
        "tokens_received": n,
        "emit_rate": (len(emitted) - 1) / (emitted[-1] - emitted[0]),
        "delivery_lag_ms_max": max((a[0] - e) * 1000 for a, e in zip(arrivals, emitted, strict=False)),
        "cpu_us_first": per_token(0, k, 1),
        "cpu_us_second": per_token(k, 2 * k, 1),
        "cpu_us_last": per_token(n - 1 - k, n - 1, 1),
        "proc_cpu_us_first": per_token(0, k, 2),
        "proc_cpu_us_last": per_token(n - 1 - k, n - 1, 2),
        "wall_s_first": arrivals[k][0] - arrivals[0][0],
        "wall_s_last": arrivals[n - 1][0] - arrivals[n - 1 - k][0],
        "answer_chars": answer_chars,
        "saved_ok": stored.role == "assistant" and stored.content == "".join(tokens),
        "rss_mb": rss,
        "hwm_mb": hwm,
    })
    os._exit(0)


# --------------------------------------------------------------------------- child: open to first paint


def child_open(conversation_id: str) -> None:
    """Opening a long conversation (a click in the sidebar) to the first frame of the transcript
    drawn with it: the transcript's Qt Quick window reports each frame it renders."""
    from PySide6.QtWidgets import QApplication

    from app.gui.app import build_window

    app = _app()
    window = build_window(app)
    window.show()
    _window_ready(window)
    _spin(1.0)
    samples = []
    for _ in range(5):
        window.chat.open(None)
        _spin(0.3)
        frames: list[float] = []
        quick = window.transcript.quickWindow()
        quick.afterRendering.connect(lambda frames=frames: frames.append(time.perf_counter()))
        t = time.perf_counter()
        window.chat.open(conversation_id)
        opened = time.perf_counter()
        frames.clear()  # a frame drawn inside open() (a nested event loop) holds the old content
        _spin(2.0, lambda frames=frames: bool(frames))
        quick.afterRendering.disconnect()
        samples.append({"open_ms": (opened - t) * 1000, "first_paint_ms": (frames[0] - t) * 1000})
    _report({"platform": QApplication.platformName(), "samples": samples,
             "shown": len(window.transcript.shown_messages())})
    os._exit(0)


# --------------------------------------------------------------------------- child: launch


def child_launch(kind: str) -> None:
    """kind: "app" (the `hearth` command's own path, up to app.exec()) or "bare" (the baseline)."""
    from PySide6.QtCore import QEvent, Qt, QTimer
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    loops = [0]

    def check(window, edit) -> None:
        loops[0] += 1
        handle = window.windowHandle()
        if not (window.isVisible() and handle is not None and handle.isExposed() and edit.isEnabled()):
            QTimer.singleShot(0, lambda: check(window, edit))
            return
        before = edit.toPlainText()
        QApplication.sendEvent(edit, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_X, Qt.KeyboardModifier.NoModifier, "x"))
        if edit.toPlainText() != before + "x":
            QTimer.singleShot(0, lambda: check(window, edit))
            return
        ready = time.time()
        _report({"kind": kind, "platform": QApplication.platformName(), "script_start": T0, "ready": ready,
                 "loops": loops[0], "rss_mb": _rss_mb()[0]})
        os._exit(0)

    if kind == "bare":
        from PySide6.QtWidgets import QMainWindow, QPlainTextEdit

        app = QApplication([sys.argv[0]])
        window = QMainWindow()
        edit = QPlainTextEdit()
        window.setCentralWidget(edit)
        window.resize(1100, 760)
        window.show()
        QTimer.singleShot(0, lambda: check(window, edit))
        app.exec()
        return

    import app.cli as hearth_cli
    import app.gui.app as gui_app

    original = gui_app.build_window

    def build_window(qt_app, *args, **kwargs):
        window = original(qt_app, *args, **kwargs)
        QTimer.singleShot(0, lambda: check(window, window.composer.edit))  # after the window's own
        return window

    gui_app.build_window = build_window
    hearth_cli._has_screen = lambda: True  # offscreen has no DISPLAY; `hearth` alone opens the window
    hearth_cli.main([])


# --------------------------------------------------------------------------- child: memory


def child_memory(model_folder: str) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui.app import build_window
    from engine.library import library
    from engine.sampling import SamplingSettings

    app = _app()
    window = build_window(app)
    window.show()  # the last conversation (1,000 messages) opens in _after_show
    _spin(15.0, lambda: window.pages.currentWidget() is window.welcome or window.model_picker.count() > 0)
    _spin(1.5)
    welcome_rss = _rss_mb()[0]
    window.pages.setCurrentIndex(1)
    _spin(1.5)
    idle_rss, idle_hwm = _rss_mb()

    loaded: list[dict] = []
    finished: list[dict] = []
    window.bridge.modelLoaded.connect(loaded.append)
    # Only answers: leaving a conversation (new_chat below) is a request that finishes too.
    window.bridge.finished.connect(lambda rid, data: data.get("finish_reason") == "done" or finished.append(data))
    library.import_folder(Path(model_folder))
    window.refresh_models()  # picks the model and loads it, as at a start with a model installed
    if not _spin(120.0, lambda: bool(loaded)):
        raise RuntimeError(f"the model did not load: {finished[-1:]} {window.banner_text.text()}")
    _spin(0.5)
    loaded_rss = _rss_mb()[0]

    samples: list[float] = []
    sampler = QTimer(interval=10, timeout=lambda: samples.append(_rss_mb()[0]))
    window.chat.new_chat()
    window.chat.sampling = SamplingSettings(temperature=0.0, max_tokens=GEN_TOKENS, seed=0)
    finished.clear()
    window.composer.edit.setPlainText("Tell me a story about a llama who bakes bread.")
    sampler.start()
    window.composer._send()
    if not _spin(180.0, lambda: bool(finished)):
        raise RuntimeError("the answer did not finish")
    _spin(0.3)
    sampler.stop()
    result = finished[0]
    gen_rss, gen_hwm = max(samples), _rss_mb()[1]

    def mlx_figures(_loaded):
        import mlx.core as mx

        return int(mx.get_active_memory()), int(mx.get_peak_memory()), int(mx.get_cache_memory())

    active, peak, cache = window.bridge.engine.run(mlx_figures).result(timeout=30)
    kv_allocated = window.bridge.engine.run(lambda _l: window.bridge.engine.caches.total_bytes()).result(timeout=30)
    _report({
        "platform": QApplication.platformName(),
        "welcome_rss_mb": welcome_rss, "idle_rss_mb": idle_rss, "idle_hwm_mb": idle_hwm,
        "loaded_rss_mb": loaded_rss, "gen_rss_mb": gen_rss, "gen_hwm_mb": gen_hwm,
        "weight_bytes": loaded[0]["weight_bytes"], "kv_bytes_per_token": loaded[0]["kv_bytes_per_token"],
        "context_length": loaded[0]["context_length"], "finish_reason": result.get("finish_reason"),
        "error": result.get("error"), "prompt_tokens": result.get("prompt_tokens", 0),
        "generation_tokens": result.get("generation_tokens", 0),
        "generation_tps": result.get("generation_tps", 0.0),
        "mlx_peak_gb": result.get("peak_memory_gb", 0.0), "mlx_active": active, "mlx_peak_after": peak,
        "mlx_cache": cache, "kv_allocated": kv_allocated,
    })
    os._exit(0)


# --------------------------------------------------------------------------- parent: figures


def _launch_figures(home_empty: Path, home_long: Path, tmp: Path) -> dict:
    kinds = (("bare", home_empty), ("app", home_empty), ("app_long", home_long))
    for kind, home in kinds:  # warm-up (file cache, .pyc), not counted
        _child(["launch", "app" if kind != "bare" else "bare"], home, tmp)
    samples: dict[str, list[dict]] = {k: [] for k, _ in kinds}
    for _ in range(LAUNCH_REPEATS):
        for kind, home in kinds:
            result, spawned = _child(["launch", "app" if kind != "bare" else "bare"], home, tmp)
            result["from_spawn_s"] = result["ready"] - spawned
            result["from_script_s"] = result["ready"] - result["script_start"]
            samples[kind].append(result)
    out = {}
    for kind, _home in kinds:
        runs = samples[kind]
        out[kind] = {"from_spawn_s": statistics.median(r["from_spawn_s"] for r in runs),
                     "from_script_s": statistics.median(r["from_script_s"] for r in runs),
                     "range_s": [min(r["from_spawn_s"] for r in runs), max(r["from_spawn_s"] for r in runs)],
                     "loops": runs[0]["loops"], "rss_mb": statistics.median(r["rss_mb"] for r in runs),
                     "platform": runs[0]["platform"]}
    return out


def run() -> dict:
    import shutil
    import tempfile

    from bench.common import ModelSpec, header, model_folder, row, verdict

    platform = os.environ.get("QT_QPA_PLATFORM", "offscreen")
    header("GUI", f"the desktop window (Qt platform {platform}): stalls and CPU while streaming, launch, memory")
    started = time.perf_counter()
    # The memory benchmark's model: ~127 MB of 4-bit weights, 10 KiB of KV cache per token.
    spec = ModelSpec(variant="spm_legacy", hidden_size=1280, num_layers=10, intermediate_size=3456,
                     num_heads=20, num_kv_heads=2)
    folder = model_folder(spec)
    tmp = Path(tempfile.mkdtemp(prefix="hearth-bench-gui-"))
    try:
        home_long, home_one, home_empty = tmp / "home-long", tmp / "home-one", tmp / "home-empty"
        conversation_id, chars = build_home(home_long)
        one_id, _chars = build_home(home_one)
        home_empty.mkdir()
        home_new = tmp / "home-new"
        home_new.mkdir()
        five_id, _chars = build_home(tmp / "home-five", OPEN_MESSAGES)
        build_s = time.perf_counter() - started

        # The 1,000-message and the empty chat alternated, DEPTH_RUNS each: single runs on a shared
        # machine vary by +-30% in CPU per token.
        longs, news = [], []
        for _ in range(DEPTH_RUNS):
            longs.append(_child(["stream", conversation_id, "paragraphs"], home_long, tmp, timeout=180)[0])
            news.append(_child(["stream", "new", "paragraphs"], home_new, tmp, timeout=180)[0])
        s = longs[0]
        opened, _ = _child(["open", five_id], tmp / "home-five", tmp)
        s1, _ = _child(["stream", one_id, "one"], home_one, tmp, timeout=180)
        _set_last_conversation(home_long, conversation_id)
        launch = _launch_figures(home_empty, home_long, tmp)
        m, _ = _child(["memory", str(folder)], home_long, tmp, timeout=300)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # 1. stalls
    p99 = s["streaming"]["p99"]
    stall_ok = p99 <= STALL_GOAL_MS

    def gaps(stats: dict) -> str:
        return (f"p50 {stats['p50']:4.2f}  p99 {stats['p99']:5.2f}  max {stats['max']:5.1f} ms  "
                f"({stats['over_16ms']} of {stats['n']:,} > 16 ms)")

    row("conversation", f"{MESSAGES:,} messages, {chars:,} characters (built in {build_s:.1f} s)")
    row("open it (chat.open: blocks the loop)", f"{s['open_ms']:.0f} ms = {s['open_ms'] / FRAME_MS:.1f} frames "
                                                f"({s['messages_shown']:,} messages in the list)")
    paints = sorted(sample["first_paint_ms"] for sample in opened["samples"])
    open_paint = statistics.median(paints)
    open_ok = open_paint < OPEN_GOAL_MS
    row(f"open a {OPEN_MESSAGES:,}-message chat to first paint (median of {len(paints)})",
        f"{open_paint:.0f} ms (all: {', '.join(f'{p:.0f}' for p in paints)}): {verdict(open_ok)}")
    print()
    row(f"1 ms timer's gaps: idle ({IDLE_S:.0f} s, baseline)", gaps(s["idle"]))
    row(f"  streaming {s['tokens_received']:,} tokens at {s['emit_rate']:.0f}/s", gaps(s["streaming"]))
    row("    first quarter of the answer", gaps(s["streaming_first_quarter"]))
    row("    last quarter of the answer", gaps(s["streaming_last_quarter"]))
    row("  p99 streaming / p99 idle", f"{p99 / max(s['idle']['p99'], 1e-9):.2f}x")
    row("  send (Enter -> turn recorded and shown)", f"{s['send_ms']:.0f} ms; longest stall {s['send_stall_ms']:.0f} ms")
    row("  answer finished (saved, re-rendered)", f"longest stall {s['finish_stall_ms']:.0f} ms")
    row("  token delivery lag (engine emit -> GUI), max", f"{s['delivery_lag_ms_max']:.1f} ms")
    row(f"goal p99 while streaming <= {STALL_GOAL_MS:.0f} ms", f"{verdict(stall_ok)} (max {s['streaming']['max']:.1f} ms)")
    row("  worst case, the answer one 4,000-token paragraph", gaps(s1["streaming"]))
    row("    its last quarter", gaps(s1["streaming_last_quarter"]))
    print()

    # 2. CPU per token
    def cpu(result: dict) -> tuple[float, float, float, float]:
        probe_us = result["idle_gui_cpu_per_s"] / RATE * 1e6  # the idle loop's (probe's) share of a token
        first, last = result["cpu_us_first"], result["cpu_us_last"]
        net = (last - probe_us) / (first - probe_us) if first > probe_us else float("inf")
        return first, last, last / first, net

    first, last, cpu_ratio, net_ratio = cpu(s)
    probe_us = s["idle_gui_cpu_per_s"] / RATE * 1e6
    flat_ok = cpu_ratio <= FLAT_GOAL
    row(f"GUI-thread CPU per token, first {WINDOW_TOKENS}", f"{first:6.1f} us ({s['wall_s_first']:.2f} s of wall time)")
    row(f"  tokens {WINDOW_TOKENS}-{2 * WINDOW_TOKENS} (after the send's repaints)", f"{s['cpu_us_second']:6.1f} us")
    row(f"GUI-thread CPU per token, last {WINDOW_TOKENS} of {STREAM_TOKENS:,}",
        f"{last:6.1f} us ({s['wall_s_last']:.2f} s of wall time)")
    row("  last / first", f"{cpu_ratio:.2f} (without the idle loop's {probe_us:.0f} us a token: {net_ratio:.2f})")
    row("  process CPU per token (all threads), first / last",
        f"{s['proc_cpu_us_first']:.1f} / {s['proc_cpu_us_last']:.1f} us")
    row(f"goal flat (last / first <= {FLAT_GOAL})", verdict(flat_ok))
    def mean_per_token(runs: list[dict]) -> float:
        return sum((r["cpu_us_first"] + r["cpu_us_last"]) / 2 for r in runs) / len(runs)

    at_1st, at_1000th = mean_per_token(news), mean_per_token(longs)
    depth_ratio = at_1000th / at_1st
    depth_ok = depth_ratio <= DEPTH_GOAL
    each = ", ".join(f"{mean_per_token([a]) / mean_per_token([b]):.2f}" for a, b in zip(longs, news, strict=True))
    row(f"GUI CPU per token at the {MESSAGES:,}th message / at the 1st ({DEPTH_RUNS} runs each, alternated)",
        f"{at_1000th:.1f} / {at_1st:.1f} us = {depth_ratio:.2f}: {verdict(depth_ok)} (goal <= {DEPTH_GOAL}; "
        f"pairs: {each})")
    first1, last1, ratio1, net1 = cpu(s1)
    row("  worst case, one 4,000-token paragraph", f"{first1:.1f} -> {last1:.1f} us: {ratio1:.2f} "
                                                    f"(net {net1:.2f}): {verdict(ratio1 <= FLAT_GOAL)}")
    row("  answers saved intact in the history", "yes" if s["saved_ok"] and s1["saved_ok"] else "NO")
    print()

    # 3. launch
    app_s, bare_s, long_s = (launch[k]["from_spawn_s"] for k in ("app", "bare", "app_long"))
    launch_ok = app_s <= LAUNCH_GOAL_S
    row(f"launch -> shown, takes a key (median of {LAUNCH_REPEATS})", "from spawn (from the script's first line)")
    row("  bare QApplication + QMainWindow (baseline)", f"{bare_s:5.3f} s ({launch['bare']['from_script_s']:.3f} s)")
    row("  Hearth, empty history", f"{app_s:5.3f} s ({launch['app']['from_script_s']:.3f} s), "
                                  f"{app_s / bare_s:.2f}x baseline, +{(app_s - bare_s) * 1000:.0f} ms")
    row("  Hearth, reopening the 1,000-message chat", f"{long_s:5.3f} s ({launch['app_long']['from_script_s']:.3f} s), "
                                                     f"{long_s / bare_s:.2f}x baseline")
    row(f"goal <= {LAUNCH_GOAL_S:.0f} s", f"{verdict(launch_ok)} (empty history); "
                                          f"{verdict(long_s <= LAUNCH_GOAL_S)} (long chat reopened)")
    print()

    # 4. memory
    idle_rss = max(m["idle_rss_mb"], m["welcome_rss_mb"])
    idle_ok = idle_rss <= RSS_IDLE_GOAL_MB
    tokens = m["prompt_tokens"] + m["generation_tokens"]
    kv = m["kv_bytes_per_token"] * tokens
    weights = m["weight_bytes"]
    beyond = m["gen_rss_mb"] - (weights + kv) / MB
    beyond_hwm = m["gen_hwm_mb"] - (weights + kv) / MB
    gen_ok = beyond <= RSS_GEN_GOAL_MB
    row("RSS: bare window (launch baseline)", f"{launch['bare']['rss_mb']:6.1f} MB")
    row("  Hearth, no model: welcome page / chat page", f"{m['welcome_rss_mb']:6.1f} / {m['idle_rss_mb']:.1f} MB "
                                                       "(the 1,000-message chat open)")
    row("  after streaming 4,000 tokens (no model)", f"{s['rss_mb']:6.1f} MB")
    row(f"goal no model <= {RSS_IDLE_GOAL_MB:.0f} MB", verdict(idle_ok))
    row("model: weights / KV cache of its tokens", f"{weights / MB:6.1f} / {kv / MB:.2f} MB ({tokens} tokens; "
                                                   f"mlx-lm allocated {m['kv_allocated'] / MB:.1f} MB)")
    row("  RSS loaded / peak while generating",
        f"{m['loaded_rss_mb']:6.1f} / {m['gen_rss_mb']:.1f} MB (VmHWM {m['gen_hwm_mb']:.1f} MB)")
    row("  MLX: peak while generating / active / cache",
        f"{m['mlx_peak_gb'] * 1e9 / MB:6.1f} / {m['mlx_active'] / MB:.1f} / {m['mlx_cache'] / MB:.1f} MB")
    row("RSS while generating - weights - KV", f"{beyond:6.1f} MB (VmHWM: {beyond_hwm:.1f} MB)")
    row("  of which beyond the no-model RSS", f"{beyond - m['idle_rss_mb']:6.1f} MB (MLX, tokenizer, libraries)")
    row(f"goal beyond weights + KV <= {RSS_GEN_GOAL_MB:.0f} MB", verdict(gen_ok))
    row("  (the answer)", f"{m['generation_tokens']} tokens at {m['generation_tps']:.1f} tokens/s, "
                          f"{m['finish_reason']}")

    return {
        "name": "gui",
        "figure": "p99 event-loop gap while streaming (ms)",
        "value": p99,
        "goal": f"<= {STALL_GOAL_MS:.0f} ms",
        "met": stall_ok,
        "more": [
            {"figure": "GUI CPU per token, last / first 200 of 4,000", "value": cpu_ratio,
             "goal": f"flat (<= {FLAT_GOAL})", "met": flat_ok},
            {"figure": f"GUI CPU per token at message {MESSAGES:,} / at message 1", "value": depth_ratio,
             "goal": f"<= {DEPTH_GOAL}", "met": depth_ok},
            {"figure": f"open a {OPEN_MESSAGES:,}-message chat to first paint (ms)", "value": open_paint,
             "goal": f"< {OPEN_GOAL_MS:.0f} ms", "met": open_ok},
            {"figure": "launch to usable window (s)", "value": app_s, "goal": f"<= {LAUNCH_GOAL_S:.0f} s",
             "met": launch_ok},
            {"figure": "RSS with no model (MB)", "value": idle_rss, "goal": f"<= {RSS_IDLE_GOAL_MB:.0f} MB",
             "met": idle_ok},
            {"figure": "RSS generating - weights - KV (MB)", "value": beyond,
             "goal": f"<= {RSS_GEN_GOAL_MB:.0f} MB", "met": gen_ok},
        ],
        "platform": s["platform"],
        "stream": s,
        "stream_one_paragraph": s1,
        "cpu_per_token_us": {"first": first, "last": last, "ratio": cpu_ratio, "net_ratio": net_ratio,
                             "one_paragraph": {"first": first1, "last": last1, "ratio": ratio1, "net_ratio": net1}},
        "launch": launch,
        "memory": m | {"no_model_rss_mb": idle_rss, "beyond_weights_kv_mb": beyond},
    }


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        {"stream": child_stream, "launch": child_launch, "memory": child_memory,
         "open": child_open}[sys.argv[2]](*sys.argv[3:])
    else:
        run()
