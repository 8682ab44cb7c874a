"""An open-loop HTTP load generator: `python -m bench.loadgen SPEC.json` prints results as JSON.

Request i is due at start + i / rate, whatever happened to the ones before it (open loop: a
slow server does not slow the arrivals down, as it would with clients that wait for an answer
before sending the next request). Its latency is counted from that due time, not from when a
connection was free to send it, so time spent queued behind slow answers is counted
(no coordinated omission). Requests go over a fixed set of keep-alive connections
(HTTP/1.1 on raw asyncio streams: cheap enough that this process is not the bottleneck on a
small machine; `producer_lag_ms` says how late it was in releasing requests, its own health).

The first `warmup_seconds` of requests are sent but not counted. A server far slower than the
rate makes the run last longer than planned; past five times the planned time (plus 30 s),
requests still waiting for a connection are counted as `abandoned` instead of sent.

SPEC: {"host", "port", "path", "headers": {…}, "bodies": ["…", …] (used in turn), "rate",
"seconds", "warmup_seconds", "connections", "timeout_seconds"}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import percentile


@dataclass(frozen=True)
class Spec:
    """What to send, how fast and for how long."""

    host: str
    port: int
    path: str
    headers: dict[str, str]
    bodies: list[str]
    rate: float
    seconds: float
    warmup_seconds: float = 2.0
    connections: int = 32
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class Sample:
    """One request: when it was due, sent and answered (loop time), and its status or error."""

    index: int
    due: float
    sent: float
    done: float
    status: int
    error: str | None = None


class HttpError(Exception):
    """Raised when an answer is not HTTP/1.1 this client understands."""


def _requests(spec: Spec) -> list[bytes]:
    head = f"POST {spec.path} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n"
    head += "Content-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in spec.headers.items())
    made = []
    for body in spec.bodies:
        data = body.encode()
        made.append(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return made


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the connection stays open) of one response, its body read."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HttpError(f"not an HTTP/1.x status line: {head[0]!r}")
    length, keep = 0, parts[0] == "HTTP/1.1"
    for line in head[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keep = value != "close"
        elif name == "transfer-encoding":
            raise HttpError(f"transfer-encoding {value} is not supported")
    if length:
        await reader.readexactly(length)
    return int(parts[1]), keep


async def _drive(spec: Spec) -> tuple[list[Sample], list[float], float]:
    loop = asyncio.get_running_loop()
    requests = _requests(spec)
    total = round(spec.rate * (spec.warmup_seconds + spec.seconds))
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    start = loop.time() + 0.2
    samples: list[Sample] = []
    lags: list[float] = []

    async def produce() -> None:
        for index in range(total):
            due = start + index / spec.rate
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            lags.append(loop.time() - due)
            queue.put_nowait(index)
        for _ in range(spec.connections):
            queue.put_nowait(None)

    # A server far below the rate would keep this going for a long time: past this, what is
    # still queued is counted as abandoned instead of sent.
    deadline = start + (spec.warmup_seconds + spec.seconds) * 5 + 30

    async def connection() -> None:
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (index := await queue.get()) is not None:
            due = start + index / spec.rate
            sent = loop.time()
            if sent > deadline:
                samples.append(Sample(index, due, sent, sent, 0, "abandoned"))
                continue
            status, error, keep = 0, None, False
            try:
                if streams is None:
                    streams = await asyncio.wait_for(
                        asyncio.open_connection(spec.host, spec.port), spec.timeout_seconds
                    )
                reader, writer = streams
                writer.write(requests[index % len(requests)])
                status, keep = await asyncio.wait_for(_read_response(reader), spec.timeout_seconds)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, HttpError) as exc:
                error = type(exc).__name__
            samples.append(Sample(index, due, sent, loop.time(), status, error))
            if not keep and streams is not None:
                streams[1].close()
                streams = None
        if streams is not None:
            streams[1].close()

    await asyncio.gather(produce(), *(connection() for _ in range(spec.connections)))
    return samples, lags, start


def summarize(spec: Spec, samples: list[Sample], lags: list[float], start: float) -> dict[str, Any]:
    """Counts, achieved rate and latency percentiles of the measured (post-warm-up) requests."""
    counted = [s for s in samples if s.due >= start + spec.warmup_seconds]
    ok = [s for s in counted if 200 <= s.status < 300]
    outcomes = Counter(s.error or str(s.status) for s in counted)
    latency = [(s.done - s.due) * 1000 for s in ok]
    service = [(s.done - s.sent) * 1000 for s in ok]
    window = (max(s.done for s in ok) - min(s.due for s in counted)) if ok else 0.0
    return {
        "rate": spec.rate,
        "seconds": spec.seconds,
        "connections": spec.connections,
        "sent": len(counted),
        "ok": len(ok),
        "errors": len(counted) - len(ok),
        "outcomes": dict(outcomes),
        "achieved_rps": len(ok) / window if window > 0 else 0.0,
        "latency_ms": {
            f"p{p:g}": percentile(latency, p) if latency else None for p in (50, 90, 99, 99.9)
        }
        | {"max": max(latency) if latency else None},
        "service_ms": {"p50": percentile(service, 50), "p99": percentile(service, 99)}
        if service
        else {},
        "producer_lag_ms": {
            "p99": percentile(lags, 99) * 1000 if lags else None,
            "max": max(lags) * 1000 if lags else None,
        },
    }


def run(spec: Spec) -> dict[str, Any]:
    """Drive the load and summarize it, with this process's CPU use."""
    wall, cpu = time.monotonic(), sum(os.times()[:2])
    samples, lags, start = asyncio.run(_drive(spec))
    result = summarize(spec, samples, lags, start)
    result["loadgen_cores"] = round((sum(os.times()[:2]) - cpu) / (time.monotonic() - wall), 2)
    return result


def main() -> None:
    """`python -m bench.loadgen SPEC.json`."""
    raw = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(run(Spec(**raw))))


if __name__ == "__main__":
    main()
