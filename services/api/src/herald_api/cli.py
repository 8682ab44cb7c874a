"""`herald-admin`: operator commands (migrate the database, create a tenant and its key)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from herald_api.auth import create_tenant
from herald_common.db import create_db_engine, migrate, session_scope
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; prints JSON on stdout."""
    args = _parser().parse_args(argv)
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
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
