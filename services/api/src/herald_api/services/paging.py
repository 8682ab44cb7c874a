"""Keyset pages over a tenant's rows, newest first: (created_at desc, id desc) with an opaque
cursor, so a page costs the same however deep it is and rows added meanwhile are not skipped."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import Session, col
from sqlmodel.sql.expression import SelectOfScalar

from herald_common.errors import FieldError, InvalidInput

RowT = TypeVar("RowT")


def encode_cursor(row: Any) -> str:
    """An opaque cursor pointing just after `row` in (created_at desc, id desc) order."""
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor points after; InvalidInput naming `cursor` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(row_id, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput(FieldError("cursor", "is not a cursor this API gave out")) from None
    return when, row_id


def newest_first(
    session: Session,
    query: SelectOfScalar[RowT],
    model: Any,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[RowT], str | None]:
    """One page of `query` (already scoped to its tenant) and the cursor of the next page."""
    if cursor:
        created_at, row_id = decode_cursor(cursor)
        query = query.where(
            or_(
                col(model.created_at) < created_at,
                and_(col(model.created_at) == created_at, col(model.id) < row_id),
            )
        )
    query = query.order_by(col(model.created_at).desc(), col(model.id).desc()).limit(limit + 1)
    rows = list(session.exec(query).all())
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor
