"""Fixtures shared by the adapter tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """The httpx client an adapter is handed, with an explicit timeout as in production."""
    with httpx.Client(timeout=httpx.Timeout(5.0)) as http:
        yield http
