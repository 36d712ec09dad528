"""Guard against the PySide6 release that crashes on cross-thread signals (6.12.0 aborted the whole
process after a few thousand queued emissions from a worker thread, as the engine makes while
streaming). Runs in a child process, since the failure is an abort, not an exception."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import os, threading
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QCoreApplication, QObject, Qt, QTimer, Signal

    app = QCoreApplication([])
    N = 20000

    class Receiver(QObject):
        chunk = Signal(int, str)
        event = Signal(object)

        def __init__(self):
            super().__init__()
            self.count = 0
            self.chunk.connect(self.on_signal, Qt.ConnectionType.QueuedConnection)
            self.event.connect(self.on_signal, Qt.ConnectionType.QueuedConnection)

        def on_signal(self, *args):
            self.count += 1
            if self.count == 2 * N:
                app.quit()

    receiver = Receiver()

    def emit():
        for i in range(N):
            receiver.chunk.emit(i, "token")
            receiver.event.emit({"n": i, "done": i == N - 1, "error": None})

    threading.Thread(target=emit).start()
    QTimer.singleShot(60000, app.quit)
    app.exec()
    print("received", receiver.count)
""")


def test_signals_from_a_worker_thread_at_streaming_rates_do_not_crash_qt():
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "received 40000"
