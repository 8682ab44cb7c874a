"""A fake OpenAI-compatible images endpoint: `POST /v1/images/generations` answers with a PNG
(base64 in `b64_json`, or a `url` it serves), and OpenAI's error shape for refusals."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image, ImageDraw

from tests.platforms.servers import FakeServer, Recorded, Reply

KEY = "sk-test-7f3a9c2e1b"


def picture(
    size: tuple[int, int], centre: tuple[int, int, int], edge: tuple[int, int, int]
) -> bytes:
    """A PNG of `size`: `edge` colour in the outer fifths of the long sides, `centre` between."""
    image = Image.new("RGB", size, centre)
    width, height = size
    draw = ImageDraw.Draw(image)
    if width >= height:
        draw.rectangle((0, 0, width // 5 - 1, height), fill=edge)
        draw.rectangle((width - width // 5, 0, width, height), fill=edge)
    else:
        draw.rectangle((0, 0, width, height // 5 - 1), fill=edge)
        draw.rectangle((0, height - height // 5, width, height), fill=edge)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


class FakeImages(FakeServer):
    """Answers generations with a picture of `size` (`answer`: "b64_json" or "url")."""

    def __init__(
        self,
        *,
        size: tuple[int, int] = (1024, 1024),
        answer: str = "b64_json",
        centre: tuple[int, int, int] = (200, 40, 40),
        edge: tuple[int, int, int] = (20, 160, 60),
    ) -> None:
        super().__init__()
        self.size = size
        self.answer = answer
        self.png = picture(size, centre, edge)

    def respond(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path == "/files/generated.png":
            return Reply(200, self.png, {"Content-Type": "image/png"})
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return Reply(401, _error(f"Incorrect API key provided: {KEY[:5]}***"))
        if request.method == "POST" and request.path == "/v1/images/generations":
            body = request.json()
            if body.get("n") != 1 or not body.get("prompt"):
                return Reply(400, _error("n must be 1 and prompt is required"))
            if self.answer == "url":
                return Reply(
                    200, {"created": 1, "data": [{"url": f"{self.url}/files/generated.png"}]}
                )
            encoded = base64.b64encode(self.png).decode()
            return Reply(200, {"created": 1, "data": [{"b64_json": encoded}]})
        return Reply(404, _error("not found"))


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}
