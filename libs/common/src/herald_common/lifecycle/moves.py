"""The one compare-and-set every writer of a target goes through.

A move is one UPDATE conditioned on the state (and, for one target, the version) that was
read; zero rows means somebody else moved it first, and the caller does nothing. A move to
another state, or one that `bump`s, increases the version, so any message or request that
carries the old version then finds nothing to do. The table of `states.TRANSITIONS` is checked
before anything is sent to the database.

The statements are SQLAlchemy Core on the `targets` table, not ORM updates: the hot ones are
built once per shape and then only executed, which costs a fraction of building a statement
on every call (the publisher makes thousands of these a second).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from sqlalchemy import ColumnElement, bindparam, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql import Executable
from sqlalchemy.sql.expression import ClauseElement, Update

from herald_common.lifecycle.states import check_move
from herald_common.lifecycle.tables import POSTS, TARGETS


class Executor(Protocol):
    """What moves run on: a Connection (the publisher) or a Session (the API), in a
    transaction the caller owns."""

    def execute(self, statement: Executable, params: Any = ..., /) -> Any: ...


_CACHE: dict[tuple[Any, ...], Update] = {}


def _statement(keys: tuple[str, ...], add: tuple[tuple[str, int], ...], lock_post: bool) -> Update:
    """UPDATE targets SET status, version, <keys>, <counters> WHERE id, status, version (and the
    post locked first): built once per shape."""
    shape = (keys, add, lock_post)
    statement = _CACHE.get(shape)
    if statement is None:
        c = TARGETS.c
        conditions = [
            c.id == bindparam("w_id"),
            c.status == bindparam("w_status"),
            c.version == bindparam("w_version"),
        ]
        if lock_post:
            conditions.append(c.post_id.in_(_locked_post()))
        statement = (
            update(TARGETS)
            .where(*conditions)
            .values(
                status=bindparam("v_status"),
                version=bindparam("v_version"),
                **{key: bindparam(f"v_{key}") for key in keys},
                **{key: c[key] + n for key, n in add},
            )
        )
        _CACHE[shape] = statement
    return statement


def _locked_post() -> Any:
    """The post row (bound as `w_post_id`), locked for update (SQLite renders no lock: its
    transactions hold the whole database)."""
    return select(POSTS.c.id).where(POSTS.c.id == bindparam("w_post_id")).with_for_update()


def move(
    db: Executor,
    target_id: str,
    status: str,
    version: int,
    to: str | None = None,
    *,
    bump: bool = True,
    where: Iterable[ColumnElement[bool]] = (),
    lock_post: str | None = None,
    add: Mapping[str, int] | None = None,
    **values: Any,
) -> bool:
    """Move one target from `status` at `version` to `to` (default: the same state), setting
    `values` and adding `add` to counters; False when it was no longer there to move.

    The version goes up by one unless the target stays in its state and `bump` is False (a
    checkpoint, a new stamp). With `lock_post` (the target's post id) the same statement first
    locks the post row, keeping the lock order (post, then targets) of everyone who derives the
    post's status, so the caller may derive it next.
    """
    to = to or status
    moves = bump or to != status
    if moves:  # an edit that leaves state and version alone (a stamp) is no move
        check_move(status, to)
    new_version = version + 1 if moves else version
    params = {f"v_{key}": value for key, value in values.items()}
    params.update(w_id=target_id, w_status=status, w_version=version, v_status=to)
    params["v_version"] = new_version
    if lock_post is not None:
        params["w_post_id"] = lock_post
    extra = list(where)
    if extra or any(isinstance(v, ClauseElement) for v in values.values()):
        # An unusual shape (an extra condition, an expression): built for this call.
        c = TARGETS.c
        conditions = [c.id == target_id, c.status == status, c.version == version, *extra]
        if lock_post is not None:
            conditions.append(c.post_id.in_(_locked_post()))
        counters = {key: c[key] + n for key, n in (add or {}).items()}
        statement = (
            update(TARGETS)
            .where(*conditions)
            .values(status=to, version=new_version, **values, **counters)
        )
        result: CursorResult[Any] = db.execute(
            statement, {"w_post_id": lock_post} if lock_post else {}
        )
        return result.rowcount > 0
    shape = _statement(tuple(sorted(values)), tuple(sorted((add or {}).items())), bool(lock_post))
    result = db.execute(shape, params)
    return result.rowcount > 0


def move_where(
    db: Executor,
    from_states: Iterable[str],
    to: str | None,
    *conditions: ColumnElement[bool],
    bump: bool = True,
    **values: Any,
) -> int:
    """Move every target in one of `from_states` that meets `conditions` (to `to`, or each
    keeping its state when None); how many moved. For changes made to many targets at once
    (an account's held targets released, say): each row is still moved only from a state it
    is in when the UPDATE reaches it."""
    states = list(from_states)
    if bump or to is not None:
        for state in states:
            check_move(state, to or state)
    c = TARGETS.c
    changes: dict[str, Any] = dict(values)
    if to is not None:
        changes["status"] = to
    if bump or to is not None:
        changes["version"] = c.version + 1
    result: CursorResult[Any] = db.execute(
        update(TARGETS).where(c.status.in_(states), *conditions).values(**changes)
    )
    return result.rowcount


def stamp(db: Executor, target_id: str, status: str, version: int, **values: Any) -> bool:
    """Set `values` on a target still in `status` at `version`, leaving both as they are (in
    any state: a stamp moves nothing)."""
    return move(db, target_id, status, version, bump=False, **values)
