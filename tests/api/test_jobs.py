"""/v1/jobs (a tenant's background jobs) and /v1/admin/test-jobs (seed 003's test endpoints)."""

from __future__ import annotations

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from herald_common.contracts import GENERATE_IMAGE, PULL_ANALYTICS
from herald_common.db import session_scope
from herald_common.jobs import create_job
from tests.api.conftest import fields_of

IMAGE = {"prompt": "Autumn menu", "style": "cartoon", "width": 1080, "height": 1080}


def waiting(broker: StubBroker, queue: str) -> list[dramatiq.Message]:
    q = broker.queues[queue]
    return [dramatiq.Message.decode(item) for item in list(q.queue)]


@pytest.fixture
def make_job(engine, tenant):
    def make(tenant_id: str | None = None, **payload):
        with session_scope(engine) as session:
            return create_job(session, tenant_id or tenant.id, GENERATE_IMAGE, {**IMAGE, **payload})

    return make


def test_a_tenant_reads_its_job(client, make_job) -> None:
    job = make_job()

    result = client.simulate_get(f"/v1/jobs/{job.id}")

    assert result.status_code == 200
    body = result.json
    assert (body["id"], body["kind"], body["status"]) == (job.id, "image.generate", "queued")
    assert (body["progress"], body["total"], body["result"], body["error"]) == (0, None, None, None)


def test_another_tenants_job_is_not_found(other_client, make_job) -> None:
    job = make_job()

    assert other_client.simulate_get(f"/v1/jobs/{job.id}").status_code == 404
    assert other_client.simulate_get("/v1/jobs").json["data"] == []


def test_jobs_are_listed_newest_first_page_by_page_and_filtered(client, make_job) -> None:
    jobs = [make_job(prompt=f"p{i}") for i in range(5)]

    first = client.simulate_get("/v1/jobs", params={"limit": 3}).json
    second = client.simulate_get(
        "/v1/jobs", params={"limit": 3, "cursor": first["next_cursor"]}
    ).json

    listed = [j["id"] for j in first["data"] + second["data"]]
    assert sorted(listed) == sorted(j.id for j in jobs) and len(set(listed)) == 5
    assert second["next_cursor"] is None
    assert (
        client.simulate_get("/v1/jobs", params={"kind": "content.regen.single"}).json["data"] == []
    )
    assert len(client.simulate_get("/v1/jobs", params={"status": "queued"}).json["data"]) == 5


def test_bad_list_parameters_are_named(client) -> None:
    result = client.simulate_get("/v1/jobs", params={"status": "sleeping", "limit": 0})

    assert result.status_code == 422
    assert set(fields_of(result)) == {"status", "limit"}
    bad_cursor = client.simulate_get("/v1/jobs", params={"cursor": "nope"})
    assert fields_of(bad_cursor) == {"cursor": "is not a cursor this API gave out"}


def test_the_admin_enqueues_a_test_job_with_a_record(admin, tenant, broker, engine) -> None:
    # When an admin starts a test image job for a tenant
    result = admin.simulate_post(
        "/v1/admin/test-jobs/image.generate", json={"tenant_id": tenant.id, **IMAGE}
    )

    # Then it is enqueued by name, with a job record the tenant can read
    assert result.status_code == 202
    out = result.json
    assert (out["queue"], out["actor_name"]) == ("image", GENERATE_IMAGE.actor_name)
    [message] = waiting(broker, "image")
    assert message.message_id == out["message_id"]
    assert message.kwargs["job_id"] == out["job_id"]
    assert message.kwargs["width"] == 1080


def test_a_test_job_without_a_record_is_checked_and_sent(admin, tenant, broker) -> None:
    result = admin.simulate_post(
        "/v1/admin/test-jobs/analytics.pull",
        json={"tenant_id": tenant.id, "metrics": ["likes"], "start": "2026-11-01"},
    )

    assert result.status_code == 202
    [message] = waiting(broker, PULL_ANALYTICS.queue)
    assert message.kwargs["metrics"] == ["likes"] and message.kwargs["start"] == "2026-11-01"


@pytest.mark.parametrize(
    ("job_name", "payload", "field"),
    [
        ("image.generate", {**IMAGE, "width": 10}, "width"),
        ("image.generate", {**IMAGE, "style": "baroque"}, "style"),
        (
            "content.generate.monthly",
            {"brand_id": "b", "month": 13, "year": 2030, "count": 30, "platforms": ["x"]},
            "month",
        ),
        ("approval.notify", {"post_id": "p"}, "approval_id"),
        ("analytics.pull", {"metrics": "likes"}, "metrics"),
    ],
)
def test_a_malformed_payload_is_refused_before_anything_is_enqueued(
    admin, tenant, broker, job_name, payload, field
) -> None:
    result = admin.simulate_post(
        f"/v1/admin/test-jobs/{job_name}", json={"tenant_id": tenant.id, **payload}
    )

    assert result.status_code == 422
    assert field in fields_of(result)
    assert all(q.qsize() == 0 for q in broker.queues.values())


def test_an_unknown_tenant_or_job_name_is_refused(admin, broker) -> None:
    unknown_tenant = admin.simulate_post(
        "/v1/admin/test-jobs/image.generate", json={"tenant_id": "nobody", **IMAGE}
    )
    unknown_job = admin.simulate_post("/v1/admin/test-jobs/publish.target", json={})
    not_an_object = admin.simulate_post("/v1/admin/test-jobs/image.generate", json=[1])

    assert fields_of(unknown_tenant) == {"tenant_id": "no such tenant"}
    assert unknown_job.status_code == 404
    assert not_an_object.status_code == 400
    assert all(q.qsize() == 0 for q in broker.queues.values())


def test_test_jobs_are_for_admin_keys_only(client, tenant) -> None:
    result = client.simulate_post(
        "/v1/admin/test-jobs/image.generate", json={"tenant_id": tenant.id, **IMAGE}
    )

    assert result.status_code == 403
