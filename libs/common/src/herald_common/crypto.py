"""Account credentials encrypted at rest, with keys that can be rotated.

Keys come from HERALD_SECRET_KEYS: a comma-separated list of Fernet keys (32 url-safe base64
bytes each; make one with `herald-admin generate-key`). The first key encrypts; every key in
the list decrypts. To rotate: put a new key first, keep the old ones after it, run
`herald-admin rotate-credentials` (re-encrypts every stored credential with the first key),
then drop the old keys.

Fernet is AES-128-CBC with HMAC-SHA256 (encrypt-then-MAC) and a timestamp; a tampered or
foreign token fails to decrypt instead of yielding garbage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from herald_common.errors import HeraldError


class CredentialsUnavailable(HeraldError):
    """Raised when credentials must be encrypted or decrypted and no key can do it."""

    code = "credentials_unavailable"


def generate_key() -> str:
    """A new random key for HERALD_SECRET_KEYS."""
    return Fernet.generate_key().decode()


class CredentialBox:
    """Encrypts credential mappings for storage and decrypts them for one call."""

    def __init__(self, keys: str | None) -> None:
        parsed = [k.strip() for k in (keys or "").split(",") if k.strip()]
        try:
            self._fernet = MultiFernet([Fernet(k) for k in parsed]) if parsed else None
        except (ValueError, TypeError):
            # The message never includes the key material.
            raise ValueError(
                "HERALD_SECRET_KEYS must be comma-separated Fernet keys "
                "(herald-admin generate-key makes one)"
            ) from None

    @property
    def available(self) -> bool:
        """Whether a key is configured."""
        return self._fernet is not None

    def seal(self, credentials: Mapping[str, Any]) -> str:
        """The credentials as one encrypted token."""
        fernet = self._require()
        return fernet.encrypt(json.dumps(dict(credentials), sort_keys=True).encode()).decode()

    def open(self, token: str | None) -> dict[str, Any]:
        """The credentials a token holds ({} for none)."""
        if not token:
            return {}
        fernet = self._require()
        try:
            return json.loads(fernet.decrypt(token.encode()))
        except InvalidToken:
            raise CredentialsUnavailable(
                "stored credentials cannot be decrypted with any key in HERALD_SECRET_KEYS"
            ) from None

    def rotate(self, token: str) -> str:
        """The same credentials, encrypted with the first key."""
        fernet = self._require()
        try:
            return fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise CredentialsUnavailable(
                "stored credentials cannot be decrypted with any key in HERALD_SECRET_KEYS"
            ) from None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise CredentialsUnavailable(
                "HERALD_SECRET_KEYS is not set, so credentials cannot be stored or read"
            )
        return self._fernet
