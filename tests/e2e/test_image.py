"""Images end to end: gunicorn, Redis, the `herald-image` dramatiq service and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlmodel import select

from herald_api.auth import hash_key
from herald_common.db import create_db_engine, session_scope
from herald_common.models import ApiKey, Brand
from herald_embedded.stack import Stack, wait_for
from tests.e2e.conftest import e2e_stack
from tests.e2e.helpers import post_json
from tests.image.pictures import open_png

BACKGROUND = (0x26, 0x46, 0x53)
COLORS = {
    "primary": "#2a9d8f",
    "secondary": "#e9c46a",
    "accent": "#f4a261",
    "background": "#264653",
    "text": "#fefae0",
}


@pytest.fixture(scope="module")
def stack(
    pg_url: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The stack with the image service, its public URL its own address."""
    logdir = tmp_path_factory.mktemp("image-stack-logs")
    with e2e_stack(pg_url, redis_server_url, logdir) as stack:
        stack.env_overrides["PUBLIC_URL"] = stack.base_url
        yield stack.start(services=("image",))


def make_brand(stack: Stack, pg_url: str, client: httpx.Client) -> str:
    """A brand in COLORS: through /v1/brands when the API has it, else written directly."""
    response = client.post("/v1/brands", json={"name": "Harbour Cafe", "colors": COLORS})
    if response.status_code == 201:
        return str(response.json()["id"])
    assert response.status_code in (404, 405), response.text
    engine = create_db_engine(pg_url)
    try:
        with session_scope(engine) as session:
            tenant_id = session.exec(
                select(ApiKey.tenant_id).where(ApiKey.key_hash == hash_key(stack.api_key or ""))
            ).one()
            brand = Brand(tenant_id=tenant_id, name="Harbour Cafe", colors=COLORS)
            session.add(brand)
        return brand.id
    finally:
        engine.dispose()


def image_queue(admin: httpx.Client) -> dict:
    response = admin.get("/v1/admin/queues")
    assert response.status_code == 200, response.text
    [queue] = [q for q in response.json()["data"] if q["name"] == "image"]
    return queue


def test_an_image_is_rendered_by_the_image_service_in_the_brands_colours(
    stack: Stack, pg_url: str
) -> None:
    with stack.client() as client, httpx.Client(base_url=stack.base_url, timeout=10) as anonymous:
        # Given a brand
        brand_id = make_brand(stack, pg_url, client)

        # When a LinkedIn-sized minimalist image is asked for
        job = post_json(
            client,
            "/v1/images",
            {
                "prompt": "Our harbour terrace opens on Saturday",
                "style": "minimalist",
                "width": 1200,
                "height": 627,
                "brand_id": brand_id,
            },
        )
        assert (job["kind"], job["status"]) == ("image.generate", "queued")

        # Then the image service runs the job to success
        def finished() -> dict | None:
            body = client.get(f"/v1/jobs/{job['id']}").json()
            assert body["status"] != "failed", body
            return body if body["status"] == "succeeded" else None

        done = wait_for(finished, timeout=30, what="the image job to succeed")
        image_id = done["result"]["image_id"]
        assert (done["result"]["width"], done["result"]["height"]) == (1200, 627)

        # and its bytes are a 1200×627 PNG on the brand's background
        content = client.get(f"/v1/images/{image_id}/content")
        assert content.status_code == 200, content.text
        assert content.headers["content-type"] == "image/png"
        picture = open_png(content.content)
        assert picture.size == (1200, 627)
        assert picture.getpixel((0, 0)) == BACKGROUND
        assert picture.getpixel((1199, 626)) == BACKGROUND

        # and its public URL serves them without a key
        public = anonymous.get(urlsplit(done["result"]["url"]).path)
        assert public.status_code == 200
        assert public.content == content.content


def test_a_malformed_request_is_422_and_nothing_is_enqueued(stack: Stack) -> None:
    admin_key = stack.create_tenant("image-ops", admin=True)
    with stack.client() as client, stack.client(admin_key) as admin:
        # Given the image queue and the tenant's jobs as they are
        before = image_queue(admin)
        jobs_before = client.get("/v1/jobs").json()["data"]

        # When images are asked for with a bad size, style or payload
        for body, field in (
            ({"prompt": "Hi", "width": 5000, "height": 5000}, "width"),
            ({"prompt": "Hi", "width": 2000, "height": 200}, "width"),
            ({"prompt": "Hi", "style": "oil painting"}, "style"),
            ({"prompt": "", "style": "cartoon"}, "prompt"),
            ({"prompt": "Hi", "brand_id": "00000000-0000-4000-8000-000000000000"}, "brand_id"),
        ):
            response = client.post("/v1/images", json=body)

            # Then each is 422 naming the field
            assert response.status_code == 422, response.text
            assert field in {f["field"] for f in response.json()["error"]["fields"]}

        # and nothing reached Redis or the jobs
        after = image_queue(admin)
        for count in ("waiting", "delayed", "active", "completed_total"):
            assert after[count] == before[count], (count, before, after)
        assert client.get("/v1/jobs").json()["data"] == jobs_before
