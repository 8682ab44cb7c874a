"""Secrets are masked in every log line, whatever logged them."""

from __future__ import annotations

import logging

import pytest

from herald_common.logs import RedactSecrets, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjOmFsaWNlIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET https://graph.facebook.com/v23.0/me?fields=id&access_token=EAAB123xyz", "EAAB123xyz"),
        ('{"refresh_token": "r-77aa", "scope": "x"}', "r-77aa"),
        ("Authorization: Bearer good-token-123456", "good-token-123456"),
        (f"session {JWT} stored", JWT),
        ("client_secret=s3cr3t&grant_type=refresh_token", "s3cr3t"),
        ("POST /callback?code=abc123&state=xyz", "abc123"),
    ],
)
def test_secrets_are_masked(line, secret):
    masked = redact(line)
    assert secret not in masked
    assert "[redacted]" in masked


def test_ordinary_text_is_left_alone():
    line = "publish: target 3f2a → published (HTTP 200) in 120 ms"
    assert redact(line) == line


def test_the_filter_masks_arguments_and_tracebacks(caplog):
    # Given a logger whose handler has the filter
    logger = logging.getLogger("herald.test.redact")
    caplog.handler.addFilter(RedactSecrets())

    # When a message with a token argument and an exception quoting one are logged
    logger.warning("calling with %s", "access_token=tok-999")
    try:
        raise RuntimeError("refused: Bearer tok-abcdefgh")
    except RuntimeError:
        logger.exception("adapter raised")

    # Then neither token reaches the output
    assert "tok-999" not in caplog.text
    assert "tok-abcdefgh" not in caplog.text
    assert "access_token=[redacted]" in caplog.text
    assert "Bearer [redacted]" in caplog.text
