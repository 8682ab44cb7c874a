"""5. `POST /v1/posts` at a fixed request rate, against a bare Falcon endpoint.

Herald's API runs as the stack runs it: gunicorn with `herald_api/gunicorn_conf.py`
(WEB_CONCURRENCY worker processes, GUNICORN_THREADS threads each, gthread, access log on).
The load generator (loadgen.py, its own process) sends `POST /v1/posts` at `rate` requests per
second, open loop, over keep-alive connections: each body schedules a new post 30 days ahead
on one of the tenant's sandbox accounts (in turn), so each request writes a post and its
target. Then Herald's API is stopped, and the bare app (bare_app.py) is started under the same
gunicorn configuration and driven with the same requests. The rest of the stack (scheduler,
workers) runs idle throughout both, as it would in production.

Reported for each: the rate achieved, errors, and latency from each request's due time
(p50, p99); and Herald over bare for each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import profile
from bench.cpu import CpuMeter
from bench.infra import ROOT, BenchStack
from herald_embedded.stack import free_port, wait_for


@dataclass
class LoadRun:
    """One load generator run, as it reported it, and the CPU each part used."""

    result: dict[str, Any]
    cores: dict[str, float] = field(default_factory=dict)
    cpu_wall: float = 0.0  # the seconds `cores` is an average over

    @property
    def achieved(self) -> float:
        return float(self.result["achieved_rps"])

    def latency(self, name: str) -> float:
        value = self.result["latency_ms"].get(name)
        return float(value) if value is not None else float("nan")


@dataclass
class ApiResult:
    """Herald's API and the bare app at the same rate."""

    rate: float
    seconds: float
    workers: str
    threads: str
    herald: LoadRun
    bare: LoadRun


def measure_api(
    stack: BenchStack,
    api_key: str,
    account_ids: list[str],
    *,
    rate: float,
    seconds: float,
    warmup_seconds: float,
    connections: int,
    say: Callable[[str], None] = print,
    profile_dir: Path | None = None,
) -> ApiResult:
    """Drive Herald's API, then the bare app, with the same requests."""
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat()
    total = round(rate * (seconds + warmup_seconds))
    bodies = [
        json.dumps(
            {
                "content": f"bench api #{n}",
                "account_ids": [account_ids[n % len(account_ids)]],
                "scheduled_at": when,
            }
        )
        for n in range(total)
    ]
    spec = {
        "host": "127.0.0.1",
        "path": "/v1/posts",
        "headers": {"Authorization": f"Bearer {api_key}"},
        "bodies": bodies,
        "rate": rate,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "connections": connections,
    }
    herald = _load(stack, {**spec, "port": stack.port}, "api", profile_dir)
    say(f"  herald: {_line(herald)}")
    stack.stop("api")
    port = free_port()
    stack.start_gunicorn("bare", "bench.bare_app:create_app()", port)
    try:
        _wait_ready(stack, port)
        bare = _load(stack, {**spec, "port": port}, "bare")
        say(f"  bare:   {_line(bare)}")
    finally:
        stack.stop("bare")
    env = stack.env()
    return ApiResult(
        rate=rate,
        seconds=seconds,
        workers=env.get("WEB_CONCURRENCY", "2"),
        threads=env.get("GUNICORN_THREADS", "4"),
        herald=herald,
        bare=bare,
    )


def _wait_ready(stack: BenchStack, port: int) -> None:
    def ready() -> bool:
        stack.check_alive()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30, interval=0.2, what="the bare app to serve")


def _load(
    stack: BenchStack, spec: dict[str, Any], server: str, profile_dir: Path | None = None
) -> LoadRun:
    meter = CpuMeter(lambda: {name: stack.pids(name) for name in stack.procs})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(spec, file)
    try:
        recording = (
            profile.record(server, stack.procs[server].pid, profile_dir) if profile_dir else None
        )
        before = meter.snapshot()
        out = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", file.name],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        after = meter.snapshot()
        cores = meter.cores(before, after)
        if recording is not None:
            recording.stop()
    finally:
        Path(file.name).unlink(missing_ok=True)
    result = json.loads(out)
    cores["loadgen"] = float(result["loadgen_cores"])
    # The load generator has exited by the second snapshot: its CPU was counted as `other`.
    cores["other"] = round(max(0.0, cores.get("other", 0.0) - cores["loadgen"]), 2)
    return LoadRun(result, cores, after.at - before.at)


def _line(run: LoadRun) -> str:
    r = run.result
    return (
        f"{r['ok']:,}/{r['sent']:,} ok at {r['achieved_rps']:.0f}/s, "
        f"p50 {run.latency('p50'):.1f} ms, p99 {run.latency('p99'):.1f} ms"
        + (f", outcomes {r['outcomes']}" if r["errors"] else "")
    )
