"""What a benchmark run borrows and gives back: scratch PostgreSQL databases, one Redis key
prefix, and the processes it starts.

Everything a run creates is named after one run id (`herald_bench_<id>_…` databases,
`herald-bench-<id>…` Redis keys), so `Scratch.close` can remove all of it, and does so on
success, failure and Ctrl-C alike (SIGTERM is turned into the same KeyboardInterrupt).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psycopg
import redis
from sqlalchemy.engine import make_url

from herald_embedded.stack import BIN, Stack, free_port

#: The repository root: `bench` is imported from here by the processes the run starts.
ROOT = Path(__file__).resolve().parent.parent


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the server `server_url` points at."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """A URL psycopg can connect to (SQLAlchemy's `+driver` suffix removed)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class BenchStack(Stack):
    """Herald's Stack, plus processes that are not Herald's (the floor's worker, the bare app),
    started and stopped the same way."""

    def spawn(self, name: str, argv: list[str], **env: str) -> None:
        """Start `argv` as process `name` with the stack's environment and `env` on top."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115  (owned by the child)
        self.procs[name] = subprocess.Popen(
            argv,
            env={**self.env(), **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def env(self) -> dict[str, str]:
        env = super().env()
        # `bench.*` modules are loaded by `dramatiq` and gunicorn in the children.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env["PATH"] = os.pathsep.join((str(BIN), env.get("PATH", "")))
        # The API figure sends 300 requests/s with one key: over the default per-key limit,
        # which is a tenant's fairness rule and no part of what the figure measures.
        env.setdefault("API_RATE_LIMIT", "")
        return env

    def start_gunicorn(self, name: str, app: str, port: int) -> None:
        """gunicorn with Herald's own gunicorn_conf serving `app` on `port`."""
        import herald_api

        conf = Path(herald_api.__file__).parent / "gunicorn_conf.py"
        self.spawn(name, [str(BIN / "gunicorn"), "-c", str(conf), app], API_PORT=str(port))

    def create_tenant_ids(self, name: str) -> tuple[str, str]:
        """A new tenant through the admin CLI: (tenant id, API key)."""
        out = subprocess.run(
            [str(BIN / "herald-admin"), "create-tenant", "--name", name],
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        made = json.loads(out.strip().splitlines()[-1])
        return str(made["tenant_id"]), str(made["api_key"])

    def restart(self, name: str, env: dict[str, str], *, role: str) -> None:
        """Stop worker service `name`, start it again with `env` on top of the stack's, and
        wait until it beats for queue `role`."""
        self.stop(name)
        self.env_overrides.update(env)
        getattr(self, f"start_{name}")()
        self.wait_beating(name, role)

    def wait_beating(self, name: str, role: str, timeout: float = 60) -> None:
        """Until a process of service `name` beats for `role` (it drains that queue)."""
        client = redis.Redis.from_url(self.redis_url)
        started = time.monotonic()
        while True:
            self.check_alive()
            pids = set(self.pids(name))
            members = client.zrange(f"{self.namespace}:herald.heartbeats:{role}", 0, -1)
            if any(int(m.decode().rsplit(":", 1)[1]) in pids for m in members):
                return
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{name} did not start consuming within {timeout:.0f} s")
            time.sleep(0.1)

    def rss_mib(self, name: str) -> float:
        """Resident memory of process `name` and its descendants, MiB."""
        total = 0
        for pid in self.pids(name):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024

    def pids(self, name: str) -> list[int]:
        """The process `name` and its descendants (gunicorn and dramatiq fork workers)."""
        proc = self.procs.get(name)
        return descendants(proc.pid) if proc is not None and proc.poll() is None else []

    def log_size(self, name: str) -> int:
        """How much of process `name`'s log has been written (an offset for log_since)."""
        path = self.logdir / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def log_since(self, name: str, offset: int) -> str:
        """What process `name` has logged since `offset`."""
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")

    def check_alive(self) -> None:
        """RuntimeError, with the log's tail, when one of the processes has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")


def queue_keys(namespace: str, queue: str) -> tuple[str, str]:
    """The Redis list of message ids and hash of messages of one Dramatiq queue.

    Dramatiq's own layout (dramatiq/brokers/redis/dispatch.lua); a message leaves the hash
    when it is acknowledged, so an empty hash is a queue with nothing left to do.
    """
    return f"{namespace}:{queue}", f"{namespace}:{queue}.msgs"


def wait_drained(
    stack: BenchStack,
    client: redis.Redis,
    hashes: list[str],
    *,
    poll: float = 0.005,
    timeout: float = 3600.0,
) -> float:
    """Poll until every hash is empty; the time (time.time()) it was first seen empty."""
    checked = started = time.monotonic()
    while True:
        pipe = client.pipeline(transaction=False)
        for key in hashes:
            pipe.hlen(key)
        if not any(pipe.execute()):
            return time.time()
        if time.monotonic() - checked > 1:
            stack.check_alive()
            checked = time.monotonic()
            if checked - started > timeout:
                raise RuntimeError(f"{', '.join(hashes)} still not empty after {timeout:.0f} s")
        time.sleep(poll)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


@dataclass
class Scratch:
    """The databases, Redis keys, processes and log folder of one run; `close` removes them."""

    postgres_url: str
    redis_url: str
    logdir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    databases: list[str] = field(default_factory=list)
    stacks: list[BenchStack] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        """Every Redis key of the run starts with this."""
        return f"herald-bench-{self.run_id}"

    def namespace(self, name: str) -> str:
        """A Redis namespace (HERALD_BROKER_NAMESPACE) of this run."""
        return f"{self.prefix}-{name}"

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def create_database(self, name: str) -> str:
        """A new empty database on the PostgreSQL server; its URL."""
        database = f"herald_bench_{self.run_id}_{name}"
        with psycopg.connect(libpq_url(self.postgres_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        self.databases.append(database)
        return database_url(self.postgres_url, database)

    def stack(self, name: str, database_url: str, env: dict[str, str]) -> BenchStack:
        """A stack (no process started yet) on `database_url` under namespace `name`."""
        stack = BenchStack(
            database_url=database_url,
            redis_url=self.redis_url,
            namespace=self.namespace(name),
            logdir=self.logdir / name,
            env_overrides=env,
            port=free_port(),
        )
        self.stacks.append(stack)
        return stack

    def close(self) -> list[str]:
        """Stop every process, drop every database, delete every key; what could not be."""
        problems: list[str] = []
        for stack in self.stacks:
            try:
                stack.stop_all()
            except Exception as exc:
                problems.append(f"stopping {stack.namespace}: {exc}")
        for database in self.databases:
            try:
                with psycopg.connect(libpq_url(self.postgres_url), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            except psycopg.Error as exc:
                problems.append(f"dropping database {database}: {exc}")
        try:
            client = self.redis()
            keys = list(client.scan_iter(f"{self.prefix}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        except redis.RedisError as exc:
            problems.append(f"deleting Redis keys {self.prefix}*: {exc}")
        return problems


def interrupt_on_sigterm() -> None:
    """Make SIGTERM behave like Ctrl-C, so that clean-up runs either way."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def python_module(module: str) -> list[str]:
    """argv running `python -m module` with this interpreter."""
    return [sys.executable, "-m", module]
