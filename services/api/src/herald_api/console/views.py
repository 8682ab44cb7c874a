"""The console's pages and actions. Each resource reads through the services the admin API
uses (queues, health, posts, keys) and renders a Jinja2 template; each action checks the
session and its CSRF token, acts, and redirects back (POST, redirect, GET)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import falcon
import jinja2
from dramatiq.broker import Broker
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from herald_api.console import sessions
from herald_api.console.sessions import Operator, Sessions
from herald_api.schemas import ResolveBody
from herald_api.services import console, keys, posts, queues
from herald_common.db import session_scope
from herald_common.errors import FieldError, Forbidden, HeraldError, InvalidInput, NotFound
from herald_common.models import Post
from herald_common.queues import CLEARABLE, STATES, queue_names, queue_store
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

#: Only Herald's own assets, no inline script or style, no framing, forms to itself.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MAX_FORM_BYTES = 64 * 1024
#: What an action did, as the page after it says it (`done=<what>:<count>`).
DONE = {
    "retried": "{n} dead letter(s) put back on the queue",
    "cleared": "{n} job(s) cleared",
    "resolved": "target resolved",
    "post-retried": "failed targets sent again",
    "revoked": "key revoked",
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _pretty(value: Any) -> str:
    return json.dumps(console.mask(value), indent=2, default=str, ensure_ascii=False)


def templates() -> jinja2.Environment:
    """The console's templates, autoescaped, with its filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("herald_api.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(when=_when, age=_age, pretty=_pretty)
    return env


class Console:
    """What every console resource shares: templates, sessions and the collaborators."""

    def __init__(
        self,
        *,
        engine: Engine,
        broker: Broker,
        settings: Settings,
        sessions: Sessions,
        env: jinja2.Environment | None = None,
    ) -> None:
        self.engine = engine
        self.broker = broker
        self.settings = settings
        self.sessions = sessions
        self.env = env or templates()
        #: The browser reaches Herald over TLS even if a proxy hands us plain HTTP.
        self.tls = settings.public_url.startswith("https://")

    # --- answering ---------------------------------------------------------------------

    def render(
        self,
        resp: falcon.Response,
        template: str,
        *,
        operator: Operator | None = None,
        status: int = 200,
        **context: Any,
    ) -> None:
        """A page (or fragment) with the console's security headers."""
        headers(resp)
        resp.status = status
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self.env.get_template(template).render(
            operator=operator, queues=queue_names(), **context
        )

    def refuse(self, resp: falcon.Response, operator: Operator, exc: HeraldError) -> None:
        """The error page, saying why (404 for what is not there, 422, else 409)."""
        self.render(resp, "error.html", operator=operator, status=_status(exc), message=_words(exc))

    def show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        template: str,
        read: Callable[[], dict[str, Any]],
    ) -> None:
        """A page for the signed-in operator with what `read` gathers (and what the previous
        action did); the sign-in page for anyone else."""
        operator = self.page(req, resp)
        if operator is None:
            return
        try:
            context = read()
        except HeraldError as exc:
            self.refuse(resp, operator, exc)
            return
        self.render(resp, template, operator=operator, done=done_message(req), **context)

    def redirect(self, resp: falcon.Response, location: str) -> None:
        headers(resp)
        resp.status = 303
        resp.location = location

    # --- who is asking -----------------------------------------------------------------

    def operator(self, req: falcon.Request) -> Operator | None:
        return self.sessions.find(req.cookies.get(sessions.COOKIE))

    def page(self, req: falcon.Request, resp: falcon.Response) -> Operator | None:
        """The signed-in operator; None after answering with a redirect to sign in."""
        found = self.operator(req)
        if found is None:
            self.redirect(resp, "/admin/sign-in")
        return found

    def action(
        self, req: falcon.Request, resp: falcon.Response
    ) -> tuple[Operator, dict[str, str]] | None:
        """The operator and the form of a POST whose CSRF token and origin are right; None
        after answering (a redirect to sign in, or 403)."""
        form = read_form(req)
        found = self.operator(req)
        if found is None:
            self.redirect(resp, "/admin/sign-in")
            return None
        if not sessions.same_origin(req) or not sessions.tokens_match(
            found.csrf_token, form.get(sessions.CSRF_FIELD)
        ):
            self.render(
                resp,
                "error.html",
                operator=found,
                status=403,
                message="This form was not sent by this console (its CSRF token is missing "
                "or wrong). Reload the page and try again.",
            )
            return None
        return found, form

    def act(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        then: str,
        work: Callable[[Operator, dict[str, str]], str],
    ) -> None:
        """Run an action; redirect to `then` with what it did, or show why it could not."""
        checked = self.action(req, resp)
        if checked is None:
            return
        operator, form = checked
        try:
            done = work(operator, form)
        except HeraldError as exc:
            self.refuse(resp, operator, exc)
            return
        joiner = "&" if "?" in then else "?"
        self.redirect(resp, f"{then}{joiner}{urlencode({'done': done})}")


