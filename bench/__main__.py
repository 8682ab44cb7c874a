"""`python -m bench` (`make bench`): run the benchmark and print its figures.

Sizes come from flags, else from BENCH_* environment variables, else from the full defaults
(or the --quick ones). PostgreSQL and Redis come from HERALD_BENCH_POSTGRES_URL and
HERALD_BENCH_REDIS_URL (the Makefile passes its TEST_POSTGRES_URL and TEST_REDIS_URL). Every
Herald setting the services read from the environment (PUBLISH_WORKER_CONCURRENCY,
WORKER_PROCESSES, WEB_CONCURRENCY, GUNICORN_THREADS, SCHEDULER_*, …) applies to the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from bench import profile
from bench.api import measure_api
from bench.floor import measure_floor
from bench.infra import BenchStack, Scratch, interrupt_on_sigterm
from bench.publish import DrainResult, drain
from bench.report import Results, as_json, describe_machine, details, table
from bench.seeding import connect, create_sandbox_accounts, create_tenant
from bench.statements import measure_statements
from bench.ticks import measure_ticks
from herald_common.contracts import PUBLISH, queue_concurrency
from herald_common.settings import Settings
from herald_common.workers import worker_pool

PARTS = ("floor", "publish", "burst", "latency", "reference", "api", "ticks", "statements")

#: The shape the floor is measured in: the publisher's until this release, five threads, in
#: which the issue's figures were first taken. The floor is what Dramatiq costs a message;
#: run as the publisher now ships (gevent × 100), a no-op actor mostly measures the consumer
#: sleeping between fetches (its actors finish before it wakes), so that is no baseline (see
#: BENCHMARKS.md). Part `reference` also runs the publish drain in this shape.
REFERENCE_SHAPE = {"PUBLISH_WORKER_CONCURRENCY": "5", "WORKER_POOL": "threads"}

#: What every sandbox account of the latency part answers in: like a real platform.
PLATFORM_LATENCY = {"latency_ms": 200, "latency_jitter_ms": 50}


@dataclass(frozen=True)
class Size:
    """One setting of the run: its flag, environment variable and defaults (full, quick)."""

    name: str
    full: float
    quick: float
    help: str

    @property
    def env(self) -> str:
        return "BENCH_" + self.name.upper()


SIZES = (
    Size("floor_messages", 20_000, 3_000, "messages the no-op worker drains (each way)"),
    Size("publish_targets", 5_000, 500, "targets of the throughput drain"),
    Size("burst_targets", 10_000, 1_000, "targets due at the same second"),
    Size("latency_targets", 5_000, 1_000, "targets due at one second on accounts of 200 ± 50 ms"),
    Size("future_posts", 1_000_000, 50_000, "future posts for the tick ratio"),
    Size("accounts", 100, 100, "sandbox accounts the targets are spread over"),
    Size("api_rate", 300, 300, "requests per second sent to POST /v1/posts"),
    Size("api_seconds", 15, 3, "seconds of measured load (after the warm-up)"),
    Size("api_warmup", 3, 1, "seconds of load sent first and not counted"),
    Size("api_connections", 32, 32, "keep-alive connections of the load generator"),
    Size("statement_targets", 2_000, 300, "targets published in-process to count statements"),
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for trying the tool")
    parser.add_argument(
        "--only",
        default=os.environ.get("BENCH_ONLY", ",".join(PARTS)),
        help=f"comma-separated parts to run (default: all of {','.join(PARTS)})",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the publisher, scheduler and API with py-spy during their parts, and "
        "write the samples and a summary (top functions) to DIR",
    )
    for size in SIZES:
        parser.add_argument(
            "--" + size.name.replace("_", "-"),
            type=float,
            help=f"{size.help} (${size.env}; default {size.full:g}, quick {size.quick:g})",
        )
    args = parser.parse_args(argv)
    for size in SIZES:
        if getattr(args, size.name) is None:
            from_env = os.environ.get(size.env)
            default = size.quick if args.quick else size.full
            setattr(args, size.name, float(from_env) if from_env else default)
    args.only = [part.strip() for part in args.only.split(",") if part.strip()]
    if unknown := set(args.only) - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    return args


def stack_env() -> dict[str, str]:
    """What the stack's processes get on top of the environment: production values where
    the end-to-end tests' Stack chooses test ones."""
    tick = Settings.model_fields["scheduler_tick_seconds"].default
    return {"SCHEDULER_TICK_SECONDS": os.environ.get("SCHEDULER_TICK_SECONDS", str(tick))}


