"""Small HTTP helpers for the end-to-end tests."""

from __future__ import annotations

from typing import Any

import httpx


def post_json(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST and return the JSON body, failing with the server's words on an error."""
    response = client.post(path, json=body)
    assert response.status_code < 300, response.text
    return dict(response.json())
