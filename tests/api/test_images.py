"""/v1/images, /media/images and /v1/posts/{id}/media, with the image actor on the stub broker."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from falcon.testing import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_api.app import create_app
from herald_common.db import session_scope
from herald_common.models import Account, Brand, Image, Job
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_common.workers import Deps
from herald_image.actors import declare_actors
from tests.api.conftest import fields_of
from tests.image.pictures import open_png

QUEUE = "image"


def waiting(broker: StubBroker) -> int:
    """Messages on the image queue."""
    queue = broker.queues.get(QUEUE)
    return queue.qsize() if queue is not None else 0


def jobs_in(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(session.exec(select(Job)).all())


def add_brand(engine: Engine, tenant_id: str, **colors: str) -> str:
    with session_scope(engine) as session:
        brand = Brand(tenant_id=tenant_id, name="Cafe", colors=colors, fonts={"heading": "Inter"})
        session.add(brand)
    return brand.id


class ImageWorker:
    """The image service's actor, drained by a worker thread, as the embedded stack runs it."""

    def __init__(
        self, client: TestClient, broker: StubBroker, settings: Settings, engine: Engine
    ) -> None:
        self.client = client
        self.broker = broker
        deps = Deps(
            settings=settings,
            broker=broker,
            engine=lambda: engine,
            platforms=lambda: PlatformRegistry(engine, settings),
        )
        declare_actors(broker, deps)
        self.worker = dramatiq.Worker(broker, queues={QUEUE}, worker_threads=1, worker_timeout=20)

    def make(self, prompt: str = "Autumn menu", **body: Any) -> dict[str, Any]:
        """POST /v1/images, run the job, and return the image as GET /v1/images/{id} shows it."""
        body = {"prompt": prompt, "style": "minimalist", "width": 320, "height": 200, **body}
        accepted = self.client.simulate_post("/v1/images", json=body)
        assert accepted.status_code == 202, accepted.json
        self.broker.join(QUEUE)
        self.worker.join()
        job = self.client.simulate_get(f"/v1/jobs/{accepted.json['id']}").json
        assert job["status"] == "succeeded", job
        image = self.client.simulate_get(f"/v1/images/{job['result']['image_id']}")
        assert image.status_code == 200, image.json
        return image.json


@pytest.fixture
def images(client, broker, settings, engine) -> Iterator[ImageWorker]:
    worker = ImageWorker(client, broker, settings, engine)
    worker.worker.start()
    yield worker
    worker.worker.stop()


def path_of(url: str) -> str:
    return urlsplit(url).path


# --- POST /v1/images --------------------------------------------------------------------------


