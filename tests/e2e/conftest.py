"""End-to-end fixtures: one real multi-process stack per module on PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from herald_embedded.stack import Stack

WEBHOOK_SECRET = "e2e-webhook-secret"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.redis)


@contextmanager
def e2e_stack(
    pg_url: str, redis_url: str, logdir: Path, env_overrides: dict[str, str] | None = None
) -> Iterator[Stack]:
    """A stack in a Redis namespace of its own; its logs printed when it fails to start (or a
    test fails inside), its processes stopped and its keys deleted afterwards. The caller
    starts what it needs."""
    import redis

    namespace = f"herald-e2e-{uuid.uuid4().hex[:8]}"
    stack = Stack(
        database_url=pg_url,
        redis_url=redis_url,
        namespace=namespace,
        logdir=logdir,
        env_overrides=dict(env_overrides or {}),
    )
    try:
        yield stack
    except BaseException:
        for name in list(stack.procs):
            print(f"----- {name} log -----\n{stack.log(name)}")
        raise
    finally:
        stack.stop_all()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def stack(
    pg_url: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """gunicorn + the publisher and token-refresher + scheduler, each its own process (the
    modules of the other worker services start those too)."""
    logdir = tmp_path_factory.mktemp("stack-logs")
    # Outcome webhooks go to a receiver on loopback, signed with the operator's secret.
    env = {
        "PUBLISH_BACKOFF_SECONDS": "1",
        "PLATFORM_ALLOW_PRIVATE_ADDRESSES": "true",
        "APPROVAL_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    with e2e_stack(pg_url, redis_server_url, logdir, env) as stack:
        yield stack.start(services=())


@pytest.fixture(autouse=True)
def _dump_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    stack = request.node.funcargs.get("stack") if hasattr(request.node, "funcargs") else None
    if report is not None and report.failed and isinstance(stack, Stack):
        for name in list(stack.procs):
            print(f"----- {name} log -----\n{stack.log(name)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
