"""An OpenAI-compatible images endpoint as a renderer (IMAGE_API_URL, IMAGE_API_KEY,
IMAGE_MODEL): `POST {IMAGE_API_URL}/images/generations`, the answer fitted to the exact size.

The request asks for `n: 1` in the size closest to the one wanted that the model can make
(OpenAI's models take only a few sizes; any other model is asked for the exact `WxH`), with the
prompt, the style and the brand's colours in words. The answer's `b64_json` (or its `url`,
fetched) is scaled to cover the size wanted and cropped about its centre, then written as PNG.

Failures, as the job sees them:

PlatformError
├── TransientError   timeout, network failure, 429 (with `retry_after`) or 5xx: tried again
└── PermanentError   any other 4xx, with the provider's own words (never the key), or an
                     answer that holds no readable image: the job fails
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Mapping
from typing import Any

import httpx
from PIL import Image, ImageOps, UnidentifiedImageError

from herald_common.errors import PermanentError, TransientError
from herald_common.images.cards import png_bytes
from herald_common.images.palette import RGB
from herald_common.images.spec import ImageSpec
from herald_common.logs import redact
from herald_common.platforms.http import (
    MAX_MEDIA_BYTES,
    PublicOnlyTransport,
    retry_after_seconds,
    shown_url,
)
from herald_common.settings import Settings

#: The largest answer read (a 4096² PNG is well under this).
MAX_IMAGE_BYTES = min(MAX_MEDIA_BYTES, 64 * 1024 * 1024)
#: Sizes OpenAI's models make, by model name prefix; other models get the exact size.
MODEL_SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "gpt-image": ((1024, 1024), (1536, 1024), (1024, 1536)),
    "dall-e-3": ((1024, 1024), (1792, 1024), (1024, 1792)),
    "dall-e-2": ((1024, 1024),),
}
STYLE_WORDS = {
    "realistic": "a photorealistic image, natural light, shallow depth of field",
    "cartoon": "a cartoon illustration with bold outlines and flat colours",
    "abstract": "an abstract composition of overlapping shapes and colour fields",
    "minimalist": "a minimalist image with generous empty space and one focal element",
}


def request_size(model: str, width: int, height: int) -> str:
    """The `size` to ask `model` for: its size closest in shape to width × height."""
    for prefix, sizes in MODEL_SIZES.items():
        if model.startswith(prefix):
            wanted = math.log(width / height)
            best = min(sizes, key=lambda s: abs(math.log(s[0] / s[1]) - wanted))
            return f"{best[0]}x{best[1]}"
    return f"{width}x{height}"


def describe(spec: ImageSpec) -> str:
    """The prompt sent: the user's, then the style, the brand's colours and the shape."""
    shape = (
        "square"
        if spec.width == spec.height
        else "landscape"
        if spec.width > spec.height
        else "portrait"
    )
    return (
        f"{spec.prompt.strip()}\n\n"
        f"Make it {STYLE_WORDS[spec.style]}. Use the brand's colours: {spec.palette.describe()}. "
        f"It is a {shape} social-media image of {spec.width}x{spec.height} pixels."
    )


class ImageApi:
    """Renders through an OpenAI-compatible images endpoint."""

    name = "api"

    def __init__(
        self, settings: Settings, client: httpx.Client, files: httpx.Client | None = None
    ) -> None:
        if not settings.image_api_url:
            raise ValueError("IMAGE_API_URL is not set")
        self._url = settings.image_api_url.rstrip("/")
        self._key = settings.image_api_key
        self._model = settings.image_model
        self._timeout = settings.image_api_timeout_seconds
        self._client = client
        # An answer's `url` on another host is fetched as media is: public addresses only.
        self._files = files or client
        self._api_host = httpx.URL(self._url).host

    @staticmethod
    def clients(settings: Settings) -> tuple[httpx.Client, httpx.Client]:
        """The clients a worker process uses: the endpoint's, and one for answers' URLs."""
        timeout = httpx.Timeout(settings.image_api_timeout_seconds, connect=10.0)
        files = httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            transport=PublicOnlyTransport(allow_private=settings.platform_allow_private_addresses),
        )
        return httpx.Client(timeout=timeout), files

    def render(self, spec: ImageSpec) -> bytes:
        """The PNG of the provider's image for `spec`, exactly spec.width × spec.height."""
        body: dict[str, Any] = {
            "model": self._model,
            "prompt": describe(spec),
            "size": request_size(self._model, spec.width, spec.height),
            "n": 1,
        }
        if not self._model.startswith("gpt-image"):
            # OpenAI's gpt-image models always answer in base64 and refuse the parameter.
            body["response_format"] = "b64_json"
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        where = "the image API"
        try:
            response = self._client.post(
                f"{self._url}/images/generations", json=body, headers=headers, timeout=self._timeout
            )
        except httpx.TransportError as exc:
            raise TransientError(f"{where}: {_transport(exc)}") from exc
        self._raise_for(where, response)
        raw = self._image_bytes(response)
        return png_bytes(fit(raw, spec.width, spec.height, spec.palette.background))

    def _image_bytes(self, response: httpx.Response) -> bytes:
        try:
            item = response.json()["data"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise PermanentError("the image API answered without an image") from None
        if not isinstance(item, Mapping):
            raise PermanentError("the image API answered without an image")
        if isinstance(item.get("b64_json"), str):
            try:
                return base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError):
                raise PermanentError("the image API's b64_json is not base64") from None
        if isinstance(item.get("url"), str):
            return self._fetch(item["url"])
        raise PermanentError("the image API answered with neither b64_json nor url")

    def _fetch(self, url: str) -> bytes:
        where = f"the image API's file {shown_url(url)}"
        client = self._client if httpx.URL(url).host == self._api_host else self._files
        try:
            with client.stream("GET", url, timeout=self._timeout) as response:
                if response.status_code != 200:
                    response.read()
                    self._raise_for(where, response)
                chunks, total = [], 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > MAX_IMAGE_BYTES:
                        raise PermanentError(f"{where} is over {MAX_IMAGE_BYTES:,} bytes")
                    chunks.append(chunk)
        except httpx.TransportError as exc:
            raise TransientError(f"{where}: {_transport(exc)}") from exc
        return b"".join(chunks)

    def _raise_for(self, where: str, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        message = f"{where} answered HTTP {status}: {self._words(response)}"
        if status == 429 or status >= 500 or status in (408, 425):
            raise TransientError(
                message, http_status=status, retry_after=retry_after_seconds(response.headers)
            )
        raise PermanentError(message, http_status=status)

    def _words(self, response: httpx.Response) -> str:
        """The provider's own message (OpenAI's `error.message`), with no secret in it."""
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
        else:
            text = response.text.strip() or response.reason_phrase or "no message"
        if self._key:
            text = text.replace(self._key, "[redacted]")
        return redact(text)[:500]


def fit(raw: bytes, width: int, height: int, background: RGB) -> Image.Image:
    """The image in `raw` scaled to cover width × height and cropped about its centre, any
    transparency laid over `background`."""
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            opened.load()
            source = opened.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PermanentError(f"the image API's image cannot be read ({exc})") from None
    flat = Image.alpha_composite(Image.new("RGBA", source.size, (*background, 255)), source)
    return ImageOps.fit(flat.convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def _transport(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"the request timed out ({type(exc).__name__})"
    return f"it could not be reached ({type(exc).__name__})"
