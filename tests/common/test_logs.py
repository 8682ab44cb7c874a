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


def _line(fmt: str, emit) -> str:
    """What Herald's handler in `fmt` writes for the records `emit` logs."""
    import io

    from herald_common.logs import stream_handler
    from herald_common.settings import Settings

    handler = stream_handler(Settings(log_format=fmt))
    handler.stream = io.StringIO()
    logger = logging.getLogger(f"herald.test.format.{fmt}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return handler.stream.getvalue()


def test_json_lines_carry_the_request_id_and_mask_secrets() -> None:
    import json

    from herald_common.logs import REQUEST_ID

    # Given a request's id in context, and a failure quoting a token
    def emit(logger: logging.Logger) -> None:
        token = REQUEST_ID.set("req-42")
        try:
            raise RuntimeError("refused access_token=EAAB123xyz")
        except RuntimeError:
            logger.exception("publish failed for %s", "target-1")
        finally:
            REQUEST_ID.reset(token)
        logger.warning("outside any request")

    # When written as JSON lines
    first, second = (json.loads(line) for line in _line("json", emit).splitlines())

    # I expect one object per record, with the request id where there is one, secrets masked
    assert first["message"] == "publish failed for target-1"
    assert (first["level"], first["logger"]) == ("ERROR", "herald.test.format.json")
    assert first["request_id"] == "req-42"
    assert "EAAB123xyz" not in first["exc_info"] and "[redacted]" in first["exc_info"]
    assert {"time", "process"} <= set(first)
    assert "request_id" not in second


def test_text_lines_are_for_people() -> None:
    from herald_common.logs import REQUEST_ID

    def emit(logger: logging.Logger) -> None:
        token = REQUEST_ID.set("req-7")
        logger.info("hello %s", "there")
        REQUEST_ID.reset(token)

    line = _line("text", emit)
    assert "INFO" in line
    assert line.rstrip().endswith("herald.test.format.text: hello there [request req-7]")
