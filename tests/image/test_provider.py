"""The OpenAI-compatible images endpoint, against a local fake server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from herald_common.errors import PermanentError, TransientError
from herald_common.images.palette import Palette
from herald_common.images.provider import ImageApi, request_size
from herald_common.images.spec import ImageSpec
from tests.conftest import make_settings
from tests.image.fake_images import KEY, FakeImages
from tests.image.pictures import close, open_png
from tests.platforms.servers import running

PALETTE = Palette.from_brand({"background": "#f1faee", "primary": "#1d3557", "text": "#111111"})


@pytest.fixture
def server() -> Iterator[FakeImages]:
    with running(FakeImages(size=(1024, 1024))) as server:
        yield server  # type: ignore[misc]


def api_for(server: FakeImages, **overrides: object) -> tuple[ImageApi, httpx.Client]:
    values: dict[str, object] = {
        "image_api_url": f"{server.url}/v1",
        "image_api_key": KEY,
        "image_model": "herald-test-model",
        "image_api_timeout_seconds": 5,
    }
    settings = make_settings(**{**values, **overrides})
    client = httpx.Client()
    return ImageApi(settings, client), client


def spec(width: int = 1200, height: int = 627, style: str = "realistic") -> ImageSpec:
    return ImageSpec("A latte on a sunny terrace", style, width, height, PALETTE, seed="j")  # type: ignore[arg-type]


def test_an_image_of_another_size_is_fitted_to_the_exact_size(server: FakeImages) -> None:
    # Given a provider that answers 1024×1024
    api, client = api_for(server)

    # When a 1200×627 image is asked for
    with client:
        data = api.render(spec(1200, 627))

    # Then the PNG is exactly 1200×627
    image = open_png(data)
    assert image.size == (1200, 627)
    assert close(image.getpixel((600, 313)), (200, 40, 40), 2)
    # and the request was OpenAI's, with the key, the style and the brand's colours
    [call] = server.calls("/v1/images/generations", "POST")
    assert call.headers["authorization"] == f"Bearer {KEY}"
    body = call.json()
    assert body["model"] == "herald-test-model"
    assert body["size"] == "1200x627"
    assert body["n"] == 1
    assert body["response_format"] == "b64_json"
    assert body["prompt"].startswith("A latte on a sunny terrace")
    assert "photorealistic" in body["prompt"]
    assert "background #f1faee" in body["prompt"] and "primary #1d3557" in body["prompt"]


def test_a_wide_answer_is_cropped_about_its_centre_to_a_square() -> None:
    # Given a provider that answers 2048×1024, its outer quarters green
    with running(FakeImages(size=(2048, 1024))) as server:
        api, client = api_for(server)  # type: ignore[arg-type]

        # When a square is asked for
        with client:
            image = open_png(api.render(spec(512, 512)))

    # Then the middle was kept: no green at the edges
    assert image.size == (512, 512)
    for x in (0, 511):
        assert close(image.getpixel((x, 256)), (200, 40, 40), 8), image.getpixel((x, 256))


def test_an_answer_by_url_is_fetched() -> None:
    with running(FakeImages(size=(640, 480), answer="url")) as server:
        api, client = api_for(server)  # type: ignore[arg-type]
        with client:
            image = open_png(api.render(spec(300, 300)))

        assert image.size == (300, 300)
        assert len(server.calls("/files/generated.png", "GET")) == 1


@pytest.mark.parametrize(
    ("model", "width", "height", "size"),
    [
        ("gpt-image-1", 1200, 627, "1536x1024"),
        ("gpt-image-1", 1080, 1350, "1024x1536"),
        ("gpt-image-1", 1080, 1080, "1024x1024"),
        ("dall-e-3", 1080, 1920, "1024x1792"),
        ("dall-e-2", 1600, 900, "1024x1024"),
        ("flux-schnell", 1600, 900, "1600x900"),
    ],
)
def test_openai_models_are_asked_for_the_size_they_make_closest_in_shape(
    model, width, height, size
) -> None:
    assert request_size(model, width, height) == size


def test_gpt_image_models_are_not_sent_response_format(server: FakeImages) -> None:
    api, client = api_for(server, image_model="gpt-image-1")
    with client:
        assert open_png(api.render(spec(1080, 1350))).size == (1080, 1350)

    body = server.calls("/v1/images/generations")[0].json()
    assert "response_format" not in body
    assert body["size"] == "1024x1536"


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_and_rate_limits_are_transient(server: FakeImages, status: int) -> None:
    server.fail_next(1, status, {"error": {"message": "overloaded"}}, {"Retry-After": "7"})
    api, client = api_for(server)

    with client, pytest.raises(TransientError) as raised:
        api.render(spec())

    assert raised.value.http_status == status
    assert raised.value.retry_after == 7
    assert "overloaded" in raised.value.message


def test_a_refusal_is_permanent_with_the_providers_words_and_never_the_key(
    server: FakeImages,
) -> None:
    server.fail_next(
        1, 400, {"error": {"message": f"Your key {KEY} may not make images of this size"}}
    )
    api, client = api_for(server)

    with client, pytest.raises(PermanentError) as raised:
        api.render(spec())

    assert "HTTP 400" in raised.value.message
    assert "may not make images of this size" in raised.value.message
    assert KEY not in raised.value.message


def test_a_wrong_key_is_permanent(server: FakeImages) -> None:
    api, client = api_for(server, image_api_key="sk-wrong-key-0000")

    with client, pytest.raises(PermanentError, match="HTTP 401: Incorrect API key provided"):
        api.render(spec())


def test_a_timeout_is_transient(server: FakeImages) -> None:
    server.hold_path = "/v1/images/generations"
    api, client = api_for(server, image_api_timeout_seconds=0.3)

    with client, pytest.raises(TransientError, match="timed out"):
        api.render(spec())


@pytest.mark.parametrize(
    "answer",
    [{"data": []}, {"data": [{"b64_json": "%%%"}]}, {"data": [{"b64_json": "aGVsbG8="}]}, {}],
)
def test_an_answer_without_a_readable_image_is_permanent(server: FakeImages, answer) -> None:
    server.fail_next(1, 200, answer)
    api, client = api_for(server)

    with client, pytest.raises(PermanentError):
        api.render(spec())
