"""Starting jobs from the API and reading them back, scoped to the tenant."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dramatiq.broker import Broker
from pydantic import ValidationError
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from herald_api.services.paging import newest_first
from herald_common.contracts import CONTRACTS, Contract, send
from herald_common.db import is_sqlite, session_scope
from herald_common.errors import (
    FieldError,
    InvalidInput,
    NotFound,
    TooManyRequests,
    UpstreamUnavailable,
    field_errors,
)
from herald_common.jobs import contract_of, create_job, send_job
from herald_common.models import Brand, Job, JobStatus, Post, Tenant


def start_job(
    engine: Engine,
    broker: Broker,
    tenant_id: str,
    contract: Contract,
    prepare: Callable[[Session], Mapping[str, Any]],
    *,
    max_active: int,
    brand_id: str | None = None,
    post_id: str | None = None,
    total: int | None = None,
) -> Job:
    """Accept a job: `prepare` checks the request against the database (raising NotFound,
    Conflict or InvalidInput before anything is written) and returns the message's payload;
    the job is written in the same transaction, then sent after it commits. TooManyRequests
    when the tenant already has `max_active` jobs queued or running on the contract's queue.

    With the broker away the job is still accepted (and the scheduler sends it later).
    """
    with session_scope(engine) as session:
        payload = prepare(session)
        _check_active(session, tenant_id, contract, max_active)
        job = create_job(
            session, tenant_id, contract, payload, brand_id=brand_id, post_id=post_id, total=total
        )
    send_job(engine, broker, job)
    return job


def _check_active(session: Session, tenant_id: str, contract: Contract, max_active: int) -> None:
    """TooManyRequests when the tenant holds `max_active` jobs queued or running on the
    contract's queue: one tenant must not fill a queue that every tenant's work shares.

    On PostgreSQL the tenant's row is locked first, so two requests at once cannot both take
    the last place (SQLite holds one writer at a time anyway)."""
    if not is_sqlite(session.get_bind()):  # type: ignore[arg-type]
        session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
    kinds = [c.job_name for c in CONTRACTS if c.queue == contract.queue]
    active = session.execute(
        select(func.count())
        .select_from(Job)
        .where(
            Job.tenant_id == tenant_id,
            Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),  # type: ignore[attr-defined]
            Job.kind.in_(kinds),  # type: ignore[attr-defined]
        )
    ).scalar_one()
    if active >= max_active:
        raise TooManyRequests(
            f"this tenant already has {active} jobs queued or running on the {contract.queue} "
            f"queue, its limit ({max_active}); try again when some have finished",
            retry_after=30,
        )


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job; NotFound for anyone else's."""
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise NotFound(f"no job {job_id}")
    return job


def list_jobs(
    session: Session,
    tenant_id: str,
    *,
    kind: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Job], str | None]:
    """One page of the tenant's jobs, newest first."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    return newest_first(session, query, Job, limit=limit, cursor=cursor)


def enqueue_test_job(
    engine: Engine, broker: Broker, job_name: str, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """Seed 003's test endpoints: one message of `job_name` with `payload` (which names its
    tenant). Jobs that keep a record get one, as if a client had started them."""
    contract = contract_of(job_name)
    tenant_id = payload.get("tenant_id")
    if not isinstance(tenant_id, str):
        raise InvalidInput(FieldError("tenant_id", "is required"))
    job_id: str | None = None
    with session_scope(engine) as session:
        if session.get(Tenant, tenant_id) is None:
            raise InvalidInput(FieldError("tenant_id", "no such tenant"))
        if "job_id" in contract.payload.model_fields:
            fields = {k: v for k, v in payload.items() if k not in ("tenant_id", "job_id")}
            job = create_job(session, tenant_id, contract, fields)
            message, job_id = job.payload, job.id
            _check_owned(session, tenant_id, message)  # raising rolls the job back
        else:
            try:
                message = contract.payload.model_validate(payload, strict=False).model_dump(
                    mode="json"
                )
            except ValidationError as exc:
                raise InvalidInput(field_errors(exc)) from None
            _check_owned(session, tenant_id, message)
    # Committed: only now may the message go out.
    return _test_out(contract, _send(broker, contract, message), job_id)


#: Ids a test job's payload may name, and the rows they must be of the payload's tenant.
_OWNED: dict[str, type[Brand] | type[Post]] = {"brand_id": Brand, "post_id": Post}


def _check_owned(session: Session, tenant_id: str, payload: Mapping[str, Any]) -> None:
    """InvalidInput naming an id of the payload that is not the tenant's: the job would run as
    that tenant and could only fail."""
    for field, model in _OWNED.items():
        value = payload.get(field)
        if not isinstance(value, str):
            continue
        row = session.get(model, value)
        if row is None:
            raise InvalidInput(FieldError(field, f"no {field[:-3]} {value}"))
        if row.tenant_id != tenant_id:
            raise InvalidInput(
                FieldError(field, f"belongs to another tenant than {tenant_id} (tenant_id)")
            )


def _send(broker: Broker, contract: Contract, payload: Any) -> str:
    try:
        return send(broker, contract, payload).message_id
    except Exception as exc:
        raise UpstreamUnavailable(f"the broker is unreachable ({type(exc).__name__})") from None


def _test_out(contract: Contract, message_id: str, job_id: str | None) -> dict[str, Any]:
    return {
        "job_name": contract.job_name,
        "queue": contract.queue,
        "actor_name": contract.actor_name,
        "message_id": message_id,
        "job_id": job_id,
    }
