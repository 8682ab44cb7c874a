"""run_worker: the `dramatiq` command a worker service becomes."""

from __future__ import annotations

import sys

import pytest

from herald_common import workers
from herald_common.settings import get_settings


@pytest.fixture
def execv(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The argv of every exec, instead of exec'ing."""
    calls: list[list[str]] = []
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("METRICS_PORT", "0")
    monkeypatch.setattr(workers.os, "execv", lambda path, args: calls.append(list(args)))
    monkeypatch.delenv("HERALD_WORKER_POOL", raising=False)
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def test_the_content_worker_waits_for_a_month_being_written(execv: list[list[str]]) -> None:
    # When the content service starts
    workers.run_worker("herald_content.worker", ["content", "content-regen"], argv=[])

    # I expect Dramatiq's command line run by this interpreter (not found on PATH), in
    # Herald's log format (herald_common.launch), on threads, told to wait on SIGTERM for the
    # longest time limit (30 min) and a margin
    [args] = execv
    assert args[:3] == [sys.executable, "-m", "herald_common.launch"]
    assert workers.os.environ["HERALD_WORKER_POOL"] == "threads"
    timeout = args[args.index("--worker-shutdown-timeout") + 1]
    assert int(timeout) == 30 * 60_000 + workers.SHUTDOWN_MARGIN_MS
    assert args[args.index("--queues") + 1 : args.index("--threads")] == [
        "content",
        "content-regen",
    ]
