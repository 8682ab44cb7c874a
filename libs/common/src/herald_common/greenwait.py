"""psycopg's waits on gevent's event loop, for worker processes that run on greenlets.

psycopg runs each exchange with the server as a generator that says what it waits for (the
socket readable, writable, or either) and is resumed when that is so. Under gevent's monkey
patching, psycopg picks its `select.poll` wait, which gevent emulates: every wait builds a
poll object, a watcher per descriptor and a result list, and wakes with a timeout every 0.1 s
to let Ctrl-C through. A publish makes a handful of these waits, and on a worker keeping a
hundred publishes in flight they were a tenth of its CPU (BENCHMARKS.md).

`wait` waits on one libev watcher of the socket instead, switching to the hub until it is
ready, with no timeout to wake for (gevent delivers signals and Dramatiq's time limits to the
greenlet itself). A wait with a deadline (rare: connection attempts go through `wait_conn`,
not this) keeps psycopg's own function.
"""

from __future__ import annotations

import select
import sys
from typing import Any

#: psycopg's own wait, kept for waits with a deadline.
_psycopg_wait: list[Any] = []


def wait(gen: Any, fileno: int, interval: float | None = 0.0, timeout: float | None = None) -> Any:
    """psycopg's `waiting.wait`, on gevent's loop (see the module's docstring)."""
    if timeout is not None:
        return _psycopg_wait[0](gen, fileno, interval=interval, timeout=timeout)
    hub = _get_hub[0]()
    io = hub.loop.io
    try:
        waiting_for = int(next(gen))
        while True:
            if waiting_for != _READ and (ready := _ready_now(fileno, waiting_for)):
                # A send (each statement queued in a pipeline waits to write) finds the socket
                # writable at once: asking the loop would cost a turn behind every greenlet.
                waiting_for = int(gen.send(ready))
                continue
            # libev's READ and WRITE are psycopg's R and W (1 and 2). Woken for "either", it
            # answers "both": a side that is not ready yet is only tried again.
            watcher = io(fileno, waiting_for)
            try:
                hub.wait(watcher)
            finally:
                watcher.close()
            waiting_for = int(gen.send(waiting_for))
    except StopIteration as done:
        return done.value


_READ, _WRITE = 1, 2
_POLL_EVENTS = {1: select.POLLIN, 2: select.POLLOUT, 3: select.POLLIN | select.POLLOUT}


def _ready_now(fileno: int, waiting_for: int) -> int:
    """What of `waiting_for` the socket is ready for right now (0: nothing), asked of the
    kernel without waiting (the real poll, not gevent's)."""
    poll = _unpatched_poll[0]()
    poll.register(fileno, _POLL_EVENTS[waiting_for])
    events = poll.poll(0)
    if not events:
        return 0
    got = events[0][1]
    if got & ~(select.POLLIN | select.POLLOUT):
        return waiting_for  # an error or hang-up: let psycopg find it out by trying
    return (_READ if got & select.POLLIN else 0) | (_WRITE if got & select.POLLOUT else 0)


_unpatched_poll: list[Any] = []
#: gevent.get_hub, found once (an import statement in `wait` ran the import system each time).
_get_hub: list[Any] = []


def use_on_gevent() -> bool:
    """Install `wait` as psycopg's when gevent has patched this process; whether it did."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("select"):
        return False
    from psycopg import waiting

    if waiting.wait is not wait:
        _psycopg_wait[:] = [waiting.wait]
        _unpatched_poll[:] = [monkey.get_original("select", "poll")]
        from gevent import get_hub

        _get_hub[:] = [get_hub]
        waiting.wait = wait
    return True
