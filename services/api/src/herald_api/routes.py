"""The one routing table: every route, its resource, and what each operation takes and gives.

`create_app` registers these routes with Falcon and the OpenAPI document is generated from the
same list, so the documentation cannot drift from what is served.
"""

from __future__ import annotations

from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.assets import Assets
from herald_api.resources.accounts import AccountCollection, AccountItem
from herald_api.resources.connect import (
    AccountRefresh,
    AdminRefreshTokens,
    Connect,
    ConnectCallback,
)
from herald_api.resources.docs import Docs, OpenApiSpec
from herald_api.resources.health import AdminHealth, Health, Metrics, Ready
from herald_api.resources.posts import PostCollection, PostItem
from herald_api.resources.queues import QueueCollection, QueueItem
from herald_api.routing import METHODS, DomainRoutes, Operation, Route
from herald_api.schemas import (
    AccountCreate,
    AccountList,
    AccountOut,
    AccountUpdate,
    AdminHealthOut,
    AdminRefreshBody,
    ClearedOut,
    ClearQuery,
    ConnectQuery,
    ConnectStartOut,
    DirectConnectBody,
    HealthOut,
    PostCreate,
    PostDetailOut,
    PostListQuery,
    PostPage,
    PostUpdate,
    QueueActionBody,
    QueueActionOut,
    QueueDetailOut,
    QueueJobsQuery,
    QueueList,
    ReadyOut,
    RefreshRequestedOut,
    ResolveBody,
    RetriedOut,
    RetryFailedBody,
    SandboxDeliveryList,
    ScheduleBody,
)
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings


def _domains() -> tuple[DomainRoutes, ...]:
    from herald_api.resources import (
        analytics,
        approvals,
        brands,
        content,
        images,
        jobs,
        keys,
        webhooks,
    )

    return (
        brands.routes,
        jobs.routes,
        content.routes,
        approvals.routes,
        images.routes,
        analytics.routes,
        webhooks.routes,
        keys.routes,
    )


