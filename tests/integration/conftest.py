"""Integration tests run against the machine's PostgreSQL and Redis: mark them all."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.redis)
