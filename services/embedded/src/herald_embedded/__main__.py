"""`herald-embedded`: the whole system in one process, on embedded defaults (`make run`).

SQLite, Dramatiq's in-process stub broker with worker threads, the scheduler loop in a
thread and the API on a threaded WSGI server; the API's /metrics shows every part, and the
queue admin API reads the in-process queues. The one place that composes services: it is
for trying Herald and for development; production runs each service on its own.
"""

from __future__ import annotations

import json
import logging
import os
import socketserver
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dramatiq import Worker
from sqlalchemy.engine import Engine

from herald_analytics.actors import declare_actors as declare_analytics
from herald_api.app import create_app
from herald_api.auth import issue_api_key
from herald_approval.actors import declare_actors as declare_approval
from herald_common import ledger
from herald_common.broker import build_broker
from herald_common.contracts import QUEUES, queue_concurrency
from herald_common.crypto import generate_key
from herald_common.db import create_db_engine, migrate, session_scope
from herald_common.models import Account, Tenant
from herald_common.platforms import PlatformRegistry
from herald_common.queues import queue_store
from herald_common.settings import Settings, get_settings
from herald_common.stopping import stop_on_signals
from herald_common.tokens import TokenKeeper
from herald_common.webhooks import events_for
from herald_common.workers import Deps, configure_logging
from herald_content.actors import declare_actors as declare_content
from herald_image.actors import declare_actors as declare_image
from herald_publisher.actors import declare_actors as declare_publish
from herald_publisher.publishing import Publisher, publish_pacer
from herald_scheduler.__main__ import run as run_scheduler
from herald_scheduler.dispatching import Dispatcher
from herald_scheduler.observing import start_observer
from herald_token_refresher.actors import declare_actors as declare_refresh
from herald_webhooks.actors import declare_actors as declare_webhooks

log = logging.getLogger("herald_embedded")
DEMO_FILE = Path("var") / "demo.json"
KEY_FILE = Path("var") / "secret.key"


#: How long the workers' jobs in flight may take to finish once asked to stop.
STOP_TIMEOUT_MS = 10_000


