"""gunicorn's settings: one worker process per CPU the API may run on, unless told otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _workers(tmp_path: Path, *, cpus: set[int] | None = None, **env: str) -> int:
    """gunicorn_conf's `workers`, read in a new process (the module sets its metrics directory
    on import), first pinned to `cpus` when given."""
    pin = f"import os; os.sched_setaffinity(0, {cpus!r}); " if cpus else ""
    environment = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    environment |= {"METRICS_DIR": str(tmp_path / "metrics"), **env}
    out = subprocess.run(
        [sys.executable, "-c", pin + "import herald_api.gunicorn_conf as c; print(c.workers)"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip())


def test_one_worker_per_cpu_the_process_may_use(tmp_path: Path) -> None:
    # Given the CPUs this test may run on
    mine = os.sched_getaffinity(0)

    # When gunicorn's settings are read with no WEB_CONCURRENCY, on all of them and on one
    everywhere = _workers(tmp_path)
    pinned = _workers(tmp_path, cpus={min(mine)})

    # I expect one worker per CPU allowed
    assert everywhere == len(mine)
    assert pinned == 1


@pytest.mark.parametrize("value", ["3", "1"])
def test_web_concurrency_still_decides(tmp_path: Path, value: str) -> None:
    assert _workers(tmp_path, WEB_CONCURRENCY=value) == int(value)
