"""`make run` and `make stack` stop within seconds on SIGTERM, however many times it comes.

A process group stopped by a terminal or a supervisor gets the signal in every process, and
`uv run` (what `make` runs) forwards it once more: each test sends it twice to the group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from herald_common.db import normalize_url
from herald_embedded.stack import BIN, free_port, wait_for


@contextmanager
def started(argv: list[str], env: dict[str, str], out: Path, cwd: Path | None = None):  # type: ignore[no-untyped-def]
    """The process, in a session of its own, its output in `out`; killed if still running."""
    with out.open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def term_twice(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM to the process's group, twice; the seconds it took to exit."""
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    return time.monotonic() - started


def test_make_run_stops_within_seconds_on_sigterm(tmp_path: Path) -> None:
    # Given `make run`'s process, up and serving, in a fresh directory
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_"))}
    env.update({"API_PORT": str(port), "HERALD_ENV": "development", "PYTHONUNBUFFERED": "1"})
    out = tmp_path / "out.log"
    with started([str(BIN / "herald-embedded")], env, out, cwd=tmp_path) as proc:

        def up() -> bool:
            assert proc.poll() is None, out.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, interval=0.2, what="herald-embedded to serve")

        # When its process group gets SIGTERM, twice
        took = term_twice(proc)

    # Then it stopped cleanly within a few seconds, and its start printed no warning
    printed = out.read_text()
    print(f"herald-embedded stopped {took:.2f} s after SIGTERM")
    assert proc.returncode == 0, printed
    assert took < 5, printed
    assert "WARNING" not in printed, printed
    assert "stopped" in printed


def test_make_stack_creates_its_database_and_stops_gracefully(
    pg_url: str, redis_server_url: str, tmp_path: Path
) -> None:
    # Given a database that does not exist yet, and a Redis namespace of its own
    name = f"herald_stack_{uuid.uuid4().hex[:8]}"
    server = make_url(normalize_url(pg_url))
    database_url = server.set(database=name).render_as_string(hide_password=False)
    namespace = f"herald-stop-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server_url,
            "HERALD_BROKER_NAMESPACE": namespace,
            "API_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    out = tmp_path / "out.log"
    keys = redis.Redis.from_url(redis_server_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        # When `make stack` starts
        with started([str(BIN / "herald-stack")], env, out) as proc:

            def api_key() -> str | None:
                assert proc.poll() is None, out.read_text()
                lines = out.read_text().splitlines()
                keys = (x.split()[2] for x in lines if x.startswith("API key: "))
                return next(keys, None)

            key = wait_for(api_key, timeout=120, interval=0.2, what="herald-stack to start")
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )
            # and a post is being published when it is told to stop (the platform takes 2 s)
            account = client.post(
                "/v1/accounts",
                json={"platform": "sandbox", "handle": "slow", "settings": {"latency_ms": 2000}},
            ).json()
            post = client.post(
                "/v1/posts",
                json={"content": "in flight", "account_ids": [account["id"]], "publish_now": True},
            ).json()

            def publishing() -> bool:
                got = client.get(f"/v1/posts/{post['id']}").json()
                return got["targets"][0]["status"] == "publishing"

            wait_for(publishing, timeout=30, interval=0.05, what="the post to be publishing")
            took = term_twice(proc)

        # Then it made its database, and stopped within seconds after the publish finished
        printed = out.read_text()
        print(f"herald-stack stopped {took:.2f} s after SIGTERM")
        assert f"created the database {name}" in printed
        assert proc.returncode == 0, printed
        assert took < 15, printed
        engine = create_engine(normalize_url(database_url))
        with engine.connect() as connection:
            status = connection.execute(
                text("SELECT status FROM targets WHERE post_id = :id"), {"id": post["id"]}
            ).scalar_one()
        engine.dispose()
        assert status == "published"
        # and no worker was killed mid-job, and none is left beating
        logdir = Path(printed.split("logs: ", 1)[1].splitlines()[0])
        for log_file in logdir.glob("*.log"):
            assert "Killing" not in log_file.read_text(), log_file.name
        beats = list(keys.scan_iter(f"{namespace}:herald.heartbeats:*"))
        assert [k for k in beats if keys.zcard(k)] == []
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        stale = list(keys.scan_iter(f"{namespace}*"))
        if stale:
            keys.delete(*stale)
        keys.close()


PARENT = """
import subprocess, sys, time
from herald_embedded.stack import die_with_parent
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"],
    start_new_session=True,
    preexec_fn=die_with_parent(),
)
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_stack_killed_outright_takes_its_services_with_it() -> None:
    # Given a process that started a child in a session of its own, as the stack does
    parent = subprocess.Popen(
        [str(BIN / "python"), "-c", PARENT], stdout=subprocess.PIPE, start_new_session=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        # When the parent is killed with SIGKILL (it runs no cleanup)
        parent.kill()
        parent.wait(timeout=10)

        # Then the child gets SIGTERM and goes too
        def gone() -> bool:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return True
            # (a zombie until reaped by init: gone as far as running goes)
            return Path(f"/proc/{child}/stat").read_text().split(") ")[1].startswith("Z")

        wait_for(gone, timeout=20, interval=0.1, what="the orphaned child to exit")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
