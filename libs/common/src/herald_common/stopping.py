"""How a Herald process that runs threads stops: once, on SIGTERM or SIGINT.

A Python signal handler runs on the main thread between two bytecodes, wherever it is: one
that sets a `threading.Event` can interrupt the same event's `set` and wait for ever on the
lock the main thread holds — and a process often gets the signal twice (`uv run` forwards it
to its child, which a signal to the whole process group also reaches). So the signals are
blocked in every thread and one thread takes them with `sigwait`: a plain thread, free to
take any lock. Later signals are taken and ignored: the stop is already under way.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def stop_on_signals(stop: threading.Event) -> threading.Thread:
    """Set `stop` on the first SIGTERM or SIGINT. Call it on the main thread before starting
    any other: threads inherit the blocked signals, so none of them is interrupted either."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def take() -> None:
        while True:
            received = signal.sigwait(STOP_SIGNALS)
            if not stop.is_set():
                log.info("%s: stopping", signal.Signals(received).name)
            stop.set()

    thread = threading.Thread(target=take, name="stop-signals", daemon=True)
    thread.start()
    return thread
