"""What a try left on a platform for the next one (an uploaded video, a container id): saved
while the try still owns its target, and cleared before the post's text or media change."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from herald_common.errors import Conflict
from herald_common.lifecycle.moves import stamp
from herald_common.lifecycle.states import TargetStatus
from herald_common.models import Target
from herald_common.platforms import PlatformRegistry


class CheckpointRejected(Exception):
    """Raised when a try saves a checkpoint for a target that is no longer its own."""


def checkpoint_saver(
    engine: Engine, target_id: str, claimed_version: int
) -> Callable[[Mapping[str, Any]], None]:
    """Saves what a try left on the platform, while the target is still that try's."""

    def save(state: Mapping[str, Any]) -> None:
        with engine.begin() as db:
            saved = stamp(
                db, target_id, TargetStatus.PUBLISHING, claimed_version, checkpoint=dict(state)
            )
        if not saved:
            raise CheckpointRejected(f"target {target_id} is no longer at v{claimed_version}")

    return save


def forget_checkpoints(
    session: Session,
    platforms: PlatformRegistry,
    targets: Iterable[Target],
    now: datetime,
    action: str,
) -> None:
    """Clear what earlier tries left on the platforms (it holds the old text or media) before
    `action` changes them; Conflict when one may already have made the post visible, where
    only a person can say what happened."""
    targets = list(targets)
    in_flight = [
        t for t in targets if t.checkpoint and platforms.get(t.platform).may_be_public(t.checkpoint)
    ]
    if in_flight:
        names = ", ".join(sorted({t.platform for t in in_flight}))
        raise Conflict(
            f"cannot {action}: an earlier try on {names} may already have "
            "published this post (the platform's answer was not seen); wait for it to finish, "
            "or cancel the post"
        )
    session.flush()
    for target in targets:
        if target.checkpoint and stamp(
            session, target.id, target.status, target.version, checkpoint={}, updated_at=now
        ):
            # The row is written; the loaded object says so without being flushed again.
            set_committed_value(target, "checkpoint", {})
            set_committed_value(target, "updated_at", now)
