"""The content jobs, run as the worker runs them (herald_common.jobs.run_job), on SQLite and
PostgreSQL: a month of drafts with exact progress and no duplicates after a crash, the
writers' failures classified, and one post's part written again under the post's rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_common.content import (
    Brief,
    Parts,
    TemplateWriter,
    Writer,
    generate_month,
    regenerate_post,
)
from herald_common.content.writers import OpenAIWriter
from herald_common.contracts import GENERATE_MONTHLY, REGENERATE_POST, Contract
from herald_common.db import session_scope
from herald_common.jobs import resend_stale, run_job
from herald_common.models import Brand, Job, Post, Target
from herald_common.platforms import PlatformRegistry
from herald_common.platforms.x import weighted_length
from herald_common.settings import Settings

from .fake_openai import FakeChat, completion, error, post_answer, serving
from .helpers import PARIS, month_job, next_month, regen_job

MakeBrand = Callable[..., Brand]
MakeAccount = Callable[..., str]


def run(
    engine: Engine,
    job_id: str,
    registry: PlatformRegistry,
    settings: Settings,
    writer: Writer,
    contract: Contract = GENERATE_MONTHLY,
) -> Job:
    work = generate_month if contract is GENERATE_MONTHLY else regenerate_post

    run_job(
        engine,
        contract,
        job_id,
        lambda run: work(run, registry=registry, writer=writer, settings=settings),
    )
    return job_of(engine, job_id)


def job_of(engine: Engine, job_id: str) -> Job:
    with session_scope(engine) as session:
        return session.get_one(Job, job_id)


def posts_of(engine: Engine, job_id: str) -> list[Post]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(Post).where(Post.source_job_id == job_id).order_by(col(Post.source_index))
            ).all()
        )


def targets_of(engine: Engine, post_id: str) -> list[Target]:
    with session_scope(engine) as session:
        return list(session.exec(select(Target).where(Target.post_id == post_id)).all())


class Watching:
    """The template writer, recording the job's progress and its posts each time it writes."""

    def __init__(self, engine: Engine, job_id: str, *, die_at: int | None = None) -> None:
        self.engine, self.job_id, self.die_at = engine, job_id, die_at
        self.seen: list[tuple[int, int]] = []
        self.inner = TemplateWriter()

    def write(self, brief: Brief) -> Parts:
        with session_scope(self.engine) as session:
            progress = session.get_one(Job, self.job_id).progress
            made = session.exec(
                select(func.count()).select_from(Post).where(Post.source_job_id == self.job_id)
            ).one()
        self.seen.append((progress, made))
        if brief.index == self.die_at:
            raise SystemExit("the worker was killed")
        return self.inner.write(brief)


def test_a_month_of_drafts(
    engine: Engine,
    registry: PlatformRegistry,
    settings: Settings,
    make_brand: MakeBrand,
    make_account: MakeAccount,
) -> None:
    # Given a brand whose default accounts are a sandbox and a Mastodon account
    sandbox, mastodon = make_account("sandbox", "demo"), make_account("mastodon", "m")
    brand = make_brand(default_account_ids=[sandbox, mastodon])
    job_id = month_job(engine, brand)

    # When its month is generated for the sandbox and X
    writer = Watching(engine, job_id)
    job = run(engine, job_id, registry, settings, writer)

    # Then the job succeeded with 30 posts, its progress complete
    assert job.status == "succeeded", job.error
    assert (job.progress, job.total) == (30, 30)
    posts = posts_of(engine, job_id)
    assert job.result == {
        "post_ids": [p.id for p in posts],
        "count": 30,
        "brand_id": brand.id,
        "requires_approval": False,
    }
    # and progress was exact: whenever the writer was asked (again, for a text too long),
    # it counted the posts made, one more each time
    assert all(progress == made for progress, made in writer.seen)
    assert sorted(set(writer.seen)) == [(i, i) for i in range(30)]
    # and each post is a draft of the brand, in that month, on its own minute, fitting X
    year, month = next_month()
    minutes = set()
    for index, post in enumerate(posts):
        assert (post.source_index, post.status, post.brand_id) == (index, "draft", brand.id)
        assert post.suggested_at is not None and post.scheduled_at is None
        local = post.suggested_at.astimezone(PARIS)
        assert (local.year, local.month) == (year, month)
        minutes.add(post.suggested_at.replace(second=0))
        assert weighted_length(post.content) <= 280
        assert Parts.from_mapping(post.parts).text() == post.content
        assert post.parts["topic"] in brand.topics
        # with a draft target on the sandbox account only (Mastodon was not asked for)
        assert [(t.account_id, t.status) for t in targets_of(engine, post.id)] == [
            (sandbox, "draft")
        ]
    assert len(minutes) == 30
    assert [p.suggested_at for p in posts] == sorted(p.suggested_at for p in posts)  # type: ignore[type-var]


