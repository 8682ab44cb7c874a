"""Approval requests: submitting a post, deciding on it, and what the API shows of them.

This module imports nothing from `herald_api.schemas`: that package imports `ApprovalOut` from
here for `PostOut.approval`, so the bases below repeat the package's two configurations.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NotificationType = Literal["email", "whatsapp", "webhook", "both", "all"]

MAX_APPROVERS = 20
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
_PHONE_FORMATTING = re.compile(r"[\s().-]")


def phone_digits(value: str) -> str | None:
    """An international number as WhatsApp takes it (country code, digits only); None when
    `value` is not one (`+33 6 12 34 56 78` → `33612345678`)."""
    digits = _PHONE_FORMATTING.sub("", value.strip()).removeprefix("+")
    return digits if digits.isdigit() and 8 <= len(digits) <= 15 else None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ApproverIn(_Body):
    """Someone who may approve or reject: reached by email, WhatsApp, or both."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="International format with the country code, e.g. `+33612345678`.",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("is not an email address")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and phone_digits(value) is None:
            raise ValueError("must be an international number with its country code")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> ApproverIn:
        if self.email is None and self.phone is None:
            raise ValueError("give an email or a phone number")
        return self


class SubmitBody(_Body):
    """Ask for a post's approval. Absent fields come from the post's brand."""

    approvers: list[ApproverIn] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_APPROVERS,
        description="Who may decide; the brand's approvers when absent.",
    )
    notification_type: NotificationType | None = Field(
        default=None,
        description="How approvers are told: `email`, `whatsapp`, `webhook`, `both` (email and "
        "WhatsApp) or `all`; the brand's when absent, else `email`.",
    )
    webhook_url: str | None = Field(
        default=None, max_length=2000, description="For `webhook` and `all`; else the brand's."
    )
    due_at: datetime | None = Field(
        default=None,
        description="When the decision is due (reminders go before it; past it the request is "
        "flagged overdue). Default: APPROVAL_DEFAULT_DUE_SECONDS from now, or the time the "
        "post is to go out if that is sooner.",
    )
    scheduled_at: datetime | None = Field(
        default=None,
        description="When to publish once approved. Default: the time the post was scheduled "
        "for, else its suggested time; none: it stays `approved` until scheduled.",
    )
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA zone for naive `scheduled_at` and `due_at`, and for the times in "
        "the notices.",
    )
    requested_by: str | None = Field(
        default=None, max_length=320, description="Who asks (shown to the approvers)."
    )

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/?#]+", value):
            raise ValueError("must be an http or https URL with a host")
        return value


class DecisionBody(_Body):
    """An approver's decision. The app authenticates its user and says which approver acts."""

    approver: str = Field(
        min_length=1,
        max_length=320,
        description="The email or phone number of one of the request's approvers.",
    )
    comment: str | None = Field(default=None, max_length=5000)


class RejectBody(DecisionBody):
    """A rejection: the comment says what to change."""

    comment: str = Field(min_length=1, max_length=5000)  # type: ignore[assignment]


class ApproverOut(_Out):
    """An approver of a request."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None


class ApprovalOut(_Out):
    """An approval request and its outcome."""

    id: str
    status: Literal["pending", "approved", "rejected", "withdrawn"] = Field(
        description="`withdrawn`: the post was edited, taken back, canceled or deleted."
    )
    approvers: list[ApproverOut]
    notification_type: str
    webhook_url: str | None
    due_at: datetime | None
    scheduled_at: datetime | None = Field(description="When the post goes out once approved.")
    timezone: str | None
    requested_by: str | None
    requested_at: datetime
    reminded_at: datetime | None
    overdue_at: datetime | None = Field(
        description="Set when the due time passed with no decision (the post is not published)."
    )
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None = Field(
        description="The approver's comment; for a withdrawn request, why it was withdrawn."
    )
    schedule_missed: bool = Field(
        default=False,
        description="Approved after its `scheduled_at` had passed: the post is `approved` and "
        "waits to be scheduled or published.",
    )
    note: str | None = Field(default=None, description="What the decision did, in words.")

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, data: Any) -> Any:
        if isinstance(data, BaseModel) or not isinstance(data, dict):
            data = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        data = {**data}
        missed = bool(
            data.get("status") == "approved"
            and data.get("scheduled_at") is not None
            and data.get("decided_at") is not None
            and data["decided_at"] >= data["scheduled_at"]
        )
        data["schedule_missed"] = missed
        if missed:
            data["note"] = (
                "approved after the time it was to go out had passed: it is not scheduled; "
                "schedule or publish it"
            )
        elif data.get("status") == "approved" and data.get("scheduled_at") is not None:
            data["note"] = "approved: scheduled for its time"
        elif data.get("status") == "approved":
            data["note"] = "approved: not scheduled; schedule or publish it"
        elif data.get("status") == "pending" and data.get("overdue_at") is not None:
            data["note"] = "overdue: no decision by its due time; the post is not published"
        return data


class NoticeOut(_Out):
    """One message sent to an approver (or the webhook) about a request."""

    id: str
    kind: Literal["request", "reminder"]
    channel: Literal["email", "whatsapp", "webhook"]
    recipient: str
    status: str = Field(description="`sending`, `retrying`, `sent` or `failed`.")
    error: str | None
    sent_at: datetime | None
    created_at: datetime


class ApprovalDetailOut(ApprovalOut):
    """An approval request with the notices sent about it."""

    notices: list[NoticeOut] = Field(default_factory=list)


class ApprovalList(_Out):
    """A post's approval requests, newest first."""

    data: list[ApprovalDetailOut]


class SigningKeyOut(BaseModel):
    """The tenant's webhook signing key."""

    key: str = Field(description="Hex; HMAC-SHA256 key of `X-Herald-Signature`'s `v1`.")
    algorithm: str = "HMAC-SHA256"
    header: str = "X-Herald-Signature"
    format: str = "t=<unix seconds>,v1=<hex HMAC of '<t>.' + raw body>"
