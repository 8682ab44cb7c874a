"""The image.generate job's work, through run_job, on a real database."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.contracts import GENERATE_IMAGE
from herald_common.db import session_scope
from herald_common.errors import TransientError
from herald_common.images.cards import CardRenderer
from herald_common.images.fonts import FontBook
from herald_common.images.generation import ImageGenerator
from herald_common.images.provider import ImageApi
from herald_common.images.signing import MediaSigner
from herald_common.images.spec import ImageSpec
from herald_common.jobs import JobRun, create_job, run_job
from herald_common.models import Brand, Image, Job, JobStatus
from herald_common.settings import Settings
from tests.conftest import add_tenant, make_settings
from tests.image.fake_images import KEY, FakeImages
from tests.image.pictures import open_png
from tests.platforms.servers import running

BRAND_COLORS = {
    "primary": "#264653",
    "secondary": "#2a9d8f",
    "accent": "#e9c46a",
    "background": "#f4a261",
    "text": "#1b1b1b",
}


def start(engine: Engine, tenant_id: str, **payload: Any) -> str:
    """A queued image.generate job's id, as the API writes it."""
    fields = {"prompt": "Autumn menu", "style": "minimalist", "width": 640, "height": 360}
    with session_scope(engine) as session:
        job = create_job(session, tenant_id, GENERATE_IMAGE, {**fields, **payload})
    return job.id


def job_of(engine: Engine, job_id: str) -> Job:
    with session_scope(engine) as session:
        return session.get_one(Job, job_id)


def images_of(engine: Engine, tenant_id: str) -> list[Image]:
    with session_scope(engine) as session:
        return list(session.exec(select(Image).where(Image.tenant_id == tenant_id)).all())


@pytest.fixture
def settings() -> Settings:
    return make_settings(public_url="https://herald.example")


def test_a_job_renders_a_card_and_keeps_it_in_the_database(sqlite_engine, settings) -> None:
    # Given a tenant's brand and an image job for it
    tenant_id = add_tenant(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        brand = Brand(tenant_id=tenant_id, name="Cafe", colors=BRAND_COLORS)
        session.add(brand)
    job_id = start(sqlite_engine, tenant_id, brand_id=brand.id, width=1200, height=627)

    # When the job runs
    run_job(
        sqlite_engine, GENERATE_IMAGE, job_id, ImageGenerator.from_settings(sqlite_engine, settings)
    )

    # Then it succeeded with the image's id, size and signed public URL
    job = job_of(sqlite_engine, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.progress == 1
    [image] = images_of(sqlite_engine, tenant_id)
    assert job.result == {
        "image_id": image.id,
        "width": 1200,
        "height": 627,
        "url": MediaSigner.from_settings(settings).url("https://herald.example", image.id),
    }
    # and the row holds a PNG of that size in the brand's background colour
    assert image.data is not None and image.storage_key is None
    assert (image.job_id, image.brand_id, image.renderer) == (job_id, brand.id, "pillow")
    assert image.size_bytes == len(image.data)
    assert image.sha256 == hashlib.sha256(image.data).hexdigest()
    picture = open_png(image.data)
    assert picture.size == (1200, 627)
    assert picture.getpixel((0, 0)) == (0xF4, 0xA2, 0x61)


def test_with_a_storage_directory_the_bytes_are_a_file(sqlite_engine, tmp_path: Path) -> None:
    settings = make_settings(image_storage=str(tmp_path))
    tenant_id = add_tenant(sqlite_engine)
    job_id = start(sqlite_engine, tenant_id)

    run_job(
        sqlite_engine, GENERATE_IMAGE, job_id, ImageGenerator.from_settings(sqlite_engine, settings)
    )

    [image] = images_of(sqlite_engine, tenant_id)
    assert image.data is None
    assert image.storage_key == f"{tenant_id}/{image.id}.png"
    assert open_png((tmp_path / tenant_id / f"{image.id}.png").read_bytes()).size == (640, 360)


def test_a_second_run_of_the_job_returns_the_image_the_first_made(sqlite_engine, settings) -> None:
    # Given a job that made its image, and whose worker then died before recording it
    tenant_id = add_tenant(sqlite_engine)
    job_id = start(sqlite_engine, tenant_id)
    generator = ImageGenerator.from_settings(sqlite_engine, settings)
    run_job(sqlite_engine, GENERATE_IMAGE, job_id, generator)
    first = job_of(sqlite_engine, job_id).result
    with session_scope(sqlite_engine) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED, result=None)
        )

    # When the scheduler's resend runs it again
    run_job(sqlite_engine, GENERATE_IMAGE, job_id, generator)

    # Then it returns the same image and made no other
    assert job_of(sqlite_engine, job_id).result == first
    assert [i.id for i in images_of(sqlite_engine, tenant_id)] == [first["image_id"]]  # type: ignore[index]


class FirstRunOvertaken:
    """A renderer during whose render another run of the same job finishes first."""

    name = "pillow"

    def __init__(self, inner: CardRenderer, other_run: Callable[[], Any]) -> None:
        self._inner = inner
        self._other_run: Callable[[], Any] | None = other_run

    def render(self, spec: ImageSpec) -> bytes:
        if self._other_run is not None:
            other, self._other_run = self._other_run, None
            other()
        return self._inner.render(spec)


