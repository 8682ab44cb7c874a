"""Content end to end: gunicorn, Redis, the `herald-content` dramatiq service, the scheduler
and the publisher on PostgreSQL — a month of drafts written with visible progress, one hook
written again, and a published post that cannot be."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from herald_common.content import Parts
from herald_embedded.stack import Stack, wait_for
from tests.e2e.conftest import e2e_stack
from tests.e2e.helpers import post_json

PARIS = ZoneInfo("Europe/Paris")
COUNT = 30


@pytest.fixture(scope="module")
def stack(
    pg_url: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The stack with the content service (its default, offline template writer)."""
    logdir = tmp_path_factory.mktemp("content-stack-logs")
    with e2e_stack(pg_url, redis_server_url, logdir) as stack:
        yield stack.start(services=("content",))


def next_month() -> tuple[int, int]:
    today = datetime.now(PARIS)
    return (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)


def finished_job(client: httpx.Client, job_id: str, timeout: float = 60) -> tuple[dict, list[int]]:
    """Poll the job until it ends; its last state and every progress value seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        seen.append(job["progress"])
        if job["status"] in ("succeeded", "failed"):
            return job, seen
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}: {job}"
        time.sleep(0.005)


def brand_posts(client: httpx.Client, brand_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/posts", params={"limit": "100"})
    assert response.status_code == 200, response.text
    return [post for post in response.json()["data"] if post["brand_id"] == brand_id]


def test_a_month_of_drafts_then_one_hook_again(stack: Stack) -> None:
    with stack.client() as client:
        # Given a brand in Paris whose default account is a sandbox one taking 280 characters
        account_id = post_json(
            client,
            "/v1/accounts",
            {"platform": "sandbox", "handle": "e2e", "settings": {"max_length": 280}},
        )["id"]
        brand = post_json(
            client,
            "/v1/brands",
            {
                "name": "Harbour Cafe",
                "tone": "warm and friendly",
                "topics": ["slow mornings", "seasonal menus", "local roasters"],
                "hashtags": ["HarbourCafe", "#coffee"],
                "timezone": "Europe/Paris",
                "default_account_ids": [account_id],
            },
        )

        # When next month's 30 posts are generated for it (a platform the brand has no account
        # on is refused: tests/api/test_content.py)
        year, month = next_month()
        response = client.post(
            f"/v1/brands/{brand['id']}/generate",
            json={
                "month": month,
                "year": year,
                "count": COUNT,
                "platforms": ["sandbox"],
            },
        )
        assert response.status_code == 202, response.text
        job, seen = finished_job(client, response.json()["id"])

        # Then the job succeeded, its progress rising to 30 and never going back
        assert job["status"] == "succeeded", job["error"]
        assert (job["progress"], job["total"]) == (COUNT, COUNT)
        assert seen == sorted(seen)
        assert all(0 <= value <= COUNT for value in seen)
        intermediate = [value for value in seen if 0 < value < COUNT]
        print(f"progress seen: {sorted(set(seen))} ({len(intermediate)} intermediate polls)")
        assert job["result"]["count"] == COUNT

        # And 30 drafts exist, each in that month, fitting the account's limit, with its parts
        posts = brand_posts(client, brand["id"])
        assert sorted(p["id"] for p in posts) == sorted(job["result"]["post_ids"])
        suggested = set()
        for post in posts:
            assert post["status"] == "draft"
            local = datetime.fromisoformat(post["suggested_at"]).astimezone(PARIS)
            assert (local.year, local.month) == (year, month)
            suggested.add(post["suggested_at"])
            text = post["content"]
            assert len(text) <= 280, text
            parts = Parts.from_mapping(post["parts"])
            assert parts.hook and parts.body and parts.hashtags
            assert parts.text() == text
            assert [(t["account_id"], t["status"]) for t in post["targets"]] == [
                (account_id, "draft")
            ]
        assert len(suggested) == COUNT

        # When the hook of one is written again
        chosen = posts[0]
        again = client.post(f"/v1/posts/{chosen['id']}/regenerate", json={"part": "hook"})
        assert again.status_code == 202, again.text
        regen, _ = finished_job(client, again.json()["id"])

        # Then only its hook changed
        assert regen["status"] == "succeeded", regen["error"]
        after = client.get(f"/v1/posts/{chosen['id']}").json()
        assert after["parts"]["hook"] != chosen["parts"]["hook"]
        assert after["parts"]["body"] == chosen["parts"]["body"]
        assert after["parts"]["hashtags"] == chosen["parts"]["hashtags"]
        assert after["content"] == Parts.from_mapping(after["parts"]).text()
        assert after["version"] == chosen["version"] + 1


def test_a_published_post_cannot_be_regenerated(stack: Stack) -> None:
    with stack.client() as client:
        # Given a post that went out
        account_id = post_json(client, "/v1/accounts", {"platform": "sandbox", "handle": "out"})[
            "id"
        ]
        created = post_json(
            client,
            "/v1/posts",
            {"content": "Out already", "account_ids": [account_id], "publish_now": True},
        )

        def published() -> bool:
            return client.get(f"/v1/posts/{created['id']}").json()["status"] == "published"

        wait_for(published, timeout=20, what="the post to be published")

        # When it is asked to be written again
        response = client.post(
            f"/v1/posts/{created['id']}/regenerate",
            json={"part": "full", "preferences": {"topics": ["anything"]}},
        )

        # Then 409 says why, and no job was started for it
        assert response.status_code == 409, response.text
        assert "published post cannot be regenerated" in response.json()["error"]["message"]
        jobs = client.get("/v1/jobs", params={"kind": "content.regen.single"}).json()["data"]
        assert all(j["post_id"] != created["id"] for j in jobs)
