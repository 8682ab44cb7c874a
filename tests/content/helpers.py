"""Starting content jobs as the API would (the row, with its checked payload)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from herald_common.contracts import GENERATE_MONTHLY, REGENERATE_POST
from herald_common.db import session_scope
from herald_common.jobs import create_job
from herald_common.models import Brand, Post

PARIS = ZoneInfo("Europe/Paris")


def next_month() -> tuple[int, int]:
    """(year, month) of next month in Paris: always wholly ahead."""
    today = datetime.now(PARIS)
    return (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)


def month_job(engine: Engine, brand: Brand, count: int = 30, **fields: Any) -> str:
    """A queued content.generate.monthly job for next month (sandbox and X by default)."""
    year, month = next_month()
    payload = {
        "brand_id": brand.id,
        "month": month,
        "year": year,
        "count": count,
        "platforms": ["sandbox", "x"],
        **fields,
    }
    with session_scope(engine) as session:
        job = create_job(session, brand.tenant_id, GENERATE_MONTHLY, payload, total=count)
    return job.id


def regen_job(engine: Engine, post: Post, part: str, **preferences: Any) -> str:
    """A queued content.regen.single job for one part of the post."""
    payload = {"post_id": post.id, "part": part, "preferences": preferences}
    with session_scope(engine) as session:
        job = create_job(session, post.tenant_id, REGENERATE_POST, payload, post_id=post.id)
    return job.id