def headers(resp: falcon.Response) -> None:
    """No caching, no framing, no sniffing, and only Herald's own assets."""
    resp.set_header("Content-Security-Policy", CONSOLE_CSP)
    resp.set_header("Cache-Control", "no-store")
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("X-Frame-Options", "DENY")
    resp.set_header("Referrer-Policy", "same-origin")


def read_form(req: falcon.Request) -> dict[str, str]:
    """A urlencoded form's fields (the last value of each), at most 64 KiB."""
    if req.method != "POST":
        return {}
    length = req.content_length or 0
    if length > MAX_FORM_BYTES:
        raise falcon.HTTPContentTooLarge(description="the form is too large")
    raw = req.bounded_stream.read(MAX_FORM_BYTES).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _status(exc: HeraldError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidInput):
        return 422
    return 409


def _words(exc: HeraldError) -> str:
    if isinstance(exc, InvalidInput):
        return "; ".join(f"{e.field}: {e.reason}" for e in exc.errors) or exc.message
    return exc.message


def done_message(req: falcon.Request) -> str | None:
    """What the previous action did, from `done=<what>:<count>` (a fixed set of sentences)."""
    what, _, count = (req.get_param("done") or "").partition(":")
    template = DONE.get(what)
    if template is None:
        return None
    return template.format(n=int(count) if count.isdigit() else 0)


# --- signing in and out -------------------------------------------------------------------


class Home:
    """GET /admin: the overview, or the sign-in page."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        signed_in = self._console.operator(req) is not None
        self._console.redirect(resp, "/admin/overview" if signed_in else "/admin/sign-in")


class SignIn:
    """GET, POST /admin/sign-in: an admin API key opens a session."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def _form(
        self, req: falcon.Request, resp: falcon.Response, error: str | None, status: int
    ) -> None:
        # The double-submit token: a cookie and the form's field must match.
        token = secrets.token_urlsafe(32)
        sessions.set_cookie(
            req, resp, sessions.SIGN_IN_COOKIE, token, max_age=3600, tls=self._console.tls
        )
        self._console.render(resp, "sign_in.html", csrf_token=token, error=error, status=status)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._console.operator(req) is not None:
            self._console.redirect(resp, "/admin/overview")
            return
        self._form(req, resp, None, 200)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = read_form(req)
        expected = req.cookies.get(sessions.SIGN_IN_COOKIE)
        if not sessions.same_origin(req) or not sessions.tokens_match(
            expected, form.get(sessions.CSRF_FIELD)
        ):
            self._form(req, resp, "The sign-in form expired: try again.", 403)
            return
        try:
            token = self._console.sessions.sign_in(form.get("api_key", ""))
        except HeraldError as exc:
            self._form(req, resp, exc.message, 403 if isinstance(exc, Forbidden) else 401)
            return
        sessions.clear_cookie(req, resp, sessions.SIGN_IN_COOKIE)
        sessions.set_cookie(
            req,
            resp,
            sessions.COOKIE,
            token,
            max_age=self._console.sessions.lifetime_seconds,
            tls=self._console.tls,
        )
        self._console.redirect(resp, "/admin/overview")


class SignOut:
    """POST /admin/sign-out"""

    def __init__(self, console: Console) -> None:
        self._console = console

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._console.action(req, resp) is None:
            return
        self._console.sessions.sign_out(req.cookies.get(sessions.COOKIE))
        sessions.clear_cookie(req, resp, sessions.COOKIE)
        self._console.redirect(resp, "/admin/sign-in")


# --- the overview -------------------------------------------------------------------------


