"""The tables the lifecycle's Core statements are written against."""

from __future__ import annotations

from sqlalchemy import Table

from herald_common.models import Account, Attempt, Post, Target

TARGETS: Table = Target.__table__  # type: ignore[attr-defined]
POSTS: Table = Post.__table__  # type: ignore[attr-defined]
ACCOUNTS: Table = Account.__table__  # type: ignore[attr-defined]
ATTEMPTS: Table = Attempt.__table__  # type: ignore[attr-defined]
