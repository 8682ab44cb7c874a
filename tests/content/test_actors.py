"""The content worker's actors, through Dramatiq's stub broker and a real worker: declared from
the contracts, each a thin call into herald_common.content run as a job."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import dramatiq
import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy.engine import Engine
from sqlmodel import col, select

import herald_content
from herald_common.content import OpenAIWriter, Writer
from herald_common.contracts import GENERATE_MONTHLY, REGENERATE_POST
from herald_common.db import session_scope
from herald_common.jobs import create_job, send_job
from herald_common.models import Brand, Job, Post
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_common.workers import Deps
from herald_content.actors import declare_actors

from .fake_openai import FakeChat, error, post_answer, serving
from .helpers import month_job, next_month

MakeBrand = Callable[..., Brand]


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    return sqlite_engine


@pytest.fixture
def broker() -> StubBroker:
    broker = StubBroker()
    broker.declare_queue(GENERATE_MONTHLY.queue)
    broker.declare_queue(REGENERATE_POST.queue)
    return broker


@pytest.fixture
def start(
    broker: StubBroker, engine: Engine, registry: PlatformRegistry, settings: Settings
) -> Iterator[Callable[..., dramatiq.Worker]]:
    """Declare the service's actors (with the writer given) and start a worker."""
    workers: list[dramatiq.Worker] = []

    def go(writer: Writer | None = None) -> dramatiq.Worker:
        deps = Deps(settings, broker, engine=lambda: engine, platforms=lambda: registry)
        declare_actors(broker, deps, writer=writer)
        worker = dramatiq.Worker(broker, worker_timeout=50)
        worker.start()
        workers.append(worker)
        return worker

    yield go
    for worker in workers:
        worker.stop()


def job_of(engine: Engine, job_id: str) -> Job:
    with session_scope(engine) as session:
        return session.get_one(Job, job_id)


def test_the_actors_take_their_names_and_queues_from_the_contracts(
    broker: StubBroker, start: Callable[..., dramatiq.Worker]
) -> None:
    start()

    for contract in (GENERATE_MONTHLY, REGENERATE_POST):
        actor = broker.get_actor(contract.actor_name)
        assert actor.queue_name == contract.queue
        assert actor.options["max_retries"] == contract.retry.max_retries
        assert actor.options["time_limit"] == contract.time_limit_ms


def test_a_month_and_a_regeneration_through_the_worker(
    broker: StubBroker,
    engine: Engine,
    start: Callable[..., dramatiq.Worker],
    make_brand: MakeBrand,
) -> None:
    # Given the service's worker, and a month's job sent after its commit
    worker = start()
    brand = make_brand()
    month = month_job(engine, brand, count=4)
    assert send_job(engine, broker, job_of(engine, month))

    # When the worker drains the content queue
    broker.join(GENERATE_MONTHLY.queue)
    worker.join()

    # Then the month is written
    job = job_of(engine, month)
    assert job.status == "succeeded", job.error
    assert job.result is not None and len(job.result["post_ids"]) == 4

    # And a regeneration sent on its own queue rewrites one post's hook
    post_id = job.result["post_ids"][0]
    with session_scope(engine) as session:
        before = session.get_one(Post, post_id)
        regen = create_job(
            session, brand.tenant_id, REGENERATE_POST, {"post_id": post_id, "part": "hook"}
        )
    assert send_job(engine, broker, regen)
    broker.join(REGENERATE_POST.queue)
    worker.join()
    assert job_of(engine, regen.id).status == "succeeded"
    with session_scope(engine) as session:
        after = session.get_one(Post, post_id)
    assert after.parts["hook"] != before.parts["hook"]
    assert after.parts["body"] == before.parts["body"]


def test_a_server_error_is_retried_by_dramatiq(
    broker: StubBroker,
    engine: Engine,
    start: Callable[..., dramatiq.Worker],
    make_brand: MakeBrand,
) -> None:
    # Given a chat service that fails once with a 500, then answers
    script = (error(500, "The server had an error"), post_answer("Hook.", "Body.", ["coffee"]))
    with serving(FakeChat(*script)) as chat, httpx.Client(timeout=2) as http:
        worker = start(OpenAIWriter(http, url=chat.url, model="m"))
        month = month_job(engine, make_brand(), count=1)

        # When its message is sent (with a short backoff, so the test need not wait 10 s)
        message = GENERATE_MONTHLY.message(job_of(engine, month).payload)
        broker.enqueue(message.copy(options={"min_backoff": 20, "max_backoff": 100}))
        broker.join(GENERATE_MONTHLY.queue)
        worker.join()

    # Then Dramatiq ran it a second time, which wrote the post
    job = job_of(engine, month)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert len(chat.prompts()) == 2
    with session_scope(engine) as session:
        [post] = session.exec(select(Post).where(col(Post.source_job_id) == month)).all()
    assert post.content == "Hook.\n\nBody.\n\n#coffee"


def test_a_malformed_message_is_not_retried(
    broker: StubBroker, start: Callable[..., dramatiq.Worker]
) -> None:
    worker = start()
    year, month = next_month()

    # When a message without a job arrives
    broker.enqueue(
        dramatiq.Message(
            queue_name=GENERATE_MONTHLY.queue,
            actor_name=GENERATE_MONTHLY.actor_name,
            args=(),
            kwargs={"month": month, "year": year},
            options={},
        )
    )
    broker.join(GENERATE_MONTHLY.queue, fail_fast=False)
    worker.join()

    # Then it is dead-lettered at once
    [dead] = broker.dead_letters
    assert dead.options.get("retries", 0) == 0


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_content_service_imports_no_other_service() -> None:
    # Services are run, never imported: the content worker talks to the rest through the
    # database and the contracts in herald_common only.
    root = Path(herald_content.__file__).parent
    imported = set().union(*(_imports(path) for path in root.rglob("*.py")))
    others = {name for name in imported if name.startswith("herald_")} - {
        "herald_common",
        "herald_content",
    }
    assert others == set()
    assert "herald_common" in imported
