"""Schemathesis over the whole OpenAPI document, in process against the WSGI app: no input
gets a 5xx, and every answer is one the document declares (status, content type, schema).

It runs against real rows (a sandbox account, a post, a brand, a webhook endpoint, a job), so
about half of the generated requests name ids that exist and reach past the 404s.
Bounded: FUZZ_EXAMPLES examples per operation, derandomized so a failure reproduces.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from falcon.testing import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from herald_api.app import create_app
from herald_api.auth import create_tenant, issue_api_key
from herald_common.broker import build_broker
from herald_common.db import create_db_engine, migrate, session_scope
from herald_common.platforms import PlatformRegistry
from tests.api.conftest import api_settings

#: Routes whose 503 says "not ready / unhealthy", as documented.
HEALTH_PATHS = {"/ready", "/v1/admin/health"}
FUZZ_EXAMPLES = int(os.environ.get("HERALD_FUZZ_EXAMPLES", "60"))


class World:
    """The app under test and the ids of real rows, by path parameter name."""

    def __init__(self, root: Path) -> None:
        self.settings = api_settings(root, approval_webhook_secret="fuzz")
        self.engine = create_db_engine(self.settings.database_url)
        migrate(self.engine)
        self.platforms = PlatformRegistry(self.engine, self.settings)
        self.app = create_app(
            self.settings,
            engine=self.engine,
            broker=build_broker(self.settings),
            platforms=self.platforms,
        )
        with session_scope(self.engine) as session:
            tenant, _ = create_tenant(session, "fuzz")
            tenant.rate_limit = "unlimited"
            # An admin key, so the /v1/admin/ routes are exercised too.
            self.key = issue_api_key(session, tenant.id, name="fuzz", is_admin=True)
            self.tenant_id = tenant.id
        self.ids = self._seed()

    def _seed(self) -> dict[str, str]:
        client = TestClient(self.app, headers={"Authorization": f"Bearer {self.key}"})

        def made(path: str, body: dict[str, Any]) -> str:
            result = client.simulate_post(path, json=body)
            assert result.status_code in (201, 202), result.json
            return str(result.json["id"])

        account = made("/v1/accounts", {"platform": "sandbox", "handle": "fuzz"})
        post = made("/v1/posts", {"content": "Fuzz", "account_ids": [account]})
        target = client.simulate_get(f"/v1/posts/{post}").json["targets"][0]["id"]
        brand = made("/v1/brands", {"name": "Fuzz"})
        job = made("/v1/analytics/pull", {})
        webhook = made(
            "/v1/webhooks", {"url": "https://hooks.example.com/h", "events": ["post.failed"]}
        )
        image = made("/v1/images", {"prompt": "Fuzz", "width": 1080, "height": 1080})
        return {
            "account_id": account,
            "post_id": post,
            "target_id": target,
            "brand_id": brand,
            "job_id": job,
            "webhook_id": webhook,
            "image_id": image,
            "tenant_id": self.tenant_id,
        }

    def close(self) -> None:
        self.platforms.close()
        self.engine.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = World(tmp_path_factory.mktemp("fuzz"))
    yield world
    world.close()


def test_no_input_gets_a_server_error_or_an_undeclared_answer(world: World) -> None:
    # Given every operation of the document, and requests generated for each
    schema = schemathesis.openapi.from_wsgi("/openapi.json", world.app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            # naming real rows about half the time
            chooser = random.Random(repr(sorted((case.path_parameters or {}).items())))
            for name in list(case.path_parameters or {}):
                if name in world.ids and chooser.random() < 0.5:
                    case.path_parameters[name] = world.ids[name]
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {world.key}"}
            # A request valid by the schema may still break a rule the schema cannot say (a
            # time in the past, an account of another platform): a 4xx, not a failure. Health
            # answers 503 by design when workers are away, as here.
            excluded = [positive_data_acceptance]
            if case.operation.path in HEALTH_PATHS:
                excluded.append(not_a_server_error)
            case.call_and_validate(excluded_checks=excluded)

        # When each is sent
        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's, not only the first
            failures.append(f"{operation.label}: {exc}")

    # I expect answers the document declares, and never a 5xx
    assert operations > 40
    assert not failures, "\n\n".join(failures)
