"""Approval end to end: gunicorn, the approval and publisher services, the scheduler, Redis,
PostgreSQL, and a real SMTP server the approver's email arrives at."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from herald_common.db import create_db_engine, session_scope
from herald_common.models import Account, Brand
from herald_embedded.stack import Stack, free_port, wait_for
from tests.approval.conftest import Mailbox
from tests.e2e.conftest import e2e_stack
from tests.e2e.helpers import post_json

JANE = {"name": "Jane", "email": "jane@example.com"}


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def stack(
    pg_url: str,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    mailbox: Mailbox,
) -> Iterator[Stack]:
    """The stack with the approval service, its email going to the test's SMTP server."""
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mailbox.port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "Herald <approvals@herald.example.com>",
        "PUBLIC_URL": "https://herald.example.com",
    }
    logdir: Path = tmp_path_factory.mktemp("approval-stack-logs")
    with e2e_stack(pg_url, redis_server_url, logdir, env) as running:
        yield running.start(services=("approval",))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def brand_requiring_approval(client: httpx.Client, pg_url: str, account_id: str) -> str:
    """A brand whose posts need Jane's approval: through /v1/brands, or written directly where
    that API is not served."""
    body = {"name": "Bag Shop", "requires_approval": True, "approvers": [JANE]}
    response = client.post("/v1/brands", json=body)
    if response.status_code == 201:
        return str(response.json()["id"])
    assert response.status_code in (404, 405), response.text
    engine = create_db_engine(pg_url)
    with session_scope(engine) as session:
        tenant_id = session.exec(select(Account.tenant_id).where(Account.id == account_id)).one()
        brand = Brand(tenant_id=tenant_id, **body)
        session.add(brand)
    engine.dispose()
    return brand.id


def test_an_approved_post_goes_out_at_its_time_and_an_unapproved_one_never(
    stack: Stack, mailbox: Mailbox, pg_url: str
) -> None:
    with stack.client() as client:
        # Given a sandbox account and a draft of a brand that requires approval
        account_id = post_json(
            client, "/v1/accounts", {"platform": "sandbox", "handle": "bagshop"}
        )["id"]
        brand_id = brand_requiring_approval(client, pg_url, account_id)
        content = "Spring sale: 20% off every bag this weekend"
        draft = post_json(
            client,
            "/v1/posts",
            {"content": content, "account_ids": [account_id], "brand_id": brand_id},
        )
        path = f"/v1/posts/{draft['id']}"

        # When it is scheduled without an approval
        soon = iso(datetime.now(UTC) + timedelta(minutes=1))
        refused = client.put(path + "/schedule", json={"scheduled_at": soon})

        # I expect 409: it needs approval
        assert refused.status_code == 409, refused.text
        assert "needs approval" in refused.json()["error"]["message"]

        # When it is submitted to Jane, to go out a few seconds from now
        at = (datetime.now(UTC) + timedelta(seconds=8)).replace(microsecond=0)
        submitted = post_json(
            client,
            path + "/submit",
            {"approvers": [JANE], "scheduled_at": iso(at), "requested_by": "sam@agency.example"},
        )

        # I expect it waiting, and Jane's email at the SMTP server with the post's text
        assert submitted["status"] == "pending_approval"
        wait_for(lambda: mailbox.messages, timeout=15, what="the approver's email")
        [message] = mailbox.messages
        assert message["To"] == "jane@example.com"
        assert message["Subject"].startswith("Approval needed (Bag Shop): Spring sale")
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert content in text
        assert f"https://herald.example.com{path}/approve" in text

        # When someone who is not an approver approves it
        stranger = client.post(path + "/approve", json={"approver": "mallory@example.com"})

        # I expect 403, and the post still waiting
        assert stranger.status_code == 403, stranger.text
        assert client.get(path).json()["status"] == "pending_approval"

        # When Jane approves it
        approved = client.post(path + "/approve", json={"approver": "jane@example.com"})

        # I expect it scheduled for its time, then published there by the publisher, once
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "scheduled"

        def published() -> dict | None:
            post = client.get(path).json()
            return post if post["status"] == "published" else None

        post = wait_for(published, timeout=30, what="the approved post published")
        published_at = datetime.fromisoformat(post["targets"][0]["published_at"])
        assert published_at >= at
        deliveries = client.get(f"/v1/accounts/{account_id}/sandbox-posts").json()["data"]
        assert [d["content"] for d in deliveries if d["outcome"] == "accepted"] == [content]

        # and the request's history shows Jane's notice sent, and her decision
        [request] = client.get(path + "/approvals").json()["data"]
        assert request["status"] == "approved"
        assert request["decided_by"] == "Jane <jane@example.com>"
        assert [(n["channel"], n["recipient"], n["status"]) for n in request["notices"]] == [
            ("email", "jane@example.com", "sent")
        ]