def test_two_runs_racing_keep_one_image_and_one_file(sqlite_engine, tmp_path: Path) -> None:
    # Given two runs of one job, the second finishing while the first renders
    settings = make_settings(image_storage=str(tmp_path))
    tenant_id = add_tenant(sqlite_engine)
    job_id = start(sqlite_engine, tenant_id)
    with session_scope(sqlite_engine) as session:
        payload = session.get_one(Job, job_id).payload
    run = JobRun(sqlite_engine, job_id, tenant_id, 1, dict(payload))
    cards = CardRenderer(FontBook([]))
    second = ImageGenerator.from_settings(sqlite_engine, settings, renderer=cards)
    seen: dict[str, Any] = {}
    first = ImageGenerator.from_settings(
        sqlite_engine,
        settings,
        renderer=FirstRunOvertaken(cards, lambda: seen.update(second(run))),
    )

    # When the first run finishes last
    result = first(run)

    # Then it returns the second run's image, and only that image's file is left
    [image] = images_of(sqlite_engine, tenant_id)
    assert result == seen and result["image_id"] == image.id
    assert sorted(p.name for p in (tmp_path / tenant_id).iterdir()) == [f"{image.id}.png"]


def test_a_brand_gone_before_the_job_ran_fails_it_with_the_reason(sqlite_engine, settings) -> None:
    tenant_id = add_tenant(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        brand = Brand(tenant_id=tenant_id, name="Gone")
        session.add(brand)
    job_id = start(sqlite_engine, tenant_id, brand_id=brand.id)
    with session_scope(sqlite_engine) as session:
        session.delete(session.get_one(Brand, brand.id))

    run_job(
        sqlite_engine, GENERATE_IMAGE, job_id, ImageGenerator.from_settings(sqlite_engine, settings)
    )

    job = job_of(sqlite_engine, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error == f"brand {brand.id} no longer exists"
    assert images_of(sqlite_engine, tenant_id) == []


def api_settings(server: FakeImages) -> Settings:
    return make_settings(
        image_api_url=f"{server.url}/v1", image_api_key=KEY, image_model="herald-test-model"
    )


def test_a_provider_error_then_success_is_retried_into_an_image(sqlite_engine) -> None:
    with running(FakeImages(size=(1024, 1024))) as server:
        # Given a provider that fails once with a 500
        server.fail_next(1, 500, {"error": {"message": "The server had an error"}})
        settings = api_settings(server)  # type: ignore[arg-type]
        tenant_id = add_tenant(sqlite_engine)
        job_id = start(sqlite_engine, tenant_id, width=800, height=1000)
        generator = ImageGenerator.from_settings(sqlite_engine, settings)

        # When the job runs: the first try raises for Dramatiq to retry it
        with pytest.raises(TransientError):
            run_job(sqlite_engine, GENERATE_IMAGE, job_id, generator)
        waiting = job_of(sqlite_engine, job_id)
        assert waiting.status == JobStatus.QUEUED
        assert "try 1 of 3 failed" in (waiting.error or "")
        assert "The server had an error" in (waiting.error or "")

        # and the retry succeeds
        run_job(sqlite_engine, GENERATE_IMAGE, job_id, generator)

        # Then the provider was asked twice, and the image is the provider's, resized
        assert len(server.calls("/v1/images/generations", "POST")) == 2
    job = job_of(sqlite_engine, job_id)
    assert job.status == JobStatus.SUCCEEDED and job.error is None
    [image] = images_of(sqlite_engine, tenant_id)
    assert image.renderer == "api"
    assert open_png(image.data or b"").size == (800, 1000)


def test_a_provider_refusal_fails_the_job_with_its_reason_never_the_key(sqlite_engine) -> None:
    with running(FakeImages()) as server:
        server.fail_next(1, 400, {"error": {"message": f"Key {KEY}: this prompt is not allowed"}})
        settings = api_settings(server)  # type: ignore[arg-type]
        tenant_id = add_tenant(sqlite_engine)
        job_id = start(sqlite_engine, tenant_id)

        run_job(
            sqlite_engine,
            GENERATE_IMAGE,
            job_id,
            ImageGenerator.from_settings(sqlite_engine, settings),
        )

        assert len(server.calls("/v1/images/generations")) == 1
    job = job_of(sqlite_engine, job_id)
    assert job.status == JobStatus.FAILED
    assert "HTTP 400" in (job.error or "") and "this prompt is not allowed" in (job.error or "")
    assert KEY not in (job.error or "")
    assert images_of(sqlite_engine, tenant_id) == []


def test_the_renderer_is_the_api_only_when_its_url_is_set(sqlite_engine) -> None:
    cards = ImageGenerator.from_settings(sqlite_engine, make_settings())
    api = ImageGenerator.from_settings(sqlite_engine, make_settings(image_api_url="http://x/v1"))

    assert isinstance(cards.renderer, CardRenderer)
    assert isinstance(api.renderer, ImageApi)
