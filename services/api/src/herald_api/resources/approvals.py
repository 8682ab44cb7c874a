"""Approvals: submit a post for approval, approve or reject it, and read its requests."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_body, request_body
from herald_api.routing import Operation, Route
from herald_api.schemas import PostDetailOut
from herald_api.schemas.approvals import (
    ApprovalDetailOut,
    ApprovalList,
    ApprovalOut,
    DecisionBody,
    NoticeOut,
    RejectBody,
    SigningKeyOut,
    SubmitBody,
)
from herald_api.services import approvals, posts
from herald_common.db import session_scope
from herald_common.errors import Conflict
from herald_common.notify import tenant_signing_key
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_common.webhooks import event_id, events_for


class ApprovalActions:
    """/v1/posts/{post_id}/submit, /approve and /reject"""

    def __init__(
        self, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._platforms = platforms
        self._settings = settings
        self._events = events_for(engine, broker, settings)

    def _emit(self, tenant_id: str, event_type: str, out: PostDetailOut) -> None:
        """Tell the tenant's webhooks (after the change committed)."""
        approval = out.approval.model_dump(mode="json") if out.approval is not None else {}
        data = {"post_id": out.id, "post_status": out.status, "approval": approval}
        self._events.emit(tenant_id, event_type, data, id=event_id(approval.get("id"), event_type))

    def on_post_submit(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        # Every field has a default (the brand's): the body may be left out.
        body = parse_body(req, SubmitBody) if request_body(req) else SubmitBody()
        with session_scope(self._engine) as session:
            post, approval = approvals.submit(
                session,
                req.context.tenant_id,
                post_id,
                body,
                settings=self._settings,
                addresses=self._platforms.addresses,
            )
            out = posts.describe_detail(session, post)
        # Committed: only now may the approvers be told.
        approvals.send_request(self._engine, self._broker, approval)
        self._emit(req.context.tenant_id, "approval.requested", out)
        resp.media = out.model_dump(mode="json")

    def on_post_approve(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        body = parse_body(req, DecisionBody)
        with session_scope(self._engine) as session:
            post = approvals.approve(
                session, req.context.tenant_id, post_id, body, platforms=self._platforms
            )
            out = posts.describe_detail(session, post)
        self._emit(req.context.tenant_id, "approval.approved", out)
        resp.media = out.model_dump(mode="json")

    def on_post_reject(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        body = parse_body(req, RejectBody)
        with session_scope(self._engine) as session:
            post = approvals.reject(session, req.context.tenant_id, post_id, body)
            out = posts.describe_detail(session, post)
        self._emit(req.context.tenant_id, "approval.rejected", out)
        resp.media = out.model_dump(mode="json")


class ApprovalHistory:
    """/v1/posts/{post_id}/approvals"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        with session_scope(self._engine) as session:
            rows = approvals.history(session, req.context.tenant_id, post_id)
            page = ApprovalList(
                data=[
                    ApprovalDetailOut.model_validate(
                        {
                            **ApprovalOut.model_validate(approval).model_dump(),
                            "notices": [NoticeOut.model_validate(n) for n in notices],
                        }
                    )
                    for approval, notices in rows
                ]
            )
        resp.media = page.model_dump(mode="json")


def routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """The approvals routes."""
    actions = ApprovalActions(engine, broker, platforms, settings)
    post_path = "/v1/posts/{post_id}"
    who = (
        " The tenant's API key authenticates the app; the app authenticates its own users and "
        "says which approver acts (`approver`: the email or phone number the request names)."
    )
    return [
        Route(
            post_path + "/submit",
            actions,
            (
                Operation(
                    "post",
                    "Submit a post for approval",
                    PostDetailOut,
                    body=SubmitBody,
                    errors=(409, 422),
                    description="The post becomes `pending_approval` (a scheduled post comes "
                    "off the schedule; its time is kept as the request's `scheduled_at`) and "
                    "its approvers are told by email, WhatsApp or webhook. Absent fields come "
                    "from the post's brand. A post that waits cannot be scheduled or published; "
                    "editing its text, media or brand, taking it back to draft, canceling or "
                    "deleting it withdraws the request. The body may be left out.",
                ),
            ),
            suffix="submit",
            tag="approvals",
        ),
        Route(
            post_path + "/approve",
            actions,
            (
                Operation(
                    "post",
                    "Approve a post waiting for approval",
                    PostDetailOut,
                    body=DecisionBody,
                    errors=(403, 409, 422),
                    description="With the request's `scheduled_at` still ahead, the post is "
                    "scheduled for it (each platform's rules apply); without one, or when it "
                    "passed while the request waited (`approval.schedule_missed`), the post is "
                    "`approved` and waits to be scheduled or published." + who,
                ),
            ),
            suffix="approve",
            tag="approvals",
        ),
        Route(
            post_path + "/reject",
            actions,
            (
                Operation(
                    "post",
                    "Reject a post waiting for approval",
                    PostDetailOut,
                    body=RejectBody,
                    errors=(403, 409, 422),
                    description="The post is a draft again; the comment (required) is kept on "
                    "the request." + who,
                ),
            ),
            suffix="reject",
            tag="approvals",
        ),
        Route(
            post_path + "/approvals",
            ApprovalHistory(engine),
            (
                Operation(
                    "get",
                    "A post's approval requests, newest first, with the notices sent",
                    ApprovalList,
                ),
            ),
            tag="approvals",
        ),
        Route(
            "/v1/webhooks/signing-key",
            SigningKey(settings),
            (
                Operation(
                    "get",
                    "The key this tenant's webhook events are signed with",
                    SigningKeyOut,
                    errors=(409,),
                    description="`X-Herald-Signature: t=<unix seconds>,v1=<hex>` is the "
                    "HMAC-SHA256 of `<t>.` and the raw body under this key. Check it in "
                    "constant time and refuse a `t` older than five minutes. The key is the "
                    "tenant's own: no other tenant can sign its events. 409 when the operator "
                    "has not set APPROVAL_WEBHOOK_SECRET (events are then unsigned).",
                ),
            ),
            tag="approvals",
        ),
    ]


class SigningKey:
    """GET /v1/webhooks/signing-key"""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        secret = self._settings.approval_webhook_secret
        if not secret:
            raise Conflict(
                "webhook events are not signed: the operator has not set APPROVAL_WEBHOOK_SECRET"
            )
        key = tenant_signing_key(secret, req.context.tenant_id)
        resp.media = SigningKeyOut(key=key).model_dump(mode="json")
