"""`herald-admin`: operator commands (migrate, create a tenant and its key, manage secret keys)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_api.auth import create_tenant
from herald_api.limiting import parse_limits
from herald_common.crypto import CredentialBox, CredentialsUnavailable, generate_key
from herald_common.db import create_db_engine, migrate, session_scope
from herald_common.errors import InvalidInput
from herald_common.models import Account, Tenant
from herald_common.settings import get_settings


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; prints JSON on stdout."""
    args = _parser().parse_args(argv)
    if args.command == "generate-key":
        print(generate_key())
        return 0
    settings = get_settings()
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
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
