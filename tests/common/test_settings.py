"""Settings that follow one another: PUBLIC_URL follows where the API listens unless set."""

from __future__ import annotations

import pytest

from herald_common.settings import Settings


@pytest.mark.parametrize(
    ("env", "public_url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"API_PORT": "8080"}, "http://127.0.0.1:8080"),
        ({"API_HOST": "0.0.0.0", "API_PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"API_HOST": "herald.lan", "API_PORT": "8001"}, "http://herald.lan:8001"),
        ({"API_PORT": "8080", "PUBLIC_URL": "https://herald.example"}, "https://herald.example"),
    ],
)
def test_public_url_follows_the_api_port_unless_set(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], public_url: str
) -> None:
    for name in ("API_HOST", "API_PORT", "PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert Settings().public_url == public_url
