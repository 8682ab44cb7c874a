"""The operator's console in a real browser (Debian's Chromium through Playwright) against the
multi-process stack on PostgreSQL and Redis: one stack, one browser, the flows one after the
other. Every request the pages make is checked: one that leaves Herald fails the test.

Chromium comes from Debian (`make debian-tools`, which `make test` runs); Playwright's own browser
download is never used. Without it the test fails, it does not skip.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from dramatiq import Message
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright
from sqlalchemy import text
from sqlalchemy.engine import Engine

from herald_common.db import create_db_engine
from herald_common.queues import RedisQueueStore
from herald_embedded.stack import Stack, wait_for
from tests.e2e.helpers import post_json
from tests.e2e.test_publish_flow import account, iso, settled

CHROMIUM = "/usr/bin/chromium"
#: TOOLS.md's flags for Chromium on these machines (no sandbox as root, nothing phoning home).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The README's screenshot, taken again when HERALD_SCREENSHOT=1 (not on every run: a test run
#: leaves the working tree as it found it).
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console-overview.png"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"{CHROMIUM} is missing: `make debian-tools` installs Debian's chromium", pytrace=False
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Guard:
    """Lets through only requests to Herald, and remembers any other the pages tried."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.outside: list[str] = []
        self.csp: list[str] = []

    def route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(self.base + "/") or url == self.base:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()


@pytest.fixture
def context(browser: Browser, stack: Stack) -> Iterator[tuple[BrowserContext, Guard]]:
    guard = Guard(stack.base_url)
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", guard.route)
    context.on(
        "console",
        lambda message: (
            guard.csp.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield context, guard
    context.close()
    # I expect no page to have asked for anything outside Herald, nor broken its own policy
    assert guard.outside == [], guard.outside
    assert guard.csp == [], guard.csp


def sign_in(page: Page, key: str) -> None:
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r".*/admin/sign-in$"))
    page.fill("#api_key", key)
    page.click("button[type=submit]")


def publish_row(page: Page, state: str) -> int:
    return int(page.locator(f'tr[data-queue="publish"] td[data-count="{state}"]').inner_text())


def tenant_of(stack: Stack, admin_key: str) -> str:
    """The tenant of the stack's own key, as the admin API lists it."""
    prefix = (stack.api_key or "").split("_")[1]
    with stack.client(admin_key) as admin:
        listed = admin.get("/v1/admin/keys").json()["data"]
    return next(k["tenant_id"] for k in listed if k["prefix"] == prefix)


def post_later(tenant: httpx.Client, account_id: str, content: str) -> dict:
    """A post on the account an hour ahead, through the API."""
    at = iso(datetime.now(UTC) + timedelta(hours=1))
    body = {"content": content, "account_ids": [account_id], "scheduled_at": at}
    return post_json(tenant, "/v1/posts", body)


def set_target(engine: Engine, target_id: str, assignments: str) -> int:
    """Put a target where a crash would have left it (test set-up); its version after."""
    with engine.begin() as connection:
        return int(
            connection.execute(
                text(f"UPDATE targets SET {assignments} WHERE id = :id RETURNING version"),
                {"id": target_id},
            ).scalar_one()
        )


def accept_dialogs(page: Page) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


