"""End-to-end fixtures: one real multi-process stack per module on PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from herald_embedded.stack import Stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.redis)


@pytest.fixture(scope="module")
def stack(
    pg_url: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """gunicorn + dramatiq publisher + scheduler, each its own process."""
    import uuid

    import redis

    namespace = f"herald-e2e-{uuid.uuid4().hex[:8]}"
    stack = Stack(
        database_url=pg_url,
        redis_url=redis_server_url,
        namespace=namespace,
        logdir=tmp_path_factory.mktemp("stack-logs"),
        env_overrides={"PUBLISH_BACKOFF_SECONDS": "1"},
    )
    try:
        yield stack.start()
    except BaseException:
        for name in list(stack.procs):
            print(f"----- {name} log -----\n{stack.log(name)}")
        raise
    finally:
        stack.stop_all()
        client = redis.Redis.from_url(redis_server_url)
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def _dump_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    stack = request.node.funcargs.get("stack") if hasattr(request.node, "funcargs") else None
    if report is not None and report.failed and isinstance(stack, Stack):
        for name in ("api", "publisher", "token-refresher", "scheduler"):
            print(f"----- {name} log -----\n{stack.log(name)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
