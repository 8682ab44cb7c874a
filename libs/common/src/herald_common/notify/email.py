"""Email over SMTP (smtplib): a multipart message, plain text with an HTML alternative.

SMTP_SECURITY picks the connection: `ssl` (implicit TLS, usually port 465), `starttls` (plain,
then upgraded, usually 587) or `none` (a relay on a trusted network, or a test server). Herald
logs in when SMTP_USERNAME is set.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from herald_common.errors import PermanentError, TransientError
from herald_common.settings import Settings


@dataclass(frozen=True)
class Email:
    """One message to one address. `message_id` is stable for a notice, so a copy sent twice
    (a worker that stopped mid-send) is recognisable as the same message."""

    to: str
    subject: str
    text: str
    html: str
    message_id: str


class EmailSender:
    """Sends Emails through the SMTP server the settings name."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, email: Email) -> str:
        """Send `email`; its Message-ID. TransientError or PermanentError when it does not go."""
        settings = self._settings
        if not settings.smtp_host:
            raise PermanentError("email is not configured: set SMTP_HOST (and SMTP_PORT, …)")
        message = self.message(email)
        try:
            with self._connect() as smtp:
                if settings.smtp_username:
                    smtp.login(settings.smtp_username, settings.smtp_password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b""))
            raise _reply_error(f"the server refused {email.to}", code, reply) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(
                f"email: the SMTP server refused Herald's login ({exc.smtp_code}); "
                "check SMTP_USERNAME and SMTP_PASSWORD"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise PermanentError(
                "email: the SMTP server does not offer what SMTP_SECURITY asks (STARTTLS or "
                "AUTH); check SMTP_SECURITY and SMTP_PORT"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(
                "the SMTP server refused the message", exc.smtp_code, exc.smtp_error
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(
                f"email: the SMTP server's certificate is not trusted ({exc.verify_message})"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(
                f"email: the SMTP server {settings.smtp_host}:{settings.smtp_port} could not be "
                f"reached or dropped the connection ({type(exc).__name__})"
            ) from None
        return str(message["Message-ID"])

    def message(self, email: Email) -> EmailMessage:
        """The MIME message for `email`: multipart/alternative, text then HTML."""
        message = EmailMessage()
        message["From"] = self._settings.smtp_from
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = email.message_id
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        return message

    def _connect(self) -> smtplib.SMTP:
        settings = self._settings
        host, port, timeout = (
            settings.smtp_host or "",
            settings.smtp_port,
            settings.smtp_timeout_seconds,
        )
        if settings.smtp_security == "ssl":
            return smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(host, port, timeout=timeout)
        try:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
        except BaseException:
            smtp.close()
            raise
        return smtp


def _reply_error(what: str, code: int, reply: bytes | str) -> TransientError | PermanentError:
    """An SMTP reply as an error: 4xx says "try again later", anything else "never"."""
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    message = f"email: {what}: {code} {text}".strip()
    if 400 <= code < 500:
        return TransientError(message)
    return PermanentError(message)