def test_an_operator_runs_herald_from_the_console(
    stack: Stack, context: tuple[BrowserContext, Guard], redis_server_url: str, pg_url: str
) -> None:
    ctx, _ = context
    started = time.monotonic()
    admin_key = stack.create_tenant("operators", admin=True)
    tenant = stack.client()
    account_id = account(tenant, f"console-{uuid.uuid4().hex[:6]}")
    page = ctx.new_page()
    accept_dialogs(page)

    # A tenant's key cannot sign in
    sign_in(page, stack.api_key or "")
    expect(page.get_by_role("alert")).to_contain_text("only an admin key may sign in")
    expect(page).to_have_url(re.compile(r".*/admin/sign-in$"))

    # The admin key signs in to the overview, which reads healthy with live workers
    page.fill("#api_key", admin_key)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r".*/admin/overview$"))
    expect(page.locator('tr[data-queue="publish"]')).to_be_visible()
    completed = publish_row(page, "completed")

    # When three posts are scheduled through the API a second ahead
    at = datetime.now(UTC) + timedelta(seconds=1)
    post_ids = [
        post_json(
            tenant,
            "/v1/posts",
            {"content": f"Console {n}", "account_ids": [account_id], "scheduled_at": iso(at)},
        )["id"]
        for n in range(3)
    ]
    # Then the overview, refreshing by itself, counts them as they are published
    expect(page.locator('tr[data-queue="publish"] td[data-count="completed"]')).to_have_text(
        str(completed + 3)
    )
    for post_id in post_ids:
        wait_for(settled(tenant, post_id, "published"), timeout=10, what=post_id)
    expect(page.locator("#lateness")).not_to_have_text("— / —")

    # Given a publish message that died (a target queued, its message dead-lettered with why)
    engine = create_db_engine(pg_url)
    lost = post_later(tenant, account_id, "Back from the dead")
    target_id = lost["targets"][0]["id"]
    version = set_target(
        engine,
        target_id,
        "status = 'queued', version = version + 1, due_at = now(), queued_at = now()",
    )
    raw = redis.Redis.from_url(redis_server_url)
    dead = Message(
        queue_name="publish",
        actor_name="publish_target",
        args=(),
        kwargs={"target_id": target_id, "version": version},
        options={"redis_message_id": str(uuid.uuid4())},
    )
    xq = f"{stack.namespace}:publish.XQ"
    raw.zadd(xq, {dead.options["redis_message_id"]: int(time.time() * 1000)})
    raw.hset(f"{xq}.msgs", dead.options["redis_message_id"], dead.encode())
    store = RedisQueueStore(raw, stack.namespace)
    try:
        raise ConnectionError("database unreachable while claiming the target")
    except ConnectionError as exc:
        store.record_failed(dead, exc, attempts=3, at=time.time())
    # When the operator opens the failed publish jobs
    page.click('tr[data-queue="publish"] td[data-count="failed"] a')
    job = page.locator(f'li[data-job="{dead.options["redis_message_id"]}"]')
    # I expect its error in words and its traceback
    expect(job.locator(".error")).to_contain_text("ConnectionError: database unreachable")
    job.locator("summary", has_text="Traceback").click()
    expect(job.locator(".traceback")).to_contain_text("raise ConnectionError")
    # and once retried (after the confirmation) it runs: the post goes out
    job.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("1 dead letter(s) put back")
    wait_for(settled(tenant, lost["id"], "published"), timeout=10, what="the retried publish")
    page.goto(f"/admin/posts/{lost['id']}")
    expect(page.locator(f'[data-target="{target_id}"] .target-status')).to_have_text("published")

    # Given a target left unknown (its worker died mid-call where the platform cannot be asked)
    unsure = post_later(tenant, account_id, "Did it go out?")
    unknown_id = unsure["targets"][0]["id"]
    set_target(
        engine,
        unknown_id,
        "status = 'unknown', finished_at = now(), updated_at = now(), "
        "error = 'the worker stopped mid-call and the platform cannot be asked'",
    )
    engine.dispose()
    # When the operator finds it among the posts that need a person, and says it went out
    page.get_by_role("link", name="Needs a person").click()
    card = page.locator(f'article[data-target="{unknown_id}"]')
    expect(card.locator(".evidence")).to_contain_text("cannot be asked")
    card.locator("input[name=platform_url]").fill("https://social.example/@brand/1")
    card.get_by_role("button", name="Published", exact=True).click()
    # Then its timeline says published, and so does the API
    expect(page.get_by_role("status")).to_contain_text("target resolved")
    expect(page.locator(f'[data-target="{unknown_id}"] .target-status')).to_have_text("published")
    resolved = tenant.get(f"/v1/posts/{unsure['id']}").json()["targets"][0]
    assert resolved["platform_url"] == "https://social.example/@brand/1"

    # A key made in the console works, and once revoked there, the API refuses it
    page.get_by_role("link", name="Tenants & keys").click()
    row = page.locator(f'tr[data-tenant="{tenant_of(stack, admin_key)}"]')
    row.locator('input[name="name"]').fill("console-made")
    row.get_by_role("button", name="Create key").click()
    made = page.locator("#issued-key").inner_text().strip()
    with httpx.Client(base_url=stack.base_url, timeout=10) as api:
        auth = {"Authorization": f"Bearer {made}"}
        assert api.get("/v1/posts", headers=auth).status_code == 200
        prefix = made.split("_")[1]
        page.locator(f'tr[data-key="{prefix}"]').get_by_role("button", name="Revoke").click()
        expect(page.get_by_role("status")).to_contain_text("key revoked")
        expect(page.locator(f'tr[data-key="{prefix}"]')).to_contain_text("revoked")
        # (each API process may keep a key's row for API_KEY_CACHE_SECONDS, 5 s by default)
        wait_for(
            lambda: api.get("/v1/posts", headers=auth).status_code == 401,
            timeout=10,
            what="the revoked key to be refused",
        )

    # Cron shows when each entry fires next
    page.get_by_role("link", name="Cron").click()
    expect(page.locator("#cron")).to_contain_text("clean-up")

    # The overview fits a narrow window, and the wide one is the README's screenshot
    page.goto("/admin/overview")
    expect(page.locator("#health .verdict")).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.set_viewport_size({"width": 1280, "height": 860})
    shot = page.screenshot(full_page=True)
    assert shot.startswith(b"\x89PNG")
    if os.environ.get("HERALD_SCREENSHOT") == "1":
        SCREENSHOT.write_bytes(shot)

    # The API reference renders from Herald's own copy of Redoc
    page.goto("/docs")
    expect(page.get_by_role("heading", name=re.compile("Herald API"))).to_be_visible()
    page.get_by_role("menuitem", name="posts").click()
    expect(page.get_by_text("Schedule or reschedule a post").first).to_be_visible()
    print(f"console flows took {time.monotonic() - started:.1f} s")
