"""The machine a run measured, and the table of its figures against their targets."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.api import ApiResult
from bench.cpu import cpu_ms_per, format_cores
from bench.floor import FloorResult
from bench.infra import ROOT, libpq_url
from bench.publish import DrainResult
from bench.statements import StatementsResult
from bench.ticks import TickResult

#: The targets the figures are held to (issue 13, "Publish at the broker's speed").
PUBLISH_TARGET = 0.5  # × the floor
PUBLISHER_CPU_TARGET_MS = 2.0  # publisher CPU per published target
STATEMENTS_TARGET = 6  # statements per published sandbox target…
TRANSACTIONS_TARGET = 2  # …in at most this many transactions
BURST_P99_TARGET_SECONDS = 20.0  # absolute p99 lateness of the burst
TICK_TARGET = 1.2  # tick with 1,000,000 future posts / tick with none
API_P99_TARGET_MS = 50.0  # at API_TARGET_RATE
API_TARGET_RATE = 300.0
API_CPU_TARGET_MS = 4.0  # API CPU per POST /v1/posts
LATENCY_TARGET = 300.0  # targets/s with every sandbox account answering in 200 ± 50 ms


@dataclass
class Results:
    """Everything one run measured (a part not run stays None)."""

    machine: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    floor: FloorResult | None = None
    publish: DrainResult | None = None
    reference: DrainResult | None = None
    burst: DrainResult | None = None
    latency: DrainResult | None = None
    ticks: TickResult | None = None
    api: ApiResult | None = None
    statements: StatementsResult | None = None


def describe_machine(postgres_url: str, redis_url: str) -> dict[str, str]:
    """CPU, cores, memory, OS and the versions of everything measured."""
    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        info["postgresql"] = str(row[0]) if row else "?"
        # What most moves a write-heavy figure on the same hardware.
        settings = conn.execute(
            "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name",
            (["shared_buffers", "synchronous_commit", "fsync"],),
        ).fetchall()
        info["postgresql"] += " (" + ", ".join(f"{n} {v}" for n, v in settings) + ")"
    info["redis"] = str(redis.Redis.from_url(redis_url).info("server").get("redis_version"))
    info["packages"] = ", ".join(
        f"{name} {version(name)}"
        for name in ("dramatiq", "falcon", "gunicorn", "sqlalchemy", "psycopg", "redis")
    )
    info["commit"] = _commit()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    return commit + (" + uncommitted changes" if git("status", "--porcelain") else "")


def _n(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _cpu_per(run: DrainResult, group: str) -> float:
    return cpu_ms_per(run.cores, run.cpu_wall, run.published, group)


def _shape(floor: FloorResult | None) -> str:
    return f"{floor.pool} × {floor.threads}" if floor else "?"


def table(results: Results) -> str:
    """The figures of the run, each with its target and its ratio to this run's baseline."""
    rows: list[tuple[str, str, str, str, str]] = []

    def row(number: str, name: str, measured: str, target: str = "", met: bool | None = None):  # type: ignore[no-untyped-def]
        rows.append((number, name, measured, target, "" if met is None else _verdict(met)))

    floor = results.floor.immediate.rate if results.floor else math.nan
    if results.floor:
        f = results.floor
        row(
            "1",
            f"floor: no-op actor ({_shape(f)})",
            f"{_n(floor)} msg/s",
            "baseline",
        )
        for name, extra in (
            ("  same, with Herald's worker middleware", f.herald_middleware),
            ("  same, delayed to one second", f.delayed),
        ):
            if extra is not None:
                row(
                    "",
                    name,
                    f"{_n(extra.rate)} msg/s = {extra.rate / floor:.2f} × floor",
                    "(to read 2)",
                )
    if results.publish:
        p = results.publish
        ratio = p.throughput / floor if results.floor else math.nan
        row(
            "2",
            f"publish {p.targets:,}, due → published",
            f"{_n(p.throughput, 1)} targets/s = {_n(ratio, 3)} × floor",
            f"≥ {PUBLISH_TARGET} × floor",
            ratio >= PUBLISH_TARGET if results.floor else None,
        )
        cpu = _cpu_per(p, "publisher")
        row(
            "",
            "  publisher CPU per published target",
            f"{cpu:.2f} ms",
            f"≤ {PUBLISHER_CPU_TARGET_MS:g} ms",
            cpu <= PUBLISHER_CPU_TARGET_MS,
        )
    if results.reference:
        r = results.reference
        ratio = r.throughput / floor if results.floor else math.nan
        row(
            "2r",
            f"publish {r.targets:,} in the floor's shape ({_shape(results.floor)})",
            f"{_n(r.throughput, 1)} targets/s = {_n(ratio, 3)} × floor; "
            f"publisher {_cpu_per(r, 'publisher'):.2f} ms/target",
            f"≥ {PUBLISH_TARGET} × floor",
            ratio >= PUBLISH_TARGET if results.floor else None,
        )
    if results.burst:
        b = results.burst
        s = b.lateness_summary
        row(
            "3",
            f"burst {b.targets:,} due at one second",
            f"lateness p50 {_n(s['p50'], 2)} s, p95 {_n(s['p95'], 2)} s, "
            f"p99 {_n(s['p99'], 2)} s, max {_n(s['max'], 2)} s",
            f"p99 ≤ {BURST_P99_TARGET_SECONDS:g} s",
            s["p99"] <= BURST_P99_TARGET_SECONDS,
        )
        row(
            "",
            "  messages resent while still queued",
            f"{_n(b.resent)} (and {_n(b.stale)} skipped as stale)",
            "0",
            b.resent == 0,
        )
    if results.ticks:
        t = results.ticks
        row(
            "4",
            f"tick with {t.future_posts:,} future posts",
            f"{t.loaded.tick_ms:.2f} ms / {t.empty.tick_ms:.2f} ms = {t.ratio:.2f}",
            f"≤ {TICK_TARGET}",
            t.ratio <= TICK_TARGET,
        )
    if results.api:
        a = results.api
        h, bare = a.herald, a.bare
        gunicorn = f"{a.workers} workers × {a.threads} threads"
        for number, name, run in (("5", "POST /v1/posts", h), ("", "  bare Falcon", bare)):
            errors = run.result["errors"]
            measured = (
                f"{_n(run.achieved)}/s, p50 {_n(run.latency('p50'), 1)} ms, "
                f"p99 {_n(run.latency('p99'), 1)} ms" + (f", {errors} errors" if errors else "")
            )
            if number:
                met = h.latency("p99") <= API_P99_TARGET_MS and h.achieved >= 0.99 * a.rate
                row(
                    number,
                    f"{name} at {a.rate:g}/s ({gunicorn})",
                    measured,
                    f"p99 ≤ {API_P99_TARGET_MS:g} ms at {API_TARGET_RATE:g}/s",
                    met if a.rate == API_TARGET_RATE else None,
                )
                cpu = cpu_ms_per(h.cores, h.cpu_wall, int(h.result["ok"]), "api")
                row(
                    "",
                    "  API CPU per request",
                    f"{cpu:.2f} ms",
                    f"≤ {API_CPU_TARGET_MS:g} ms",
                    cpu <= API_CPU_TARGET_MS,
                )
            else:
                row("", name, measured)
        row(
            "",
            "  Herald / bare",
            f"throughput {h.achieved / bare.achieved:.2f}, "
            f"p50 {h.latency('p50') / bare.latency('p50'):.1f}, "
            f"p99 {h.latency('p99') / bare.latency('p99'):.1f}",
        )
    if results.statements:
        st = results.statements
        per, tx = st.per_target(st.publisher)
        row(
            "6",
            "statements per published sandbox target",
            f"{per:.2f} in {tx:.2f} transactions (scheduler: "
            f"{st.per_target(st.scheduler)[0]:.3f} more)",
            f"≤ {STATEMENTS_TARGET} in ≤ {TRANSACTIONS_TARGET}",
            per <= STATEMENTS_TARGET and tx <= TRANSACTIONS_TARGET,
        )
    if results.latency:
        lat = results.latency
        row(
            "7",
            f"{lat.targets:,} targets, sandbox answering in 200 ± 50 ms",
            f"{_n(lat.throughput, 1)} targets/s; publisher CPU {_cpu_per(lat, 'publisher'):.2f} ms/target",
            f"≥ {LATENCY_TARGET:g}/s",
            lat.throughput >= LATENCY_TARGET,
        )
    header = ("#", "figure", "measured (ratio to this run's baseline)", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    line = "  ".join("-" * w for w in widths)
    out = [
        "  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True)),
        line,
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(x.rstrip() for x in out)


def details(results: Results) -> str:
    """Where the time and the CPU went, per part: to read the table with."""
    out: list[str] = []
    if results.floor:
        f = results.floor
        out.append(
            f"floor: {f.immediate.messages:,} messages, dramatiq --threads {f.threads} "
            f"--processes {f.processes}; cores used: {format_cores(f.immediate.cores)}; "
            f"worker CPU per message "
            f"{cpu_ms_per(f.immediate.cores, f.immediate.cpu_wall, f.immediate.messages, 'worker'):.2f} ms"
        )
        for name, extra in (("middleware", f.herald_middleware), ("delayed", f.delayed)):
            if extra is not None:
                out.append(
                    f"  {name}: {extra.seconds:.2f} s; cores used: {format_cores(extra.cores)}; "
                    "worker CPU per message "
                    f"{cpu_ms_per(extra.cores, extra.cpu_wall, extra.messages, 'worker'):.2f} ms"
                )
    for name, run in (
        ("publish", results.publish),
        ("burst", results.burst),
        ("latency", results.latency),
        ("reference", results.reference),
    ):
        if run is None:
            continue
        wait, service = run.wait_for_worker, run.claim_to_recorded_ms
        out.append(
            f"{name}: {run.published:,}/{run.targets:,} published {run.outcomes}, "
            f"{run.attempts:,} attempts, {run.deliveries:,} sandbox deliveries; exactly once: "
            f"{run.targets - run.not_once:,}/{run.targets:,} targets with one delivery; "
            f"drain {run.drain_seconds:.2f} s"
        )
        out.append(
            f"  wait for a worker (claim − due) p50 {wait['p50']:.2f} s, p99 {wait['p99']:.2f} s; "
            f"claim → recorded p50 {service['p50']:.1f} ms, p99 {service['p99']:.1f} ms"
        )
        out.append(
            f"  messages beyond one per target: {_n(run.resent)} resent by the scheduler "
            f"(last (re)sent {run.last_sent_after_due:+.1f} s from due), {_n(run.stale)} "
            f"skipped as stale by the publisher; queue empty {run.queue_empty_after:.1f} s "
            f"after the last publish"
        )
        out.append(
            f"  cores used: {format_cores(run.cores)}; publisher memory "
            f"{run.rss_before_mib:.0f} MiB before, {run.rss_peak_mib:.0f} MiB at its highest"
        )
        out.append(
            "  CPU per target: "
            + ", ".join(
                f"{group} {cpu_ms_per(run.cores, run.cpu_wall, run.published, group):.1f} ms"
                for group in ("publisher", "postgres", "scheduler", "redis")
            )
        )
    if results.ticks:
        t = results.ticks
        out.append(
            f"ticks: median (p90) {t.empty.tick_ms:.2f} ({t.empty.p90_ms:.2f}) ms with no posts, "
            f"{t.loaded.tick_ms:.2f} ({t.loaded.p90_ms:.2f}) ms with {t.future_posts:,} "
            f"(written in {t.insert_seconds:.0f} s)"
        )
        for part, empty_ms in t.empty.parts_ms.items():
            out.append(f"  {part}: {empty_ms:.2f} → {t.loaded.parts_ms[part]:.2f} ms")
    if results.statements:
        st = results.statements
        for name, count in (("publisher", st.publisher), ("scheduler", st.scheduler)):
            per, tx = st.per_target(count)
            kinds = ", ".join(
                f"{kind} {n / max(st.published, 1):.2f}"
                for kind, n in sorted(count.statements.items(), key=lambda kv: -kv[1])
            )
            out.append(
                f"statements ({name}): {per:.2f} per published target in {tx:.2f} "
                f"transactions ({kinds})"
            )
        out.append(f"  publisher CPU in-process (no broker): {st.cpu_ms_per_target:.2f} ms/target")
        if st.profile:
            out.append(st.profile)
    if results.api:
        for name, load in (("herald", results.api.herald), ("bare", results.api.bare)):
            r = load.result
            out.append(
                f"api {name}: {r['ok']:,}/{r['sent']:,} ok {r['outcomes']}, "
                f"latency p90 {_n(load.latency('p90'), 1)} ms, p99.9 "
                f"{_n(load.latency('p99.9'), 1)} ms, max {_n(load.latency('max'), 1)} ms; "
                f"service time p50 {_n(r['service_ms'].get('p50', math.nan), 1)} ms; "
                f"load generator late by p99 {_n(r['producer_lag_ms']['p99'], 1)} ms"
            )
            out.append(f"  cores used: {format_cores(load.cores)}")
            server = "api" if name == "herald" else "bare"
            out.append(
                "  CPU per request: "
                + ", ".join(
                    f"{group} {cpu_ms_per(load.cores, load.cpu_wall, r['ok'], group):.2f} ms"
                    for group in (server, "postgres", "loadgen")
                )
            )
    return "\n".join(out)


def as_json(results: Results) -> dict[str, Any]:
    """The results as plain data, with the derived figures the table shows."""
    from dataclasses import asdict

    data: dict[str, Any] = asdict(results)
    for name in ("publish", "burst"):
        run: DrainResult | None = getattr(results, name)
        if run is not None:
            data[name]["throughput"] = run.throughput
            data[name]["lateness_summary"] = run.lateness_summary
            del data[name]["lateness"]
            data[name]["due"] = run.due.isoformat()
    if results.floor:
        data["floor"]["rate"] = results.floor.immediate.rate
    if results.ticks:
        data["ticks"]["ratio"] = results.ticks.ratio
    return data
