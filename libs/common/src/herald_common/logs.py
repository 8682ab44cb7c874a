"""One log format for every Herald process, with secrets masked on the way out.

Adapters never put tokens in messages, but libraries log what they send (httpx logs each
request's URL, and some platforms take `access_token` as a query parameter), and an exception's
text can quote a request. So every record passes a filter that masks what looks like a secret:
`access_token=…`-style parameters, `Authorization`-style credentials, JWTs, and the statement
of a database error.
"""

from __future__ import annotations

import logging
import re

from herald_common.settings import Settings

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


def configure_logging(settings: Settings) -> None:
    """Herald's format and level on the root logger; every handler masks secrets."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
    # Request lines of the platform client: URLs only, at DEBUG and above only when asked.
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)