def test_an_image_request_is_accepted_as_a_job_and_queued(client, broker, engine, tenant) -> None:
    # Given a brand of the tenant
    brand_id = add_brand(engine, tenant.id, background="#f4a261")

    # When an image is asked for with a platform preset
    result = client.simulate_post(
        "/v1/images",
        json={
            "prompt": "Autumn menu",
            "style": "cartoon",
            "platform": "linkedin",
            "brand_id": brand_id,
        },
    )

    # Then it is a queued image.generate job, its message on the image queue
    assert result.status_code == 202
    job = result.json
    assert (job["kind"], job["status"], job["brand_id"], job["total"]) == (
        "image.generate",
        "queued",
        brand_id,
        1,
    )
    assert result.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert waiting(broker) == 1
    [message] = list(broker.queues[QUEUE].queue)
    kwargs = dramatiq.Message.decode(message).kwargs
    assert kwargs == {
        "tenant_id": tenant.id,
        "job_id": job["id"],
        "prompt": "Autumn menu",
        "style": "cartoon",
        "width": 1200,
        "height": 627,
        "brand_id": brand_id,
    }


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"width": 63, "height": 100}, "width", "must be greater than or equal to 64"),
        ({"width": 100, "height": 5000}, "height", "must be less than or equal to 4096"),
        ({"width": 4000, "height": 500}, "width", "must be at most 4 times the height"),
        ({"width": 300, "height": 1201}, "height", "must be at most 4 times the width"),
        ({"width": 300}, "height", "is required when width is given"),
        (
            {"style": "watercolor"},
            "style",
            "must be 'realistic', 'cartoon', 'abstract' or 'minimalist'",
        ),
        ({"prompt": ""}, "prompt", "must be at least 1 characters"),
        ({"prompt": "   "}, "prompt", "must not be blank"),
        ({"prompt": "x" * 1001}, "prompt", "must be at most 1000 characters"),
        (
            {"platform": "x", "format": "story"},
            "format",
            "x has no story preset (landscape, square, portrait)",
        ),
        ({"platform": "myspace"}, "platform", None),
        ({"brand_id": "00000000-0000-4000-8000-000000000000"}, "brand_id", "no such brand"),
        ({"size": "1080x1080"}, "size", "unknown field"),
    ],
)
def test_a_bad_request_is_422_naming_the_field_and_nothing_is_queued(
    client, broker, engine, body, field, reason
) -> None:
    result = client.simulate_post("/v1/images", json={"prompt": "Hello", **body})

    assert result.status_code == 422
    fields = fields_of(result)
    assert field in fields, fields
    if reason is not None:
        assert fields[field] == reason
    assert waiting(broker) == 0
    assert jobs_in(engine) == 0


def test_another_tenants_brand_is_no_such_brand(client, broker, engine, other_tenant) -> None:
    brand_id = add_brand(engine, other_tenant.id)

    result = client.simulate_post("/v1/images", json={"prompt": "Hi", "brand_id": brand_id})

    assert result.status_code == 422
    assert fields_of(result) == {"brand_id": "no such brand"}
    assert waiting(broker) == 0


# --- the job, the image and its bytes ---------------------------------------------------------


def test_a_rendered_image_is_served_with_its_key_and_at_its_public_url(
    images, client, anonymous, engine, tenant
) -> None:
    # Given an image rendered by the image actor in a brand's colours
    brand_id = add_brand(engine, tenant.id, background="#264653", text="#e9c46a")
    image = images.make(
        "Grand opening", style="realistic", width=640, height=480, brand_id=brand_id
    )

    # Then its details say what it is
    assert (image["width"], image["height"], image["style"], image["brand_id"]) == (
        640,
        480,
        "realistic",
        brand_id,
    )
    assert image["media_type"] == "image/png" and image["renderer"] == "pillow"
    assert image["content_url"] == f"http://127.0.0.1:8000/v1/images/{image['id']}/content"
    assert image["url"].startswith(f"http://127.0.0.1:8000/media/images/{image['id']}.")

    # When its content is fetched with the key
    content = client.simulate_get(f"/v1/images/{image['id']}/content")

    # Then it is the PNG, typed, tagged with its SHA-256 and cacheable
    assert content.status_code == 200
    assert content.headers["Content-Type"] == "image/png"
    assert content.headers["ETag"] == f'"{image["sha256"]}"'
    assert hashlib.sha256(content.content).hexdigest() == image["sha256"]
    assert len(content.content) == image["size_bytes"]
    assert "max-age" in content.headers["Cache-Control"]
    picture = open_png(content.content)
    assert picture.size == (640, 480)
    assert (
        max(abs(a - b) for a, b in zip(picture.getpixel((0, 0)), (0x26, 0x46, 0x53), strict=True))
        <= 3
    )
    # and a client that has it gets 304
    again = client.simulate_get(
        f"/v1/images/{image['id']}/content", headers={"If-None-Match": f'"{image["sha256"]}"'}
    )
    assert again.status_code == 304 and again.content == b""
    # and without a key, the content route is refused
    assert anonymous.simulate_get(f"/v1/images/{image['id']}/content").status_code == 401

    # When the public URL is fetched without a key
    public = anonymous.simulate_get(path_of(image["url"]))

    # Then the same bytes come back, publicly cacheable
    assert public.status_code == 200
    assert public.content == content.content
    assert public.headers["Content-Type"] == "image/png"
    assert public.headers["Cache-Control"].startswith("public")
    head = anonymous.simulate_head(path_of(image["url"]))
    assert head.status_code == 200 and head.headers["Content-Length"] == str(image["size_bytes"])


