"""`herald-admin`: operator commands — the schema, tenants and keys, secret keys, and the
queues (what the console does, for scripts). Every command prints JSON on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_api.auth import create_tenant
from herald_api.limiting import parse_limits
from herald_api.services import keys, queues
from herald_common.broker import build_broker
from herald_common.crypto import CredentialBox, CredentialsUnavailable, generate_key
from herald_common.db import create_db_engine, migrate, session_scope
from herald_common.errors import HeraldError, InvalidInput
from herald_common.models import Account, Tenant
from herald_common.queues import CLEARABLE, queue_store
from herald_common.settings import Settings, get_settings

#: Commands that read or change the broker's queues (they need Redis).
QUEUE_COMMANDS = ("queue-stats", "retry-failed", "clear-queue")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald-admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database schema up to date")
    tenant = commands.add_parser(
        "create-tenant", help="create a tenant and print its first API key (shown only once)"
    )
    tenant.add_argument("--name", required=True, help="the tenant's name")
    tenant.add_argument("--admin", action="store_true", help="give the key admin rights")
    limits = commands.add_parser(
        "set-limits", help="set a tenant's own request rate and jobs-in-flight limits"
    )
    limits.add_argument("--tenant-id", required=True)
    limits.add_argument(
        "--rate-limit",
        help="requests per API key, e.g. '100/second;3000/minute', 'unlimited', or 'default'",
    )
    limits.add_argument(
        "--max-active-jobs",
        type=int,
        help="jobs queued or running per shared queue (0: the default)",
    )
    commands.add_parser("list-tenants", help="every tenant, with its working and admin keys")
    listing = commands.add_parser("list-keys", help="API keys (never their secrets)")
    listing.add_argument("--tenant-id", help="only this tenant's keys")
    key = commands.add_parser(
        "create-key", help="a new API key for a tenant (printed once, only a hash is kept)"
    )
    key.add_argument("--tenant-id", required=True)
    key.add_argument("--name", default="default")
    key.add_argument("--admin", action="store_true", help="give the key admin rights")
    revoke = commands.add_parser(
        "revoke-key", help="revoke an API key: every API process refuses it within seconds"
    )
    revoke.add_argument("key_id", help="the key's id (list-keys shows it)")
    commands.add_parser(
        "queue-stats", help="every queue's waiting, active, delayed, failed, completed, workers"
    )
    retry = commands.add_parser(
        "retry-failed", help="put a queue's dead letters back on it, retries reset"
    )
    retry.add_argument("queue")
    retry.add_argument("--id", action="append", dest="ids", help="only this job (repeatable)")
    clear = commands.add_parser("clear-queue", help="drop a queue's jobs in one state")
    clear.add_argument("queue")
    clear.add_argument("--state", required=True, choices=[*CLEARABLE, "all"])
    commands.add_parser("generate-key", help="print a new key for HERALD_SECRET_KEYS")
    commands.add_parser(
        "rotate-credentials",
        help="re-encrypt every account's secrets with the first key of HERALD_SECRET_KEYS",
    )
    return parser


def _set_limits(engine: Engine, args: argparse.Namespace) -> int:
    values: dict[str, object] = {}
    if args.rate_limit is not None:
        rate = args.rate_limit.strip()
        if rate != "default":
            try:
                parse_limits(rate)
            except InvalidInput as exc:
                print(f"herald-admin: {exc.message}", file=sys.stderr)
                return 2
        values["rate_limit"] = None if rate == "default" else rate
    if args.max_active_jobs is not None:
        values["max_active_jobs"] = args.max_active_jobs or None
    with session_scope(engine) as session:
        tenant = session.get(Tenant, args.tenant_id)
        if tenant is None:
            print(f"herald-admin: no tenant {args.tenant_id}", file=sys.stderr)
            return 1
        for name, value in values.items():
            setattr(tenant, name, value)
        out = {"tenant_id": tenant.id, "rate_limit": tenant.rate_limit}
        out["max_active_jobs"] = tenant.max_active_jobs
    # API workers keep key rows (with these limits) for API_KEY_CACHE_SECONDS.
    print(json.dumps(out))
    return 0


def rotate_credentials(engine: Engine, box: CredentialBox, *, batch: int = 500) -> int:
    """Re-encrypt every stored secret with the box's first key; how many were rewritten.

    Each batch commits on its own, so a large table is not held in one transaction; running it
    again after an interruption is safe (a rotated token rotates to itself).
    """
    rotated, after = 0, ""
    while True:
        with session_scope(engine) as session:
            rows = session.exec(
                select(Account.id, Account.credentials)
                .where(Account.id > after, col(Account.credentials).is_not(None))
                .order_by(col(Account.id))
                .limit(batch)
            ).all()
            for account_id, token in rows:
                session.execute(
                    update(Account)
                    .where(Account.id == account_id)  # type: ignore[arg-type]
                    .values(credentials=box.rotate(token))
                )
        if not rows:
            return rotated
        rotated += len(rows)
        after = rows[-1][0]


def _print(value: Any) -> None:
    print(json.dumps(value, default=str))


def run_queue_command(args: argparse.Namespace, settings: Settings) -> int:
    """queue-stats, retry-failed and clear-queue, on the broker's queues."""
    if not settings.broker_url:
        print(
            "herald-admin: the queue commands need REDIS_URL (the queues of `make run` live "
            "in its process: use its console at /admin)",
            file=sys.stderr,
        )
        return 2
    broker = build_broker(settings)
    store = queue_store(broker)
    try:
        if args.command == "queue-stats":
            _print({"data": queues.list_queues(store, settings)})
        elif args.command == "retry-failed":
            _print(queues.retry_failed(store, args.queue, args.ids))
        else:
            _print(queues.clear(store, args.queue, args.state))
    finally:
        broker.close()
    return 0


