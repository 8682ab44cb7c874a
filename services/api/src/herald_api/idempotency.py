"""Idempotent creates: the `Idempotency-Key` header on every POST, as one Falcon middleware.

A client that timed out cannot know whether its create was done; sending it again with the same
key is safe. The first request with a key takes it (a row of `idempotency_keys`, tenant-scoped,
inserted before the resource runs) and, when it answers 2xx, the status, body and Location are
kept there for 24 hours. Then:

- the same key with the same request (method, path, body) gets that first answer again, with
  `Idempotent-Replayed: true`, and nothing runs a second time;
- the same key with another request is a 422 naming the header;
- a request arriving while the first is still running is a 409 (try again shortly);
- an answer other than 2xx is not kept: the key is released, so a retry runs the request again
  (an error changed nothing, and may not recur: a 409 or 429 passes, a 5xx is fixed).

A key held by a request whose process died is taken over after IN_FLIGHT_TIMEOUT, longer
than any request may run (gunicorn's worker timeout).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import falcon
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from herald_api.parsing import request_body
from herald_common.errors import Conflict, FieldError, InvalidInput
from herald_common.models import IdempotencyKey
from herald_common.models.idempotency import IDEMPOTENCY_TTL
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
TTL = IDEMPOTENCY_TTL
#: A key still held this long after it was taken belongs to a request that died.
IN_FLIGHT_TIMEOUT = timedelta(minutes=2)

_KEYS = IdempotencyKey.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Stored:
    """A first answer, as kept."""

    status_code: int
    body: str | None
    location: str | None


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What identifies a request for its key: the same key with another fingerprint is refused."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode()):
        digest.update(part + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _header_error(reason: str) -> InvalidInput:
    return InvalidInput(FieldError(HEADER, reason))


def check_key(value: str) -> str:
    """The header's value, or InvalidInput naming the header."""
    if not value or len(value) > MAX_KEY_LENGTH:
        raise _header_error(f"must be 1 to {MAX_KEY_LENGTH} characters")
    if not value.isascii() or not value.isprintable():
        raise _header_error("must be printable ASCII (a UUID is a good key)")
    return value


class IdempotencyStore:
    """The `idempotency_keys` rows: take a key, keep its answer, release it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def take(self, tenant_id: str, key: str, print_: str, now: datetime) -> Stored | None:
        """Take the key for this request (None), or the first answer to replay; Conflict while
        another request holds it, InvalidInput when it was used with another request."""
        for _ in range(3):
            try:
                with self._engine.begin() as db:
                    db.execute(
                        insert(_KEYS).values(
                            tenant_id=tenant_id, key=key, fingerprint=print_, created_at=now
                        )
                    )
                return None
            except IntegrityError:
                pass  # taken before: read what it holds
            with self._engine.begin() as db:
                row = db.execute(
                    select(_KEYS).where(_KEYS.c.tenant_id == tenant_id, _KEYS.c.key == key)
                ).first()
                if row is None:
                    continue  # released in between: take it now
                if row.created_at <= now - TTL or (
                    row.status_code is None and row.created_at <= now - IN_FLIGHT_TIMEOUT
                ):
                    # Expired, or held by a request that died: the condition on created_at
                    # lets one of several takers through.
                    taken = db.execute(
                        update(_KEYS)
                        .where(
                            _KEYS.c.tenant_id == tenant_id,
                            _KEYS.c.key == key,
                            _KEYS.c.created_at == row.created_at,
                        )
                        .values(
                            fingerprint=print_,
                            status_code=None,
                            response_body=None,
                            location=None,
                            created_at=now,
                            completed_at=None,
                        )
                    ).rowcount
                    if taken:
                        return None
                    continue
                if row.fingerprint != print_:
                    raise _header_error(
                        "was already used with another request (method, path or body); "
                        "use a new key for a new request"
                    )
                if row.status_code is None:
                    raise Conflict(
                        f"a request with this {HEADER} is still running; try again shortly"
                    )
                return Stored(row.status_code, row.response_body, row.location)
        raise Conflict(f"a request with this {HEADER} is still running; try again shortly")

    def keep(self, tenant_id: str, key: str, answer: Stored, now: datetime) -> None:
        """Keep the first answer of the request holding the key."""
        with self._engine.begin() as db:
            db.execute(
                update(_KEYS)
                .where(_KEYS.c.tenant_id == tenant_id, _KEYS.c.key == key)
                .values(
                    status_code=answer.status_code,
                    response_body=answer.body,
                    location=answer.location,
                    completed_at=now,
                )
            )

    def release(self, tenant_id: str, key: str) -> None:
        """Give the key up (the request did not succeed): a retry runs again."""
        with self._engine.begin() as db:
            db.execute(
                delete(_KEYS).where(
                    and_(
                        _KEYS.c.tenant_id == tenant_id,
                        _KEYS.c.key == key,
                        _KEYS.c.status_code.is_(None),
                    )
                )
            )


class IdempotencyMiddleware:
    """Makes every authenticated POST idempotent under an `Idempotency-Key` header.

    It runs after authentication (the key is the tenant's) and after the rate limit (a refused
    request takes no key).
    """

    def __init__(self, store: IdempotencyStore) -> None:
        self._store = store

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        value = req.get_header(HEADER)
        tenant_id = getattr(req.context, "tenant_id", None)
        if value is None or req.method != "POST" or resource is None or tenant_id is None:
            return
        key = check_key(value)
        print_ = fingerprint(req.method, req.path, req.query_string, request_body(req))
        stored = self._store.take(tenant_id, key, print_, utcnow())
        if stored is None:
            req.context.idempotency_key = key
            return
        resp.status = stored.status_code
        if stored.body is not None:
            resp.content_type = falcon.MEDIA_JSON
            resp.text = stored.body
        if stored.location:
            resp.location = stored.location
        resp.set_header("Idempotent-Replayed", "true")
        resp.complete = True

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        key = getattr(req.context, "idempotency_key", None)
        if key is None:
            return
        tenant_id = req.context.tenant_id
        try:
            if req_succeeded and 200 <= resp.status_code < 300:
                body = resp.render_body()
                answer = Stored(
                    resp.status_code,
                    body.decode() if body is not None else None,
                    resp.get_header("Location"),
                )
                self._store.keep(tenant_id, key, answer, utcnow())
            else:
                self._store.release(tenant_id, key)
        except Exception:
            # The work is done and its answer must reach the client; the key, left held, is
            # taken over after IN_FLIGHT_TIMEOUT.
            log.exception("idempotency: the answer under a key was not kept")