def build_routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """Every route of the API, with its resource built from the injected collaborators."""
    from herald_api.openapi import build_document

    routes: list[Route] = []
    if not settings.api_metrics_port:  # else gunicorn's arbiter serves it on a port of its own
        routes.append(metrics_route())
    accounts, account = AccountCollection(engine, platforms), AccountItem(engine, platforms)
    posts, post = PostCollection(engine, platforms), PostItem(engine, platforms)
    account_path, post_path = "/v1/accounts/{account_id}", "/v1/posts/{post_id}"
    queue, queue_path = QueueItem(broker, settings), "/v1/admin/queues/{name}"
    routes += [
        Route(
            "/health",
            Health(),
            (Operation("get", "Liveness", HealthOut, public=True),),
            tag="health",
        ),
        Route(
            "/ready",
            Ready(engine, broker),
            (
                Operation(
                    "get",
                    "Readiness: database, migrations and broker",
                    ReadyOut,
                    public=True,
                    errors=(503,),
                ),
            ),
            tag="health",
        ),
        Route(
            "/v1/admin/health",
            AdminHealth(engine, broker, settings),
            (
                Operation(
                    "get",
                    "The whole system's health (admin keys)",
                    AdminHealthOut,
                    errors=(403, 503),
                    description="healthy, degraded or unhealthy, from each queue's depth and "
                    "dead letters, live workers and schedulers (heartbeats), and the age of "
                    "the oldest due target; 503 when unhealthy.",
                ),
            ),
            tag="admin",
        ),
        Route(
            "/openapi.json",
            OpenApiSpec(lambda: build_document(routes)),
            (Operation("get", "This OpenAPI document", None, public=True),),
            tag="docs",
        ),
        Route(
            "/docs",
            Docs("/openapi.json"),
            (Operation("get", "API reference (HTML)", None, public=True, media_type="text/html"),),
            tag="docs",
        ),
        Route(
            "/assets/{name}",
            Assets(),
            (
                Operation(
                    "get",
                    "A file the docs and the console load (served by Herald, never a CDN)",
                    None,
                    public=True,
                    media_type="text/javascript",
                    errors=(404,),
                ),
            ),
            tag="docs",
        ),
        Route(
            "/v1/accounts",
            accounts,
            (
                Operation("get", "List connected accounts", AccountList),
                Operation("post", "Connect an account", AccountOut, status=201, body=AccountCreate),
            ),
            tag="accounts",
        ),
        Route(
            account_path,
            account,
            (
                Operation("get", "Get an account", AccountOut),
                Operation("patch", "Change an account", AccountOut, body=AccountUpdate),
                Operation(
                    "delete",
                    "Delete an account",
                    status=204,
                    description="Soft delete; its targets that have not started are canceled.",
                ),
            ),
            tag="accounts",
        ),
        Route(
            "/v1/accounts/connect/{platform}",
            Connect(engine, platforms, settings),
            (
                Operation(
                    "get",
                    "Start connecting an account through OAuth",
                    ConnectStartOut,
                    query=ConnectQuery,
                    errors=(422,),
                    description="Returns the platform's authorize URL (with `state`, and PKCE "
                    "where the platform takes it). Send the user's browser there; the platform "
                    "returns it to the callback, which stores the account. Register "
                    "`{PUBLIC_URL}/v1/accounts/connect/{platform}/callback` with the platform's "
                    "app. With `account_id`, the flow reconnects that account.",
                ),
                Operation(
                    "post",
                    "Connect a Bluesky or Mastodon account with its credentials",
                    AccountOut,
                    status=201,
                    body=DirectConnectBody,
                    errors=(502, 503),
                    description="The credentials are checked with the platform before they "
                    "are stored; connecting an account the tenant has again updates it.",
                ),
            ),
            tag="accounts",
        ),
        Route(
            "/v1/accounts/connect/{platform}/callback",
            ConnectCallback(engine, platforms),
            (
                Operation(
                    "get",
                    "OAuth callback: the platform returns here with code and state",
                    AccountList,
                    public=True,
                    errors=(400, 409, 422, 502, 503),
                    description="Authenticated by the single-use `state`. Exchanges the code "
                    "and stores every account the grant covers (a Facebook login may grant "
                    "several Pages); an account connected before is updated and reactivated.",
                ),
            ),
            tag="accounts",
        ),
        Route(
            account_path + "/refresh",
            AccountRefresh(engine, platforms),
            (
                Operation(
                    "post",
                    "Refresh the account's tokens now",
                    AccountOut,
                    status=202,
                    errors=(409,),
                    description="The token-refresher does it within seconds; read the account "
                    "for `refreshed_at`, `status` and `refresh_error`.",
                ),
            ),
            tag="accounts",
        ),
        Route(
            "/v1/admin/refresh-tokens",
            AdminRefreshTokens(engine, platforms),
            (
                Operation(
                    "post",
                    "Refresh tokens of one account or all (admin keys)",
                    RefreshRequestedOut,
                    status=202,
                    body=AdminRefreshBody,
                    errors=(403, 404),  # 404: no such account or tenant
                ),
            ),
            tag="admin",
        ),
        Route(
            "/v1/admin/queues",
            QueueCollection(broker, settings),
            (Operation("get", "Every queue's counts (admin keys)", QueueList, errors=(403,)),),
            tag="admin",
        ),
        Route(
            queue_path,
            queue,
            (
                Operation(
                    "get",
                    "A queue's counts and one page of its jobs in one state (admin keys)",
                    QueueDetailOut,
                    query=QueueJobsQuery,
                    errors=(403, 404, 422),
                ),
                Operation(
                    "delete",
                    "Clear one state of a queue, or all (admin keys)",
                    ClearedOut,
                    query=ClearQuery,
                    errors=(403, 404, 422),
                    description="Cleared publish messages are not lost posts: the schedule "
                    "is in the database, and the scheduler sends a target again when its "
                    "message never arrives.",
                ),
            ),
            tag="admin",
        ),
        Route(
            queue_path + "/retry-failed",
            queue,
            (
                Operation(
                    "post",
                    "Put dead letters back on the queue, retries reset (admin keys)",
                    RetriedOut,
                    body=RetryFailedBody,
                    errors=(403, 404),
                ),
            ),
            suffix="retry",
            tag="admin",
        ),
        Route(
            queue_path + "/actions",
            queue,
            (
                Operation(
                    "post",
                    "Seed 004's queue actions (admin keys)",
                    QueueActionOut,
                    body=QueueActionBody,
                    errors=(403, 404),
                    description="retry_failed, retry_specific (job_ids), clear_completed, "
                    "clear_failed: the same as retry-failed and DELETE.",
                ),
            ),
            suffix="action",
            tag="admin",
        ),
        Route(
            account_path + "/sandbox-posts",
            account,
            (Operation("get", "What the sandbox platform received", SandboxDeliveryList),),
            suffix="sandbox_posts",
            tag="accounts",
        ),
        Route(
            "/v1/posts",
            posts,
            (
                Operation("get", "List posts, newest first", PostPage, query=PostListQuery),
                Operation("post", "Create a post", PostDetailOut, status=201, body=PostCreate),
            ),
        ),
        Route(
            post_path,
            post,
            (
                Operation("get", "Get a post with its targets and attempts", PostDetailOut),
                Operation("patch", "Change a post", PostDetailOut, body=PostUpdate, errors=(409,)),
                Operation("delete", "Delete a post", status=204, errors=(409,)),
            ),
        ),
        Route(
            post_path + "/schedule",
            post,
            (
                Operation(
                    "put",
                    "Schedule or reschedule a post",
                    PostDetailOut,
                    body=ScheduleBody,
                    errors=(409,),
                ),
            ),
            suffix="schedule",
        ),
        Route(
            post_path + "/publish",
            post,
            (Operation("post", "Publish a post now", PostDetailOut, errors=(409, 422)),),
            suffix="publish",
        ),
        Route(
            post_path + "/cancel",
            post,
            (Operation("post", "Cancel what has not gone out", PostDetailOut, errors=(409,)),),
            suffix="cancel",
        ),
        Route(
            post_path + "/retry",
            post,
            (Operation("post", "Retry the failed targets now", PostDetailOut, errors=(409,)),),
            suffix="retry",
        ),
        Route(
            post_path + "/targets/{target_id}/resolve",
            post,
            (
                Operation(
                    "post",
                    "Resolve a target in unknown",
                    PostDetailOut,
                    body=ResolveBody,
                    errors=(409,),
                    description="After a crash where the platform could not be asked, a person "
                    "checks the account and says whether the post went out.",
                ),
            ),
            suffix="resolve",
        ),
    ]
    for domain in _domains():
        routes += domain(engine=engine, broker=broker, platforms=platforms, settings=settings)
    return routes


def public_paths(routes: list[Route]) -> set[str]:
    """Paths served without an API key."""
    return {r.path for r in routes if all(op.public for op in r.operations)}


def check_route(route: Route) -> None:
    """Fail at start-up when the table and the resource disagree on the methods served."""
    declared = {op.method for op in route.operations}
    served = {
        m for m in METHODS if callable(getattr(route.resource, route.responder_name(m), None))
    }
    if declared != served:
        raise RuntimeError(
            f"{route.path}: the routing table declares {sorted(declared)} "
            f"but {type(route.resource).__name__} serves {sorted(served)}"
        )


def metrics_route() -> Route:
    """GET /metrics on the API's own port (`make run`, `make stack`)."""
    return Route(
        "/metrics",
        Metrics(),
        (
            Operation(
                "get",
                "Prometheus metrics of this API (every gunicorn worker)",
                None,
                public=True,
                media_type="text/plain",
                description="Requests by route template, method and status, and their "
                "durations; keep it off the public internet (scrape it from inside).",
            ),
        ),
        tag="health",
    )