def run_key_command(args: argparse.Namespace, engine: Engine) -> None:
    """list-tenants, list-keys, create-key and revoke-key."""
    with session_scope(engine) as session:
        if args.command == "list-tenants":
            _print({"data": keys.list_tenants(session)})
        elif args.command == "list-keys":
            _print({"data": [keys.key_fields(k) for k in keys.list_keys(session, args.tenant_id)]})
        elif args.command == "create-key":
            _print(keys.create_key(session, args.tenant_id, name=args.name, is_admin=args.admin))
        else:
            _print(keys.key_fields(keys.revoke_key(session, args.key_id)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; prints JSON on stdout, errors on stderr (exit 1)."""
    args = _parser().parse_args(argv)
    if args.command == "generate-key":
        print(generate_key())
        return 0
    settings = get_settings()
    try:
        if args.command in QUEUE_COMMANDS:
            return run_queue_command(args, settings)
        return _run_database_command(args, settings)
    except HeraldError as exc:
        print(f"herald-admin: {exc.message}", file=sys.stderr)
        return 1


def _run_database_command(args: argparse.Namespace, settings: Settings) -> int:
    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        if args.command == "migrate":
            migrate(engine)
            print(json.dumps({"migrated": True}))
        elif args.command == "create-tenant":
            name = args.name.strip()
            if not name:
                print("herald-admin: --name must not be empty", file=sys.stderr)
                return 2
            with session_scope(engine) as session:
                tenant, key = create_tenant(session, name, is_admin=args.admin)
            print(json.dumps({"tenant_id": tenant.id, "api_key": key}))
        elif args.command == "set-limits":
            return _set_limits(engine, args)
        elif args.command == "rotate-credentials":
            box = CredentialBox(settings.secret_keys)
            if not box.available:
                print("herald-admin: HERALD_SECRET_KEYS is not set", file=sys.stderr)
                return 2
            try:
                count = rotate_credentials(engine, box)
            except CredentialsUnavailable as exc:
                print(f"herald-admin: {exc.message}", file=sys.stderr)
                return 1
            print(json.dumps({"rotated": count}))
        else:
            run_key_command(args, engine)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