class Overview:
    """GET /admin/overview (the page) and /admin/overview/live (what it refreshes)."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def _reading(self) -> dict[str, Any]:
        c = self._console
        store = queue_store(c.broker)
        now = utcnow()
        health = queues.admin_health(c.engine, c.broker, store, c.settings)
        with session_scope(c.engine) as session:
            lateness = console.lateness(session, now)
            reauth = console.accounts_needing_reauth(session)
        return {
            "health": health,
            "throughput": console.throughput(store, now) if health["queues"] else {},
            "lateness": lateness,
            "reauth": reauth,
            "now": now,
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._console.show(req, resp, "overview.html", self._reading)

    def on_get_live(self, req: falcon.Request, resp: falcon.Response) -> None:
        operator = self._console.operator(req)
        if operator is None:
            headers(resp)
            resp.status = 401
            resp.text = ""
            return
        self._console.render(resp, "_overview.html", operator=operator, **self._reading())


# --- a queue ------------------------------------------------------------------------------


class QueuePage:
    """GET /admin/queues/{name}; POST …/retry (one dead letter, or all); POST …/clear."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        state = req.get_param("state") or "failed"
        offset = max(0, req.get_param_as_int("offset") or 0)

        def read() -> dict[str, Any]:
            detail = queues.queue_detail(
                queue_store(self._console.broker),
                self._console.settings,
                name,
                state=state if state in STATES else "failed",
                offset=offset,
                limit=console.PAGE,
            )
            return {"q": detail, "states": STATES, "clearable": CLEARABLE}

        self._console.show(req, resp, "queue.html", read)

    def on_post_retry(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        def work(_: Operator, form: dict[str, str]) -> str:
            ids = [form["id"]] if form.get("id") else None
            retried = queues.retry_failed(queue_store(self._console.broker), name, ids)
            return f"retried:{retried['retried']}"

        self._console.act(req, resp, f"/admin/queues/{name}?state=failed", work)

    def on_post_clear(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        def work(_: Operator, form: dict[str, str]) -> str:
            state = form.get("state", "")
            if state not in (*CLEARABLE, "all"):
                raise InvalidInput(
                    FieldError("state", f"must be one of {', '.join(CLEARABLE)} or all")
                )
            cleared = queues.clear(queue_store(self._console.broker), name, state)["cleared"]
            return f"cleared:{sum(cleared.values())}"

        self._console.act(req, resp, f"/admin/queues/{name}?state=waiting", work)


# --- posts that need a person -------------------------------------------------------------


class Attention:
    """GET /admin/attention: targets in unknown and failed, newest first."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        def read() -> dict[str, Any]:
            with session_scope(self._console.engine) as session:
                return dict(console.needing_a_person(session))

        self._console.show(req, resp, "attention.html", read)


def _post(session: Session, post_id: str) -> Post:
    post = console.find_post(session, post_id)
    if post is None:
        raise NotFound(f"no post {post_id}")
    return post


class PostPage:
    """GET /admin/posts/{post_id}: the timeline; POST …/retry; POST …/targets/{id}/resolve."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def on_get(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        def read() -> dict[str, Any]:
            with session_scope(self._console.engine) as session:
                post = _post(session, post_id)
                return {
                    "post": posts.describe_detail(session, post),
                    "tenant": keys.get_tenant(session, post.tenant_id).name,
                }

        self._console.show(req, resp, "post.html", read)

    def on_post_retry(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        def work(_: Operator, form: dict[str, str]) -> str:
            with session_scope(self._console.engine) as session:
                posts.retry_post(session, _post(session, post_id).tenant_id, post_id)
            return "post-retried:1"

        self._console.act(req, resp, f"/admin/posts/{post_id}", work)

    def on_post_resolve(
        self, req: falcon.Request, resp: falcon.Response, post_id: str, target_id: str
    ) -> None:
        def work(_: Operator, form: dict[str, str]) -> str:
            try:
                body = ResolveBody.model_validate(
                    {
                        "outcome": form.get("outcome"),
                        "platform_url": form.get("platform_url") or None,
                        "note": form.get("note") or None,
                    }
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(p) for p in first["loc"]) or "outcome"
                raise InvalidInput(FieldError(field, first["msg"])) from None
            with session_scope(self._console.engine) as session:
                tenant_id = _post(session, post_id).tenant_id
                posts.resolve_target(session, tenant_id, post_id, target_id, body)
            return "resolved:1"

        self._console.act(req, resp, f"/admin/posts/{post_id}", work)


# --- tenants and keys ---------------------------------------------------------------------


class Tenants:
    """GET /admin/tenants; POST creates a tenant and shows its first key once."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def _show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        operator: Operator,
        issued: dict[str, Any] | None = None,
    ) -> None:
        with session_scope(self._console.engine) as session:
            tenants = keys.list_tenants(session)
            names = {t["id"]: t["name"] for t in tenants}
            listed = [keys.key_fields(k) for k in keys.list_keys(session)]
        self._console.render(
            resp,
            "tenants.html",
            operator=operator,
            tenants=tenants,
            keys=listed,
            names=names,
            issued=issued,
            done=done_message(req),
            status=201 if issued else 200,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        operator = self._console.page(req, resp)
        if operator is not None:
            self._show(req, resp, operator)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._issue(req, resp, tenant=True)

    def on_post_key(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._issue(req, resp, tenant=False)

    def _issue(self, req: falcon.Request, resp: falcon.Response, *, tenant: bool) -> None:
        checked = self._console.action(req, resp)
        if checked is None:
            return
        operator, form = checked
        admin = form.get("is_admin") == "on"
        name = form.get("name", "").strip()
        try:
            if not name:
                raise InvalidInput(FieldError("name", "must not be empty"))
            with session_scope(self._console.engine) as session:
                if tenant:
                    issued = keys.new_tenant(session, name[:200], admin=admin)["key"]
                else:
                    issued = keys.create_key(
                        session, form.get("tenant_id", ""), name=name[:200], is_admin=admin
                    )
        except HeraldError as exc:
            self._console.refuse(resp, operator, exc)
            return
        self._show(req, resp, operator, issued)

    def on_post_revoke(self, req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        def work(_: Operator, form: dict[str, str]) -> str:
            with session_scope(self._console.engine) as session:
                keys.revoke_key(session, key_id)
            return "revoked:1"

        self._console.act(req, resp, "/admin/tenants", work)


# --- cron ---------------------------------------------------------------------------------


class Cron:
    """GET /admin/cron: each entry's next firing and the latest runs."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        def read() -> dict[str, Any]:
            with session_scope(self._console.engine) as session:
                return console.cron(session, self._console.settings, utcnow())

        self._console.show(req, resp, "cron.html", read)
