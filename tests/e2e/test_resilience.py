"""What must hold whatever breaks: Redis stopped, two schedulers, the embedded `make run`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from herald_embedded.stack import BIN, Stack, free_port, wait_for
from tests.e2e.helpers import post_json
from tests.e2e.test_publish_flow import account, iso, sandbox_posts, settled


class RedisServer:
    """A redis-server of this test's own, on its own port, so it can be stopped."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        def up() -> bool:
            try:
                return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
            except redis.RedisError:
                return False

        wait_for(up, timeout=10, what="redis-server to start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_with_redis_stopped_a_schedule_is_accepted_and_published_once_redis_is_back(
    pg_url: str, own_redis: RedisServer, tmp_path: Path
):
    # Given the stack running on a Redis of its own
    stack = Stack(
        database_url=pg_url,
        redis_url=own_redis.url,
        namespace=f"herald-e2e-{uuid.uuid4().hex[:8]}",
        logdir=tmp_path / "logs",
    )
    try:
        stack.start(services=())
        with stack.client() as client:
            account_id = account(client, "redis-down")

            # When Redis stops and a post is scheduled 1 s ahead
            own_redis.stop()
            at = datetime.now(UTC) + timedelta(seconds=1)
            response = client.post(
                "/v1/posts",
                json={"content": "Survives", "account_ids": [account_id], "scheduled_at": iso(at)},
            )

            # I expect it accepted, and not lost while Redis is away
            assert response.status_code == 201, response.text
            post_id = response.json()["id"]
            time.sleep(3)
            assert client.get(f"/v1/posts/{post_id}").json()["status"] == "scheduled"

            # And when Redis is back (empty: it kept nothing), it is published, once
            own_redis.start()
            wait_for(settled(client, post_id, "published"), timeout=45, what="published")
            assert len(sandbox_posts(client, account_id)) == 1
    except BaseException:
        for name in ("api", "publisher", "scheduler"):
            print(f"----- {name} log -----\n{stack.log(name)}")
        raise
    finally:
        stack.stop_all()


def test_two_scheduler_processes_publish_every_post_once(stack: Stack):
    # Given a second scheduler process beside the first
    stack.start_scheduler("scheduler-2")
    try:
        with stack.client() as client:
            accounts = [account(client, f"twice-{i}") for i in range(3)]

            # When 20 posts to 3 accounts fall due at the same second
            at = datetime.now(UTC) + timedelta(seconds=2)
            post_ids = [
                post_json(
                    client,
                    "/v1/posts",
                    {"content": f"Post {n}", "account_ids": accounts, "scheduled_at": iso(at)},
                )["id"]
                for n in range(20)
            ]

            # I expect all 60 targets published, each exactly once
            for post_id in post_ids:
                wait_for(settled(client, post_id, "published"), timeout=30, what=post_id)
            for account_id in accounts:
                contents = sorted(p["content"] for p in sandbox_posts(client, account_id))
                assert contents == sorted(f"Post {n}" for n in range(20))
    finally:
        stack.stop("scheduler-2")


@pytest.mark.usefixtures("redis_server_url")
def test_make_run_embedded_mode_publishes_a_post_scheduled_ahead(tmp_path: Path):
    # Given `herald-embedded` (what `make run` starts) on a fresh directory: SQLite, no Redis
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_URL"))}
    env.update({"API_PORT": str(port), "PYTHONUNBUFFERED": "1", "HERALD_ENV": "development"})
    log = tmp_path / "embedded.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "herald-embedded")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # When its banner is printed, with a key and a demo account
        banner = wait_for(
            lambda: "(sandbox @demo)" in log.read_text() and log.read_text(),
            timeout=30,
            what="banner",
        )
        key = re.search(r"API key\s+(\S+)", banner)
        account_id = re.search(r"account\s+(\S+)\s+\(sandbox @demo\)", banner)
        assert key and account_id, banner
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key[1]}"}, timeout=10
        ) as client:
            # And a post is scheduled 2 s ahead
            at = datetime.now(UTC) + timedelta(seconds=2)
            created = post_json(
                client,
                "/v1/posts",
                {"content": "Hello from Herald", "account_ids": [account_id[1]],
                 "scheduled_at": iso(at)},
            )  # fmt: skip

            # I expect it published on its second, kept by the sandbox
            post = wait_for(
                settled(client, created["id"], "published"), timeout=15, what="published"
            )
            published_at = datetime.fromisoformat(post["targets"][0]["published_at"])
            assert 0 <= (published_at - at).total_seconds() < 1.0
            assert [p["content"] for p in sandbox_posts(client, account_id[1])] == [
                "Hello from Herald"
            ]
        assert (tmp_path / "var" / "herald.db").exists()
        # and the banner's console takes the banner's key
        assert f"Console  {base}/admin" in banner
        with httpx.Client(base_url=base, timeout=10) as browser:
            form = browser.get("/admin/sign-in")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert form.status_code == 200 and token, form.text
            signed = browser.post(
                "/admin/sign-in", data={"api_key": key[1], "csrf_token": token[1]}
            )
            assert signed.status_code == 303, signed.text
            assert browser.get("/admin/overview").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            print(log.read_text(), file=sys.stderr)
            raise
    assert proc.returncode == 0, log.read_text()
