"""Changing a post's text from a writer's parts, under the same rules as an edit through the
API (herald_api.services.posts.update_post): the post and then its targets locked, nothing
that went out (or may have) changed, every platform's text limits met, what an earlier try
left on a platform cleared, the version bumped.

It lives here, not in the API, because the content worker changes the post and services are
never imported by other services. Two rules differ on purpose: only text rules are checked
(the writer controls the text; media rules are checked when the post is scheduled, so a draft
meant for Instagram can be rewritten before its image exists), and a post waiting for approval
or approved is not rewritten (its approvers decided on its text).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from herald_common.content.composing import PARTS, Parts, TextRules, parts_of, shorten
from herald_common.content.writers import Scope
from herald_common.errors import Conflict, FieldError, InvalidInput, NotFound
from herald_common.lifecycle import SENT_STATES, forget_checkpoints, is_member, lock_post
from herald_common.models import (
    Account,
    Approval,
    ApprovalStatus,
    Job,
    Post,
    PostStatus,
    Target,
    TargetStatus,
)
from herald_common.platforms import PlatformRegistry


def refusal(post: Post, targets: Sequence[Target], approval: str | None = None) -> str | None:
    """Why the post's text may not be regenerated now, or None when it may; `approval` is
    the status of its latest approval request (`latest_approval_status`)."""
    sent = Counter(t.status for t in targets if t.status in SENT_STATES)
    if sent or post.status in (PostStatus.PUBLISHED, PostStatus.PARTIALLY_PUBLISHED):
        members = sum(1 for t in targets if is_member(t))
        words = [
            f"a published post cannot be regenerated (published to "
            f"{sent.get(TargetStatus.PUBLISHED, 0)} of {members} accounts"
        ]
        if sent.get(TargetStatus.PUBLISHING):
            words.append(f"{sent[TargetStatus.PUBLISHING]} being published right now")
        if sent.get(TargetStatus.UNKNOWN):
            words.append(f"{sent[TargetStatus.UNKNOWN]} in an unknown state")
        return ", ".join(words) + "); create a new post instead"
    if post.status == PostStatus.PENDING_APPROVAL or approval == ApprovalStatus.PENDING:
        return (
            "the post is waiting for approval: regenerating it would change the text its "
            "approvers are reviewing"
        )
    if post.status == PostStatus.APPROVED or approval == ApprovalStatus.APPROVED:
        # Also once approved and scheduled: the text that goes out must be the approved one.
        return (
            "the post is approved: regenerating it would change the text that was approved "
            "(edit it instead, which withdraws the approval, then submit it again)"
        )
    return None


def latest_approval_status(session: Session, post_id: str) -> str | None:
    """The status of the post's latest approval request, None when it never had one."""
    return session.exec(
        select(Approval.status)
        .where(Approval.post_id == post_id)
        .order_by(col(Approval.requested_at).desc())
        .limit(1)
    ).first()


def post_targets(session: Session, post_id: str, *, lock: bool = False) -> list[Target]:
    """The post's targets (locked for update after the post, when asked)."""
    query = (
        select(Target)
        .where(Target.post_id == post_id)
        .order_by(col(Target.id))
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return list(session.exec(query).all())


def live_accounts(session: Session, targets: Iterable[Target]) -> list[Account]:
    """The live accounts of the targets that are still the post's, in target order."""
    ids = [t.account_id for t in targets if is_member(t)]
    if not ids:
        return []
    rows = session.exec(
        select(Account).where(col(Account.id).in_(ids), col(Account.deleted_at).is_(None))
    ).all()
    found = {account.id: account for account in rows}
    return [found[i] for i in ids if i in found]


def platforms_meant(session: Session, post: Post, targets: Iterable[Target]) -> list[str]:
    """The platforms a post's text must suit: its accounts', and those of the generation that
    wrote it (a draft may have no account yet)."""
    names = [t.platform for t in targets if is_member(t)]
    if post.source_job_id:
        job = session.get(Job, post.source_job_id)
        if job is not None:
            names += [str(p) for p in job.payload.get("platforms") or ()]
    return list(dict.fromkeys(names))


def rewrite_post(
    session: Session,
    tenant_id: str,
    post_id: str,
    written: Parts,
    scope: Scope,
    *,
    registry: PlatformRegistry,
    now: datetime,
) -> Post:
    """Put the writer's `scope` (one part, or the whole post) into the post as it is now.

    The other parts are read from the post at this moment (a person may have edited it while
    the writer worked), and only the written part is cut if the whole no longer fits.
    NotFound, Conflict or InvalidInput when it cannot be done; nothing is written then.
    """
    post = lock_post(session, post_id)
    if post is None or post.tenant_id != tenant_id:
        raise NotFound(f"the post {post_id} was deleted")
    targets = post_targets(session, post.id, lock=True)
    if reason := refusal(post, targets, latest_approval_status(session, post.id)):
        raise Conflict(reason)
    rules = TextRules.of(
        registry,
        platforms_meant(session, post, targets),
        live_accounts(session, targets),
        tenant_id=tenant_id,
    )
    current = parts_of(post.content, post.parts)
    parts = written if scope == "full" else current.with_part(scope, written)
    fitted = shorten(parts, rules, PARTS if scope == "full" else (scope,))
    if fitted is None:
        problems = rules.problems(parts.text())
        raise InvalidInput(FieldError("content", f"the new {scope} does not fit: {problems[0]}"))
    forget_checkpoints(session, registry, targets, now, f"rewrite its {scope}")
    post.content = fitted.text()
    post.parts = fitted.as_dict()
    post.version += 1
    post.updated_at = now
    session.add(post)
    session.flush()
    return post