def effective_settings(stack: BenchStack) -> dict[str, str]:
    """The settings the services run with, as they will read them."""
    env = stack.env()
    # The stack's environment is this one plus its own values; of those, only the tick is
    # a setting shown here.
    settings = Settings(scheduler_tick_seconds=float(env["SCHEDULER_TICK_SECONDS"]))
    return {
        "publisher": f"{worker_pool(settings, [PUBLISH.queue])} × "
        f"{queue_concurrency(settings, PUBLISH.queue)}",
        "WORKER_PROCESSES": env.get("WORKER_PROCESSES", "1"),
        "dramatiq_worker_timeout (ms)": env.get("dramatiq_worker_timeout", "100"),
        "WEB_CONCURRENCY": env.get("WEB_CONCURRENCY", str(len(os.sched_getaffinity(0)))),
        "GUNICORN_THREADS": env.get("GUNICORN_THREADS", "4"),
        "SCHEDULER_TICK_SECONDS": str(settings.scheduler_tick_seconds),
        "SCHEDULER_LOOKAHEAD_SECONDS": str(settings.scheduler_lookahead_seconds),
        "SCHEDULER_BATCH_SIZE": str(settings.scheduler_batch_size),
        "PUBLISH_PACING": str(settings.publish_pacing).lower()
        + " (sandbox accounts without pace_limit: not paced)",
        "DATABASE_POOL_SIZE": str(settings.database_pool_size),
        "LOG_LEVEL": env.get("LOG_LEVEL", settings.log_level),
    }


def start_stack(stack: BenchStack, accounts: int) -> tuple[str, str, list[str]]:
    """Migrate, start the services; a tenant, its key and its sandbox accounts."""
    stack.migrate()
    stack.start_api()
    stack.start_publisher()
    stack.start_token_refresher()
    stack.start_scheduler()
    stack.wait_ready()
    tenant_id, api_key = stack.create_tenant_ids("bench")
    account_ids = []
    with stack.client(api_key) as client:
        for n in range(accounts):
            response = client.post("/v1/accounts", json={"platform": "sandbox", "handle": f"b{n}"})
            response.raise_for_status()
            account_ids.append(str(response.json()["id"]))
    return tenant_id, api_key, account_ids


def slow_accounts(stack: BenchStack, count: int) -> str:
    """A tenant of its own whose `count` sandbox accounts answer in PLATFORM_LATENCY."""
    with connect(stack.database_url) as conn:
        tenant_id = create_tenant(conn, "bench-latency")
        create_sandbox_accounts(conn, tenant_id, count, PLATFORM_LATENCY)
        conn.commit()
    return tenant_id


