"""History benchmark: the three reads the app does while a person waits.

- list the 50 most recent of 10,000 conversations (the sidebar),
- open a 5,000-message conversation (its active path),
- full-text search over 1,000,000 words of messages,

each reported in milliseconds and as a share of a 16 ms frame, next to a baseline measured in the
same run (a trivial query on the same connection), since this machine is noisy.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.history import HistoryStore  # noqa: E402

FRAME_MS = 16.0
CONVERSATIONS = 10_000
MESSAGES_PER_CONVERSATION = 4
WORDS_PER_MESSAGE = 25  # 10,000 x 4 x 25 = 1,000,000 words
LONG_CONVERSATION = 5_000
VOCABULARY = [f"word{i}" for i in range(5000)] + ["llama", "alpaca", "sourdough", "café", "mountain"]


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(WORDS_PER_MESSAGE))


def build(store: HistoryStore) -> str:
    rng = random.Random(0)
    now = time.time()
    with store.transaction() as tx:
        for c in range(CONVERSATIONS):
            cid = uuid.uuid4().hex
            tx.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                       (cid, f"Conversation {c} about {rng.choice(VOCABULARY)}", now - c, now - c))
            parent = None
            for m in range(MESSAGES_PER_CONVERSATION):
                mid = uuid.uuid4().hex
                tx.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content,"
                           " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (mid, cid, parent, "user" if m % 2 == 0 else "assistant",
                            _sentence(rng), now - c, now - c))
                parent = mid
            tx.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (parent, cid))
    long_conv = store.create_conversation(title="A very long chat")
    with store.transaction() as tx:
        parent = None
        for m in range(LONG_CONVERSATION):
            mid = uuid.uuid4().hex
            tx.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, created_at,"
                       " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (mid, long_conv.id, parent, "user" if m % 2 == 0 else "assistant",
                        "short message " * 5, now, now))
            parent = mid
        tx.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (parent, long_conv.id))
    return long_conv.id


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, HistoryStore(Path(tmp) / "bench.sqlite3") as store:
        started = time.perf_counter()
        long_id = build(store)
        build_s = time.perf_counter() - started
        baseline = _median_ms(lambda: store._query("SELECT 1"), 200)
        listing = _median_ms(lambda: store.list_conversations(limit=50), 50)
        opening = _median_ms(lambda: store.active_path(long_id), 20)
        # What the app does on opening: the last 100 messages (older ones on request) and the
        # branch positions of all of them.
        app_opening = _median_ms(lambda: store.branch_positions(store.active_path_tail(long_id, 100)[0]), 20)
        queries = ["llama", "sourdough mountain", "word1234", "café", "alp"]
        searching = statistics.median(_median_ms(lambda q=q: store.search(q, limit=50), 10) for q in queries)
        assert len(store.active_path(long_id)) == LONG_CONVERSATION
    figures = {
        "build_s": build_s,
        "baseline_query_ms": baseline,
        "list_50_of_10k_ms": listing,
        "open_5000_message_ms": opening,
        "app_open_5000_message_ms": app_opening,
        "search_1m_words_ms": searching,
    }
    print(f"history: built {CONVERSATIONS:,} conversations ({CONVERSATIONS * MESSAGES_PER_CONVERSATION * WORDS_PER_MESSAGE:,}"
          f" words) + one of {LONG_CONVERSATION:,} messages in {build_s:.1f} s")
    print(f"  baseline SELECT 1:                 {baseline:7.3f} ms")
    for label, key in (("list 50 most recent of 10,000", "list_50_of_10k_ms"),
                       ("open a 5,000-message chat, all of it", "open_5000_message_ms"),
                       ("open it as the app does (last 100)", "app_open_5000_message_ms"),
                       ("search 1,000,000 words (median)", "search_1m_words_ms")):
        value = figures[key]
        print(f"  {label:34s} {value:7.3f} ms = {value / FRAME_MS:5.2f} frames, {value / baseline:8.0f}x baseline")
    budget = FRAME_MS / 2  # "well under" a frame: half of one
    rows = [("list the 50 most recent of 10,000 conversations (ms)", "list_50_of_10k_ms"),
            ("open a 5,000-message conversation, whole path (ms)", "open_5000_message_ms"),
            ("open it as the app does: last 100 + branch marks (ms)", "app_open_5000_message_ms"),
            ("search 1,000,000 words (ms, median of 5 queries)", "search_1m_words_ms")]
    summary = [{"figure": label, "value": figures[key], "goal": f"< {budget:.0f} ms (half a frame)",
                "met": figures[key] < budget} for label, key in rows]
    return {"name": "history", **summary[0], "more": summary[1:], **figures}


if __name__ == "__main__":
    run()