def test_a_rerun_after_a_crash_carries_on_without_duplicates(
    engine: Engine, registry: PlatformRegistry, settings: Settings, make_brand: MakeBrand
) -> None:
    # Given a generation whose worker died while writing post 12
    brand = make_brand()
    job_id = month_job(engine, brand)
    with pytest.raises(SystemExit):
        run(engine, job_id, registry, settings, Watching(engine, job_id, die_at=12))
    assert job_of(engine, job_id).status == "running"
    first = {p.source_index: (p.id, p.suggested_at) for p in posts_of(engine, job_id)}
    assert list(first) == list(range(12))

    # When the scheduler finds it stale and it runs again
    later = datetime.now(UTC) + timedelta(hours=2)
    assert resend_stale(engine, StubBroker(), settings, later).requeued == 1
    writer = Watching(engine, job_id)
    job = run(engine, job_id, registry, settings, writer)

    # Then it made only the 18 missing posts, its progress picking up at 12
    assert job.status == "succeeded", job.error
    assert writer.seen[0] == (12, 12)
    assert sorted(set(writer.seen)) == [(i, i) for i in range(12, 30)]
    posts = posts_of(engine, job_id)
    assert [p.source_index for p in posts] == list(range(30))
    assert {p.source_index: (p.id, p.suggested_at) for p in posts[:12]} == first
    assert len({p.suggested_at for p in posts}) == 30
    assert job.result is not None and job.result["count"] == 30
    assert (job.progress, job.total) == (30, 30)


def test_drafts_of_a_brand_without_accounts_have_no_targets(
    engine: Engine, registry: PlatformRegistry, settings: Settings, make_brand: MakeBrand
) -> None:
    brand = make_brand(topics=[], requires_approval=True, timezone="America/New_York")
    job_id = month_job(engine, brand, count=5, platforms=["bluesky"])

    job = run(engine, job_id, registry, settings, TemplateWriter())

    assert job.status == "succeeded", job.error
    assert job.result is not None and job.result["requires_approval"] is True
    for post in posts_of(engine, job_id):
        assert targets_of(engine, post.id) == []
        # a brand without topics writes about itself
        assert post.parts["topic"] == "Bean There Coffee"


def test_a_deleted_brand_fails_the_job(
    engine: Engine, registry: PlatformRegistry, settings: Settings, make_brand: MakeBrand
) -> None:
    brand = make_brand()
    job_id = month_job(engine, brand)
    with session_scope(engine) as session:
        session.delete(session.get_one(Brand, brand.id))

    job = run(engine, job_id, registry, settings, TemplateWriter())

    assert job.status == "failed"
    assert "brand" in (job.error or "") and "deleted" in (job.error or "")
    assert posts_of(engine, job_id) == []


# --- with an OpenAI-compatible service ----------------------------------------------------------

KEY = "sk-live-abcdefghijklmnop1234"
GOOD = ("Fresh beans, better mornings.", "Grind just before you brew: the aroma is the flavour.")


def openai(chat: FakeChat, http: httpx.Client) -> OpenAIWriter:
    return OpenAIWriter(http, url=chat.url, model="gpt-test", api_key=KEY)


@pytest.fixture
def http() -> Any:
    with httpx.Client(timeout=2.0) as client:
        yield client


def test_a_malformed_answer_then_a_good_one_saves_the_good_one(
    engine: Engine,
    registry: PlatformRegistry,
    settings: Settings,
    make_brand: MakeBrand,
    http: httpx.Client,
) -> None:
    brand = make_brand()
    job_id = month_job(engine, brand, count=1)
    script = (completion("{not json"), post_answer(*GOOD, ["coffee", "#Mornings"]))

    with serving(FakeChat(*script)) as chat:
        job = run(engine, job_id, registry, settings, openai(chat, http))

    assert job.status == "succeeded", job.error
    [post] = posts_of(engine, job_id)
    assert post.content == f"{GOOD[0]}\n\n{GOOD[1]}\n\n#coffee #Mornings"
    assert len(chat.prompts()) == 2