class SeveralWorkers(logging.Filter):
    """Drops Dramatiq's warning that a middleware was added twice when it is a Worker's own:
    `make run` runs one Worker per queue on one broker (each with its queue's concurrency),
    and each Worker adds its middleware to the broker."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.msg.startswith("You're adding a middleware of the same type twice")
            and "_WorkerMiddleware" in record.getMessage()
        )


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """A WSGI server with a thread per request."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    """Access lines through logging instead of stderr."""

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


def ensure_secret_key(settings: Settings, path: Path = KEY_FILE) -> Settings:
    """Settings with HERALD_SECRET_KEYS: as given, else a key made on first run and kept in var/.

    So that accounts with real credentials can be tried locally; production sets the variable.
    """
    if settings.secret_keys:
        return settings
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(generate_key())
    return settings.model_copy(update={"secret_keys": path.read_text().strip()})


def ensure_demo(engine: Engine, path: Path = DEMO_FILE) -> dict[str, str]:
    """A demo tenant, key and sandbox account, made on first run and remembered in var/.

    The key is an admin key, so the same key tries the API and opens the console."""
    if path.exists():
        demo = json.loads(path.read_text())
        with session_scope(engine) as session:
            if session.get(Tenant, demo.get("tenant_id", "")) is not None:
                return demo
    with session_scope(engine) as session:
        tenant = Tenant(name="Demo")
        session.add(tenant)
        session.flush()
        key = issue_api_key(session, tenant.id, name="demo", is_admin=True)
        account = Account(tenant_id=tenant.id, platform="sandbox", handle="demo")
        session.add(account)
        session.flush()
        demo = {"tenant_id": tenant.id, "api_key": key, "account_id": account.id}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(demo))
    return demo


def main() -> None:
    """Run the API, the scheduler and every worker service in this process until Ctrl-C."""
    settings: Settings = get_settings()
    if settings.broker_url:
        raise SystemExit("herald-embedded runs on the in-process broker: unset REDIS_URL")
    if "log_format" not in settings.model_fields_set:  # lines for people, unless asked
        settings = settings.model_copy(update={"log_format": "text"})
    configure_logging(settings)
    stop = threading.Event()
    stop_on_signals(stop)
    settings = ensure_secret_key(settings)
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    broker = build_broker(settings)
    broker.logger.addFilter(SeveralWorkers())
    ledger.add_to(broker, settings.heartbeat_interval_seconds)
    platforms = PlatformRegistry(engine, settings)
    publisher = Publisher(
        engine=engine,
        platforms=platforms,
        settings=settings,
        pacer=publish_pacer(broker, settings),
        events=events_for(engine, broker, settings),
    )
    keeper = TokenKeeper(
        engine=engine,
        platforms=platforms,
        settings=settings,
        events=events_for(engine, broker, settings),
    )
    declare_publish(broker, lambda: publisher)
    declare_refresh(broker, lambda: keeper)
    deps = Deps(
        settings=settings, broker=broker, engine=lambda: engine, platforms=lambda: platforms
    )
    for declare in (
        declare_content,
        declare_approval,
        declare_image,
        declare_analytics,
        declare_webhooks,
    ):
        declare(broker, deps)
    # One Worker per queue, each with that queue's own concurrency, as the services run.
    workers = [
        Worker(
            broker,
            queues={queue},
            worker_threads=queue_concurrency(settings, queue),
            worker_timeout=100,
        )
        for queue in QUEUES
    ]
    for worker in workers:
        worker.start()

    dispatcher = Dispatcher(engine=engine, broker=broker, platforms=platforms, settings=settings)
    scheduler = threading.Thread(
        target=run_scheduler,
        args=(dispatcher, stop, settings.scheduler_tick_seconds),
        name="scheduler",
        daemon=True,
    )
    scheduler.start()
    start_observer(engine, queue_store(broker), settings, stop)

    app = create_app(settings, engine=engine, broker=broker, platforms=platforms)
    server = make_server(
        settings.api_host,
        settings.api_port,
        app,
        server_class=ThreadingWSGIServer,
        handler_class=QuietHandler,
    )
    demo = ensure_demo(engine)
    base = f"http://{settings.api_host}:{settings.api_port}"
    print(banner(base, demo), flush=True)

    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="api", daemon=True
    )
    serving.start()
    try:
        while not stop.wait(0.5) and serving.is_alive():
            pass
    finally:
        stop.set()
        server.shutdown()
        scheduler.join(timeout=5)
        # Jobs in flight finish; what has not started stays on the in-process queues. All the
        # workers at once: each waits up to a worker_timeout for its idle threads.
        stopping = [
            threading.Thread(target=worker.stop, kwargs={"timeout": STOP_TIMEOUT_MS})
            for worker in workers
        ]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        server.server_close()
        log.info("stopped")


def banner(base: str, demo: dict[str, str]) -> str:
    """What a new user sees: where things are, their key, and a post to try."""
    key = demo["api_key"]
    return f"""
Herald is running (embedded: SQLite, in-process broker, sandbox platform).
  API      {base}        docs {base}/docs
  Console  {base}/admin  (sign in with this admin key)
  API key  {key}
  account  {demo["account_id"]}  (sandbox @demo)

Schedule a post 10 seconds from now:
  curl -s -X POST {base}/v1/posts \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d "{{\\"content\\": \\"Hello from Herald\\", \\"account_ids\\": [\\"{demo["account_id"]}\\"], \\"scheduled_at\\": \\"$(date -u -d '+10 seconds' +%Y-%m-%dT%H:%M:%SZ)\\"}}"
See it go out:
  curl -s {base}/v1/accounts/{demo["account_id"]}/sandbox-posts -H "Authorization: Bearer {key}"
""".rstrip()


if __name__ == "__main__":
    os.environ.setdefault("HERALD_ENV", "development")
    main()