def run(args: argparse.Namespace, scratch: Scratch, results: Results) -> None:
    """Each part in turn; `results` fills as they finish."""
    say = _say
    database = scratch.create_database("stack")
    stack = scratch.stack("stack", database, stack_env())
    results.settings = effective_settings(stack)
    say("settings: " + ", ".join(f"{k} {v}" for k, v in results.settings.items()))
    if "floor" in args.only:
        say(f"1. floor: no-op actor draining {int(args.floor_messages):,} messages")
        results.floor = measure_floor(
            scratch, database, {**stack_env(), **REFERENCE_SHAPE}, int(args.floor_messages), say=say
        )
    if {"publish", "burst", "latency", "reference", "api"} & set(args.only):
        say("starting the stack (gunicorn, dramatiq publisher and token-refresher, scheduler)")
        tenant_id, api_key, account_ids = start_stack(stack, int(args.accounts))
        lookahead = float(results.settings["SCHEDULER_LOOKAHEAD_SECONDS"])

        def run_drain(label: str, heading: str, tenant: str, count: float) -> DrainResult:
            say(heading)
            return drain(
                stack,
                tenant,
                int(count),
                label=label,
                lookahead_seconds=lookahead,
                say=say,
                profile_dir=args.profile,
            )

        if "publish" in args.only:
            heading = f"2. publish: {int(args.publish_targets):,} targets due at one second"
            results.publish = run_drain("publish", heading, tenant_id, args.publish_targets)
        if "burst" in args.only:
            heading = f"3. burst: {int(args.burst_targets):,} targets due at one second"
            results.burst = run_drain("burst", heading, tenant_id, args.burst_targets)
        if "latency" in args.only:
            heading = (
                f"7. latency: {int(args.latency_targets):,} targets due at one second, every "
                f"account answering in {PLATFORM_LATENCY['latency_ms']} ± "
                f"{PLATFORM_LATENCY['latency_jitter_ms']} ms"
            )
            slow_tenant = slow_accounts(stack, int(args.accounts))
            results.latency = run_drain("latency", heading, slow_tenant, args.latency_targets)
        if "reference" in args.only:
            stack.restart("publisher", REFERENCE_SHAPE, role=PUBLISH.queue)
            heading = f"2r. publish in the floor's shape: {int(args.publish_targets):,} targets"
            results.reference = run_drain("reference", heading, tenant_id, args.publish_targets)
        if "api" in args.only:
            say(f"5. API: POST /v1/posts at {args.api_rate:g}/s for {args.api_seconds:g} s")
            results.api = measure_api(
                stack,
                api_key,
                account_ids,
                rate=args.api_rate,
                seconds=args.api_seconds,
                warmup_seconds=args.api_warmup,
                connections=int(args.api_connections),
                say=say,
                profile_dir=args.profile,
            )
        stack.stop_all()
    if "statements" in args.only:
        say(f"6. statements: {int(args.statement_targets):,} targets published in-process")
        results.statements = measure_statements(
            scratch, int(args.statement_targets), profile=args.profile is not None, say=say
        )
    if "ticks" in args.only:
        say(f"4. ticks: idle tick without and with {int(args.future_posts):,} future posts")
        results.ticks = measure_ticks(scratch, int(args.future_posts), say=say)
        t = results.ticks
        say(f"  median tick {t.empty.tick_ms:.2f} ms without, {t.loaded.tick_ms:.2f} ms with")


def profile_summary(directory: Path) -> str:
    """The top functions of every recording in `directory`, also written to summary.md."""
    tables = [
        profile.summarise(path.stem, path).table()
        for path in sorted(directory.glob("*.txt"))
        if path.stat().st_size
    ]
    text = "\n\n".join(tables) or "(no samples recorded)"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.md").write_text(text + "\n")
    return text


_started = time.monotonic()


def _say(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    postgres_url = os.environ.get(
        "HERALD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    redis_url = os.environ.get("HERALD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    interrupt_on_sigterm()
    try:
        results = Results(machine=describe_machine(postgres_url, redis_url))
    except (psycopg.Error, redis.RedisError) as exc:
        print(f"bench: PostgreSQL ({postgres_url}) and Redis ({redis_url}) are needed: {exc}")
        return 2
    print("machine: " + "; ".join(f"{k} {v}" for k, v in results.machine.items()), flush=True)
    if (load := os.getloadavg()[0]) > 0.5:
        print(
            f"warning: the machine is busy (load average {load:.2f}); the figures will show it "
            "(see `other` in the cores used)",
            file=sys.stderr,
        )
    logdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    scratch = Scratch(postgres_url, redis_url, logdir)
    status = 0
    try:
        run(args, scratch, results)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        status = 130
    except Exception:
        traceback.print_exc()
        status = 1
    finally:
        problems = scratch.close()
        for problem in problems:
            print(f"clean-up: {problem}", file=sys.stderr)
        if status == 0 and not args.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            print(f"services' logs: {logdir}", file=sys.stderr)
    print()
    print(details(results))
    print()
    print(table(results))
    if args.profile:
        summary = profile_summary(args.profile)
        print(f"\nprofiles (py-spy, {args.profile}):\n\n{summary}")
    if args.json:
        args.json.write_text(json.dumps(as_json(results), indent=2, default=str))
        print(f"results written to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