def test_answers_always_malformed_fail_the_job_with_the_reason(
    engine: Engine,
    registry: PlatformRegistry,
    settings: Settings,
    make_brand: MakeBrand,
    http: httpx.Client,
) -> None:
    brand = make_brand()
    job_id = month_job(engine, brand, count=3)

    with serving(FakeChat(completion('{"hook": "only a hook"}'))) as chat:
        job = run(engine, job_id, registry, settings, openai(chat, http))

    assert job.status == "failed"
    assert "no usable answer in 3 tries" in (job.error or "")
    assert "has no body" in (job.error or "")
    assert len(chat.prompts()) == settings.content_max_attempts
    assert posts_of(engine, job_id) == []


def test_a_refused_key_fails_the_job_at_once_without_the_key(
    engine: Engine,
    registry: PlatformRegistry,
    settings: Settings,
    make_brand: MakeBrand,
    http: httpx.Client,
) -> None:
    brand = make_brand()
    job_id = month_job(engine, brand, count=3)

    with serving(FakeChat(error(401, f"Incorrect API key provided: {KEY}."))) as chat:
        job = run(engine, job_id, registry, settings, openai(chat, http))

    assert (job.status, job.attempts) == ("failed", 1)
    assert "HTTP 401" in (job.error or "") and "Incorrect API key" in (job.error or "")
    assert KEY not in (job.error or "")
    assert len(chat.prompts()) == 1


def test_a_server_error_puts_the_job_back_for_another_try(
    engine: Engine,
    registry: PlatformRegistry,
    settings: Settings,
    make_brand: MakeBrand,
    http: httpx.Client,
) -> None:
    brand = make_brand()
    job_id = month_job(engine, brand, count=2)

    with serving(FakeChat(error(500, "The server had an error"), post_answer(*GOOD, []))) as chat:
        # When the service fails the first try: the job goes back to queued, and Dramatiq's
        # retry is asked for by the exception run_job lets through
        with pytest.raises(Exception, match="HTTP 500"):
            run(engine, job_id, registry, settings, openai(chat, http))
        back = job_of(engine, job_id)
        assert (back.status, back.attempts) == ("queued", 1)
        assert "HTTP 500" in (back.error or "")

        # Then the next try writes the month
        job = run(engine, job_id, registry, settings, openai(chat, http))

    assert (job.status, job.attempts) == ("succeeded", 2)
    assert len(posts_of(engine, job_id)) == 2


# --- one post again ---------------------------------------------------------------------------


@pytest.fixture
def generated(
    engine: Engine,
    registry: PlatformRegistry,
    settings: Settings,
    make_brand: MakeBrand,
    make_account: MakeAccount,
) -> Post:
    """A generated draft with a target on a sandbox account."""
    brand = make_brand(default_account_ids=[make_account()])
    job_id = month_job(engine, brand, count=1)
    assert run(engine, job_id, registry, settings, TemplateWriter()).status == "succeeded"
    return posts_of(engine, job_id)[0]


def post_of(engine: Engine, post_id: str) -> Post:
    with session_scope(engine) as session:
        return session.get_one(Post, post_id)


@pytest.mark.parametrize("part", ["hook", "body", "hashtags"])
def test_one_part_is_written_again_and_the_others_stay(
    engine: Engine,
    registry: PlatformRegistry,
    settings: Settings,
    generated: Post,
    part: str,
) -> None:
    before = Parts.from_mapping(generated.parts)
    job_id = regen_job(engine, generated, part, hashtags=["#Espresso", "#Roastery", "#Beans"])

    job = run(engine, job_id, registry, settings, TemplateWriter(), REGENERATE_POST)

    assert job.status == "succeeded", job.error
    assert (job.progress, job.total) == (1, 1)
    after = post_of(engine, generated.id)
    parts = Parts.from_mapping(after.parts)
    assert getattr(parts, part) != getattr(before, part)
    for other in {"hook", "body", "hashtags"} - {part}:
        assert getattr(parts, other) == getattr(before, other)
    assert after.content == parts.text()
    assert weighted_length(after.content) <= 280
    assert after.version == generated.version + 1
    assert job.result == {"post_id": generated.id, "part": part, "version": after.version}


