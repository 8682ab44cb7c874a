"""The public URL of an image: `{PUBLIC_URL}/media/images/{image id}.{signature}.png`.

Platforms fetch a post's media from its URL when the post goes out, often months after it was
scheduled, and without an API key; so the URL carries its own credential. The signature is
HMAC-SHA256 of the image id under a key derived from HERALD_SECRET_KEYS, and never expires:
the image's own deletion is what ends it.

Keys rotate as credentials do: the first key signs, every key in the list verifies, so URLs in
scheduled posts stay valid while their key is still listed (dropping a key breaks the URLs it
signed). Without HERALD_SECRET_KEYS, outside production (where settings refuse to start
without it), a fixed development key signs: every process of a stack then agrees, and nothing
it signs is secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from herald_common.settings import Settings

#: What the key is derived for, so that no other use of HERALD_SECRET_KEYS shares it.
_PURPOSE = b"herald/media-urls/v1"
_DEVELOPMENT_KEY = "herald-development-media-key (not secret)"
_EXTENSION = ".png"
_TOKEN = re.compile(r"^([A-Za-z0-9-]{1,64})\.([A-Za-z0-9_-]{43})$")
MEDIA_PATH = "/media/images/"


def _derive(key: str) -> bytes:
    return hmac.new(key.encode(), _PURPOSE, hashlib.sha256).digest()


class MediaSigner:
    """Signs image ids into public media tokens and checks them."""

    def __init__(self, keys: str | None) -> None:
        parsed = [k.strip() for k in (keys or "").split(",") if k.strip()]
        self._keys = [_derive(k) for k in parsed or [_DEVELOPMENT_KEY]]

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaSigner:
        """The signer of these settings' HERALD_SECRET_KEYS."""
        return cls(settings.secret_keys)

    @staticmethod
    def _signature(key: bytes, image_id: str) -> str:
        digest = hmac.new(key, image_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def token(self, image_id: str) -> str:
        """`{image_id}.{signature}.png`: the last part of the image's public URL."""
        return f"{image_id}.{self._signature(self._keys[0], image_id)}{_EXTENSION}"

    def verify(self, token: str) -> str | None:
        """The image id a token was signed for; None for anything this Herald did not sign."""
        match = _TOKEN.match(token.removesuffix(_EXTENSION))
        if match is None:
            return None
        image_id, signature = match.groups()
        valid = False
        for key in self._keys:  # every key, so the time taken says nothing about which matched
            valid |= hmac.compare_digest(self._signature(key, image_id), signature)
        return image_id if valid else None

    def url(self, public_url: str, image_id: str) -> str:
        """The image's public URL under `public_url` (PUBLIC_URL)."""
        return f"{public_url.rstrip('/')}{MEDIA_PATH}{self.token(image_id)}"
