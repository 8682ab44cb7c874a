"""One log format for every Herald process, with secrets masked on the way out.

LOG_FORMAT=json (the default: production, compose, `make stack`) writes one JSON object per
line (python-json-logger): `time`, `level`, `logger`, `process`, `message`, the request id
when there is one, and `exc_info` for a traceback; `text` (what `make run` uses) writes lines
for people. Every process — gunicorn's arbiter and workers (gunicorn_conf), the scheduler,
the Dramatiq workers — installs the same handler on the root logger.

A request id is born at the API (or taken from X-Request-ID), travels in the options of every
message the request sends (`request_id`), and is set again around each message a worker runs
(herald_common.ledger's RequestIds): REQUEST_ID holds it for whatever logs meanwhile.

Adapters never put tokens in messages, but libraries log what they send (httpx logs each
request's URL, and some platforms take `access_token` as a query parameter), and an exception's
text can quote a request. So every record passes a filter that masks what looks like a secret:
`access_token=…`-style parameters, `Authorization`-style credentials, JWTs, and the statement
of a database error.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from herald_common.settings import Settings, get_settings

#: The id of the API request whose work this is, if any (see the module's docstring).
REQUEST_ID: ContextVar[str | None] = ContextVar("herald_request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"

_PARAM = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|client_secret|app_password|password|"
    r"code_verifier|fb_exchange_token|code|accessJwt|refreshJwt)"
    r"""(["']?\s*[:=]\s*["']?)([^&\s"',;}]+)"""
)
_SCHEME = re.compile(r"(?i)\b(bearer|oauth|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
MASK = "[redacted]"
#: The statement SQLAlchemy quotes in a failed statement's error: its text says which columns
#: and tables a tenant's request touched, and is no help to the reader of a job's error. (Its
#: values are never there: engines hide them.)
_SQL = re.compile(r"\[SQL: .*?\](?=\n\[|\n\(Background|\s*$)", re.DOTALL)


def redact(text: str) -> str:
    """The text with anything that looks like a secret replaced by [redacted]."""
    text = _SQL.sub("[SQL: not shown]", text)
    text = _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _JWT.sub(MASK, text)


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message and in its exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class WithRequestId(logging.Filter):
    """Puts the current request id (REQUEST_ID) on the record, when there is one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (request_id := REQUEST_ID.get()) is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


class JsonLines(JsonFormatter):
    """One JSON object per record, its traceback masked as the message is."""

    def __init__(self) -> None:
        super().__init__(
            ["asctime", "levelname", "process", "name", "message"],
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


class TextLines(logging.Formatter):
    """Lines for people: the text format, with the request id after the logger when set."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return line if request_id is None else f"{line} [request {request_id}]"


def stream_handler(
    settings: Settings | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """A handler writing to `stream` (stderr) in LOG_FORMAT, masking secrets and naming the
    request id (also gunicorn's logconfig_dict factory, hence the optional settings)."""
    settings = settings or get_settings()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines() if settings.log_format == "json" else TextLines())
    handler.addFilter(WithRequestId())
    handler.addFilter(RedactSecrets())
    return handler


class Outage:
    """A failure that repeats every few seconds (Redis away, say), logged once when it starts
    and once when it ends, not at every try."""

    def __init__(self, logger: logging.Logger, what: str, *, traceback: bool = False) -> None:
        self._log = logger
        self._what = what
        self._traceback = traceback
        self.ongoing = False

    def failed(self, exc: BaseException) -> None:
        """The try failed with `exc`."""
        if not self.ongoing:
            if self._traceback:
                self._log.exception("%s", self._what)
            else:
                self._log.warning("%s: %s", self._what, type(exc).__name__)
        self.ongoing = True

    def succeeded(self) -> None:
        """The try worked."""
        if self.ongoing:
            self._log.info("%s: works again", self._what)
        self.ongoing = False


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """Herald's format (LOG_FORMAT) and level on the root logger, writing to `stream`
    (stderr), in place of any handler a library put there; every line masks secrets and names
    the request id."""
    logging.basicConfig(
        level=settings.log_level.upper(), handlers=[stream_handler(settings, stream)], force=True
    )
    # Request lines of the platform client: URLs only, at DEBUG and above only when asked.
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)


def gunicorn_logconfig(settings: Settings) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its error and access lines through Herald's handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": settings.log_level.upper(), "handlers": ["herald"]},
        "loggers": {
            name: {"level": "INFO", "handlers": [], "propagate": True}
            for name in ("gunicorn.error", "gunicorn.access")
        },
        "handlers": {"herald": {"()": "herald_common.logs.stream_handler"}},
        "formatters": {},
    }