def test_a_hand_edit_made_meanwhile_is_kept(
    engine: Engine, registry: PlatformRegistry, settings: Settings, generated: Post
) -> None:
    # Given a post whose body a person rewrote after it was generated
    before = Parts.from_mapping(generated.parts)
    edited = f"{before.hook}\n\nOur own words, by hand.\n\n{' '.join(before.hashtags)}"
    with session_scope(engine) as session:
        session.execute(update(Post).where(col(Post.id) == generated.id).values(content=edited))

    # When its hook is written again
    job = run(
        engine,
        regen_job(engine, generated, "hook"),
        registry,
        settings,
        TemplateWriter(),
        REGENERATE_POST,
    )

    # Then the person's body is still there
    assert job.status == "succeeded", job.error
    after = Parts.from_mapping(post_of(engine, generated.id).parts)
    assert after.body == "Our own words, by hand."
    assert after.hook != before.hook


@pytest.mark.parametrize(
    ("target_status", "post_status", "words"),
    [
        ("published", "published", "a published post cannot be regenerated"),
        ("publishing", "scheduled", "being published right now"),
        ("draft", "pending_approval", "waiting for approval"),
        ("draft", "approved", "approved"),
    ],
)
def test_a_post_that_went_out_or_waits_for_approval_is_not_rewritten(
    engine: Engine,
    registry: PlatformRegistry,
    settings: Settings,
    generated: Post,
    target_status: str,
    post_status: str,
    words: str,
) -> None:
    # Given the job was accepted, and then the post moved on
    job_id = regen_job(engine, generated, "hook")
    with session_scope(engine) as session:
        session.execute(
            update(Target).where(col(Target.post_id) == generated.id).values(status=target_status)
        )
        session.execute(update(Post).where(col(Post.id) == generated.id).values(status=post_status))

    job = run(engine, job_id, registry, settings, TemplateWriter(), REGENERATE_POST)

    # Then the job failed saying why, and the post is as it was
    assert job.status == "failed"
    assert words in (job.error or "")
    assert post_of(engine, generated.id).content == generated.content


def test_a_post_published_while_the_writer_worked_is_left_alone(
    engine: Engine, registry: PlatformRegistry, settings: Settings, generated: Post
) -> None:
    # Given a writer during whose work the post is published
    class Slow(TemplateWriter):
        def write(self, brief: Brief) -> Parts:
            with session_scope(engine) as session:
                session.execute(
                    update(Target)
                    .where(col(Target.post_id) == generated.id)
                    .values(status="published")
                )
            return super().write(brief)

    job = run(
        engine, regen_job(engine, generated, "body"), registry, settings, Slow(), REGENERATE_POST
    )

    # Then the answer is not stored: the check under the post's lock saw the publish
    assert job.status == "failed"
    assert "a published post cannot be regenerated" in (job.error or "")
    assert post_of(engine, generated.id).content == generated.content


@pytest.mark.parametrize(
    ("stage", "status", "checkpoint_after"),
    [("uploading", "succeeded", {}), ("creating", "failed", {"stage": "creating"})],
)
def test_what_an_earlier_try_left_is_cleared_unless_it_may_be_public(
    engine: Engine,
    registry: PlatformRegistry,
    settings: Settings,
    make_brand: MakeBrand,
    make_account: MakeAccount,
    stage: str,
    status: str,
    checkpoint_after: dict[str, str],
) -> None:
    # Given a LinkedIn draft whose failed try left a checkpoint at `stage`
    page = make_account("linkedin", "page", author="urn:li:organization:1")
    brand = make_brand(default_account_ids=[page])
    month = month_job(engine, brand, count=1, platforms=["linkedin"])
    assert run(engine, month, registry, settings, TemplateWriter()).status == "succeeded"
    [post] = posts_of(engine, month)
    with session_scope(engine) as session:
        session.execute(
            update(Target)
            .where(col(Target.post_id) == post.id)
            .values(status="failed", checkpoint={"stage": stage})
        )

    # When its text is written again
    job = run(
        engine,
        regen_job(engine, post, "full"),
        registry,
        settings,
        TemplateWriter(),
        REGENERATE_POST,
    )

    # Then a try that cannot have posted is forgotten with the old text; one that may have
    # posted stops the change, for a person to resolve
    assert job.status == status, job.error
    [target] = targets_of(engine, post.id)
    assert target.checkpoint == checkpoint_after
    if status == "failed":
        assert "may already have published" in (job.error or "")
        assert post_of(engine, post.id).content == post.content
    else:
        assert post_of(engine, post.id).content != post.content