def test_a_tampered_or_unknown_token_is_404_and_says_nothing_more(images, anonymous) -> None:
    image = images.make()
    path = path_of(image["url"])
    image_id, signature, _ = path.rsplit("/", 1)[1].split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")

    tampered = anonymous.simulate_get(f"/media/images/{image_id}.{flipped}.png")
    unsigned = anonymous.simulate_get(f"/media/images/{image_id}")
    unknown = anonymous.simulate_get(
        f"/media/images/00000000-0000-4000-8000-000000000000.{signature}.png"
    )

    for result in (tampered, unsigned, unknown):
        assert result.status_code == 404
        assert result.json["error"]["message"] == "no such image"


def test_images_are_the_tenants_own(images, other_client) -> None:
    image = images.make()

    for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/content")):
        result = other_client.simulate_request(method, f"/v1/images/{image['id']}{suffix}")
        assert result.status_code == 404, (method, suffix)
    assert other_client.simulate_get("/v1/images").json["data"] == []


def test_images_are_listed_newest_first_a_page_at_a_time(client, engine, tenant) -> None:
    # Given five images made a minute apart
    with session_scope(engine) as session:
        rows = [
            Image(
                tenant_id=tenant.id,
                prompt=f"image {n}",
                style="minimalist",
                width=64,
                height=64,
                sha256="0" * 64,
                renderer="pillow",
                data=b"png",
                size_bytes=3,
            )
            for n in range(5)
        ]
        for n, row in enumerate(rows):
            row.created_at = row.created_at + timedelta(minutes=n)
        session.add_all(rows)

    # When they are listed two at a time
    first = client.simulate_get("/v1/images", params={"limit": 2}).json
    second = client.simulate_get(
        "/v1/images", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json
    third = client.simulate_get(
        "/v1/images", params={"limit": 2, "cursor": second["next_cursor"]}
    ).json

    # Then they come newest first, each once, with their URLs
    prompts = [i["prompt"] for page in (first, second, third) for i in page["data"]]
    assert prompts == ["image 4", "image 3", "image 2", "image 1", "image 0"]
    assert third["next_cursor"] is None
    assert all(i["url"] and i["content_url"] for i in first["data"])


def test_a_deleted_image_is_gone_with_its_file(
    settings, engine, broker, platforms, tenant, anonymous, tmp_path: Path
) -> None:
    # Given an API and an image worker that store image files in a directory
    store = tmp_path / "images"
    on_disk = settings.model_copy(update={"image_storage": str(store)})
    client = TestClient(
        create_app(on_disk, engine=engine, broker=broker, platforms=platforms),
        headers=tenant.headers,
    )
    worker = ImageWorker(client, broker, on_disk, engine)
    worker.worker.start()
    try:
        image = worker.make()
    finally:
        worker.worker.stop()
    file = store / tenant.id / f"{image['id']}.png"
    assert file.exists()
    assert client.simulate_get(f"/v1/images/{image['id']}/content").content == file.read_bytes()

    # When it is deleted
    deleted = client.simulate_delete(f"/v1/images/{image['id']}")

    # Then it is gone: its details, its bytes, its file and its public URL
    assert deleted.status_code == 204
    assert client.simulate_get(f"/v1/images/{image['id']}").status_code == 404
    assert not file.exists()
    assert anonymous.simulate_get(path_of(image["url"])).status_code == 404


# --- attaching to posts -----------------------------------------------------------------------


@pytest.fixture
def post(make_account, make_post) -> dict[str, Any]:
    return make_post([make_account()["id"]])


def attach(client: TestClient, post_id: str, **body: Any):  # type: ignore[no-untyped-def]
    return client.simulate_post(f"/v1/posts/{post_id}/media", json=body)


def test_an_image_is_attached_to_a_post_as_its_public_url(images, client, post, anonymous) -> None:
    # Given an image and a draft post
    image = images.make()

    # When it is attached with alt text
    result = attach(client, post["id"], image_id=image["id"], alt="The autumn menu")

    # Then the post carries its public URL, type, size and alt
    assert result.status_code == 200, result.json
    assert result.json["media"] == [
        {
            "url": image["url"],
            "kind": "image",
            "mime_type": "image/png",
            "alt": "The autumn menu",
            "size": image["size_bytes"],
        }
    ]
    assert result.json["version"] == post["version"] + 1
    # and what the publisher will fetch is the image
    assert anonymous.simulate_get(path_of(image["url"])).status_code == 200

    # When it is attached again with other alt text, its entry is replaced
    again = attach(client, post["id"], image_id=image["id"], alt="Menu")
    assert [m["alt"] for m in again.json["media"]] == ["Menu"]
    # and another image is added after it
    other = images.make("Second")
    both = attach(client, post["id"], image_id=other["id"])
    assert [m["url"] for m in both.json["media"]] == [image["url"], other["url"]]


def test_attaching_follows_the_posts_rules(
    images, client, engine, tenant, set_target, post
) -> None:
    image = images.make()

    # An unknown post is 404; an image that is not the tenant's is 422
    assert (
        attach(client, "00000000-0000-4000-8000-000000000000", image_id=image["id"]).status_code
        == 404
    )
    missing = attach(client, post["id"], image_id="00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 422 and fields_of(missing) == {"image_id": "no such image"}
    # A body that breaks the schema is 422
    assert fields_of(attach(client, post["id"], image_id=image["id"], url="x")) == {
        "url": "unknown field"
    }
    # A platform's rule applies as on PATCH: Bluesky needs alt text
    with session_scope(engine) as session:
        bluesky = Account(tenant_id=tenant.id, platform="bluesky", handle="cafe.bsky.social")
        session.add(bluesky)
    created = client.simulate_post(
        "/v1/posts", json={"content": "Menu", "account_ids": [bluesky.id]}
    )
    assert created.status_code == 201, created.json
    refused = attach(client, created.json["id"], image_id=image["id"])
    assert refused.status_code == 422
    [error] = refused.json["error"]["fields"]
    assert (error["field"], error["rule"]) == ("media", "alt_text")
    assert attach(client, created.json["id"], image_id=image["id"], alt="").status_code == 200
    # A post that has gone out cannot change: 409
    set_target(post["targets"][0]["id"], status="published")
    assert attach(client, post["id"], image_id=image["id"]).status_code == 409


def test_an_image_on_a_post_that_has_not_gone_out_cannot_be_deleted(
    images, client, set_target, post
) -> None:
    # Given an image attached to a draft post
    image = images.make()
    assert attach(client, post["id"], image_id=image["id"]).status_code == 200

    # When it is deleted, it is refused and the post named
    refused = client.simulate_delete(f"/v1/images/{image['id']}")
    assert refused.status_code == 409
    assert post["id"] in refused.json["error"]["message"]
    assert client.simulate_get(f"/v1/images/{image['id']}").status_code == 200

    # When the post has been published, it can go
    set_target(post["targets"][0]["id"], status="published")
    assert client.simulate_get(f"/v1/posts/{post['id']}").json["status"] == "published"
    assert client.simulate_delete(f"/v1/images/{image['id']}").status_code == 204


def test_an_image_taken_off_a_post_can_be_deleted(images, client, post) -> None:
    image = images.make()
    attach(client, post["id"], image_id=image["id"])

    cleared = client.simulate_patch(f"/v1/posts/{post['id']}", json={"media": []})

    assert cleared.status_code == 200
    assert client.simulate_delete(f"/v1/images/{image['id']}").status_code == 204
