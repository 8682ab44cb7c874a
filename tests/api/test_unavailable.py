"""A store that cannot be reached is a 503 with Retry-After, not a 500 with a traceback."""

from __future__ import annotations

import logging
import socket

import pytest
from falcon.testing import TestClient

from herald_api.app import create_app
from herald_common.db import create_db_engine
from herald_common.platforms import PlatformRegistry


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def down_client(settings, broker):
    settings = settings.model_copy(
        update={"database_url": f"postgresql://postgres@127.0.0.1:{closed_port()}/herald"}
    )
    engine = create_db_engine(settings.database_url)
    platforms = PlatformRegistry(engine, settings)
    yield TestClient(create_app(settings, engine=engine, broker=broker, platforms=platforms))
    platforms.close()
    engine.dispose()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/posts", None),
        ("POST", "/v1/posts", {"content": "Hello", "account_ids": ["a-1"]}),
    ],
)
def test_a_database_that_cannot_be_reached_is_a_503_with_retry_after(
    down_client, tenant, caplog, method, path, body
):
    # Given a well-formed key (made on another database: this API's cannot be reached)
    caplog.set_level(logging.WARNING)
    response = down_client.simulate_request(method, path, json=body, headers=tenant.headers)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    error = response.json["error"]
    assert error["code"] == "unavailable"
    assert error["message"].startswith("the database is unavailable")
    assert "Traceback" not in response.text and "psycopg" not in response.text
    [line] = [r for r in caplog.records if "is unavailable" in r.getMessage()]
    assert line.exc_info is None  # one line, no traceback per request during an outage
    assert "OperationalError" in line.getMessage()
