"""Settings read from the environment, once, by each entry point."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("var") / "herald.db"


class Settings(BaseSettings):
    """Everything a Herald process can be told through its environment."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    environment: Literal["development", "test", "production"] = Field(
        default="development", alias="HERALD_ENV"
    )
    database_url: str = Field(default=f"sqlite:///{DEFAULT_SQLITE_PATH}")
    database_pool_size: int = Field(default=10, ge=1)

    # Redis, either as one URL or as the seeds' separate parts. Neither set → in-process broker.
    redis_url: str | None = None
    redis_host: str | None = None
    redis_port: int = 6379
    redis_password: str | None = None
    redis_db: int = 0
    # Keys of one deployment live under this namespace, so tests and tenants of Redis can share.
    broker_namespace: str = Field(default="dramatiq", alias="HERALD_BROKER_NAMESPACE")

    # Concurrency: a global default and one override per queue (see contracts.py).
    queue_concurrency: int | None = Field(default=None, ge=1)
    publish_worker_concurrency: int | None = Field(default=None, ge=1)
    # threads or gevent for every worker service (default: each queue's contract says).
    worker_pool: Literal["threads", "gevent"] | None = None
    token_refresh_worker_concurrency: int | None = Field(default=None, ge=1)
    content_worker_concurrency: int | None = Field(default=None, ge=1)
    content_regen_worker_concurrency: int | None = Field(default=None, ge=1)
    approval_worker_concurrency: int | None = Field(default=None, ge=1)
    analytics_worker_concurrency: int | None = Field(default=None, ge=1)
    image_worker_concurrency: int | None = Field(default=None, ge=1)
    webhooks_worker_concurrency: int | None = Field(default=None, ge=1)

    # Scheduler timing.
    scheduler_tick_seconds: float = Field(default=0.25, gt=0)
    scheduler_lookahead_seconds: float = Field(default=1.0, ge=0)
    scheduler_batch_size: int = Field(default=500, ge=1)
    # A target queued this long ago and never started is sent again (the message was lost).
    requeue_after_seconds: float = Field(default=120.0, gt=0)
    # A target publishing this long ago is reconciled with its platform (its worker died).
    reconcile_after_seconds: float = Field(default=300.0, gt=0)
    # A stuck target whose platform cannot be asked (lookups keep failing) goes to `unknown`
    # this long after its try started.
    reconcile_give_up_seconds: float = Field(default=6 * 3600.0, gt=0)

    # Publishing.
    publish_max_attempts: int = Field(default=3, ge=1)
    publish_backoff_seconds: float = Field(default=2.0, gt=0)
    publish_backoff_max_seconds: float = Field(default=300.0, gt=0)
    platform_timeout_seconds: float = Field(default=30.0, gt=0)
    # A target held back by a platform's rate limit or quota waits (spending no attempt) until
    # this long after its scheduled time, then fails with the platform's reason.
    rate_limit_max_wait_seconds: float = Field(default=48 * 3600.0, gt=0)
    # How often adapters poll a platform's processing (media, containers, uploads).
    platform_poll_interval_seconds: float = Field(default=3.0, gt=0)
    # Let platform calls and media fetches reach loopback/private addresses (tests, an
    # instance on the same network). Off: tenants' URLs must not reach internal services.
    platform_allow_private_addresses: bool = False

    # Platforms: API base URLs (tests and self-hosted gateways point these elsewhere) and the
    # keys that encrypt account credentials at rest (see herald_common.crypto).
    secret_keys: str | None = Field(default=None, alias="HERALD_SECRET_KEYS", repr=False)
    x_api_url: str = "https://api.x.com"
    facebook_api_url: str = "https://graph.facebook.com"
    instagram_api_url: str = "https://graph.facebook.com"
    threads_api_url: str = "https://graph.threads.net"
    linkedin_api_url: str = "https://api.linkedin.com"
    graph_api_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")
    threads_api_version: str = Field(default="v1.0", pattern=r"^v\d+\.\d+$")
    linkedin_version: str = Field(default="202605", pattern=r"^\d{6}$")
    tiktok_api_url: str = "https://open.tiktokapis.com"
    # Pace publishes per account and platform as each adapter documents (Pace); off for tests
    # that burst on purpose.
    publish_pacing: bool = True

    # Connecting accounts (OAuth 2.0). Each platform's app is registered by the operator; a
    # platform whose client id is unset cannot be connected through OAuth. The callback URL to
    # register is {public_url}/v1/accounts/connect/{platform}/callback. Unset, it follows
    # API_HOST and API_PORT (see _public_url_follows_the_api).
    public_url: str = "http://127.0.0.1:8000"
    oauth_state_ttl_seconds: float = Field(default=900.0, gt=0)
    x_client_id: str | None = None
    x_client_secret: str | None = Field(default=None, repr=False)
    x_authorize_url: str = "https://x.com/i/oauth2/authorize"
    linkedin_client_id: str | None = None
    linkedin_client_secret: str | None = Field(default=None, repr=False)
    linkedin_oauth_url: str = "https://www.linkedin.com/oauth/v2"
    tiktok_client_key: str | None = None
    tiktok_client_secret: str | None = Field(default=None, repr=False)
    tiktok_authorize_url: str = "https://www.tiktok.com/v2/auth/authorize/"
    # One Meta app serves Facebook Pages and Instagram (Facebook Login for Business).
    facebook_app_id: str | None = None
    facebook_app_secret: str | None = Field(default=None, repr=False)
    facebook_dialog_url: str = "https://www.facebook.com"
    threads_app_id: str | None = None
    threads_app_secret: str | None = Field(default=None, repr=False)
    threads_authorize_url: str = "https://threads.net/oauth/authorize"

    # Token refresh. Tokens expiring within the window are refreshed ahead of time; the weekly
    # full refresh (cron, UTC) checks every account, expiring or not.
    token_refresh_window_seconds: float = Field(default=15 * 60.0, gt=0)
    token_refresh_cron: str = "0 0 * * 0"  # noqa: S105  (a cron expression)
    token_refresh_backoff_seconds: float = Field(default=30.0, gt=0)
    token_refresh_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # A refresh that started this long ago and never finished (its worker died) may start again.
    token_refresh_lease_seconds: float = Field(default=300.0, gt=0)
    # A target whose account must be connected again waits (spending no attempt) until this
    # long after its scheduled time, then fails with the reason.
    needs_reauth_max_wait_seconds: float = Field(default=48 * 3600.0, gt=0)

    # Observability. Worker services and the scheduler serve /metrics on METRICS_HOST:PORT; the
    # API on METRICS_HOST:API_METRICS_PORT, a port its Service does not expose (0: GET /metrics
    # on the API's own port, as in `make run`); worker services gather their processes'
    # samples in METRICS_DIR (default: a fresh directory under the system's temporary one).
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(default=9191, ge=0, le=65535)
    api_metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_dir: str | None = None
    # How often the scheduler reads queue depth, targets and accounts for its gauges.
    metrics_interval_seconds: float = Field(default=10.0, gt=0)
    # Workers and schedulers beat this often; one silent for the timeout counts as gone.
    heartbeat_interval_seconds: float = Field(default=5.0, gt=0)
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    # Records of finished jobs (the queue admin API's `completed`) are kept this long, and at
    # most this many per queue; attempts (each post's audit trail) are kept longer. The
    # clean-up runs on its own cron entry.
    job_records_retention_seconds: float = Field(default=24 * 3600.0, gt=0)
    job_records_max_per_queue: int = Field(default=100_000, ge=0)
    attempts_retention_days: float = Field(default=365.0, gt=0)
    cleanup_cron: str = "*/10 * * * *"
    # What GET /v1/admin/health calls degraded and unhealthy.
    health_queue_waiting_degraded: int = Field(default=1_000, ge=1)
    health_queue_waiting_unhealthy: int = Field(default=10_000, ge=1)
    health_oldest_due_degraded_seconds: float = Field(default=60.0, gt=0)
    health_oldest_due_unhealthy_seconds: float = Field(default=300.0, gt=0)
    # Queues that must have a live worker even when empty (comma-separated); any other queue
    # is unhealthy only when it holds work and nobody drains it.
    health_required_queues: str = "publish,token-refresh"

    # Jobs a client started (content, images, analytics pulls). One whose message was lost
    # (queued this long and never started) is sent again; one whose worker died (running past
    # its time limit plus this grace) is put back on its queue.
    job_requeue_after_seconds: float = Field(default=300.0, gt=0)
    job_stale_grace_seconds: float = Field(default=120.0, gt=0)

    # Content writers: the built-in template writer (offline, the default), or any
    # OpenAI-compatible chat-completions endpoint when CONTENT_API_URL is set.
    content_api_url: str | None = None  # e.g. https://api.openai.com/v1 or http://ollama:11434/v1
    content_api_key: str | None = Field(default=None, repr=False)
    content_model: str = "gpt-4o-mini"
    content_api_timeout_seconds: float = Field(default=60.0, gt=0)
    # A malformed or over-long answer is asked for again this many times, then the job fails.
    content_max_attempts: int = Field(default=3, ge=1)

    # Images: Pillow cards (offline, the default), or an OpenAI-compatible images endpoint.
    image_api_url: str | None = None
    image_api_key: str | None = Field(default=None, repr=False)
    image_model: str = "gpt-image-1"
    image_api_timeout_seconds: float = Field(default=120.0, gt=0)
    # Where image bytes live: "database" (the default), or a directory path.
    image_storage: str = "database"
    # Fonts: a directory of .ttf/.otf files searched by a brand's font names (then the system's).
    image_font_dir: str | None = None

    # Approvals: email (SMTP), WhatsApp (Cloud API) and webhooks.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_from: str = "Herald <herald@localhost>"
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    whatsapp_api_url: str = "https://graph.facebook.com"
    whatsapp_phone_number_id: str | None = None
    whatsapp_token: str | None = Field(default=None, repr=False)
    # Seed 003's whatsapp-messages limit: WhatsApp sends in flight at once, across replicas.
    whatsapp_concurrency: int = Field(default=3, ge=1)
    # Webhook notices are signed with HMAC-SHA256 of the body (X-Herald-Signature) with this.
    approval_webhook_secret: str | None = Field(default=None, repr=False)
    # A reminder goes this long before an approval's due time; approvals past it are flagged.
    approval_reminder_before_seconds: float = Field(default=24 * 3600.0, gt=0)
    approval_default_due_seconds: float = Field(default=48 * 3600.0, gt=0)

    # Analytics: the scheduler pulls each published target's metrics at these ages (seconds
    # after it went out), then every ANALYTICS_PULL_EVERY_SECONDS, until
    # ANALYTICS_PULL_MAX_AGE_DAYS.
    analytics_pull_ages: str = "900,3600,10800,21600,43200,86400"
    analytics_pull_every_seconds: float = Field(default=86400.0, gt=0)
    analytics_pull_max_age_days: float = Field(default=30.0, gt=0)
    analytics_pull_batch: int = Field(default=200, ge=1)

    # HTTP API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Each API process keeps the API-key rows it read this long: a revoked key stops working
    # within it. 0: every request reads its key's row.
    api_key_cache_seconds: float = Field(default=5.0, ge=0)
    # Requests per API key, in the `limits` package's notation ("3000/minute", or several
    # windows: "100/second;3000/minute"), counted on Redis (in this process's memory without
    # it); a tenant's own `rate_limit` overrides it. Empty: no limit.
    api_rate_limit: str = "3000/minute"
    # Jobs a tenant may have queued or running on each shared queue (content, image,
    # analytics); a tenant's own `max_active_jobs` overrides it.
    max_active_jobs_per_tenant: int = Field(default=20, ge=1)
    # Outcome webhooks: a delivery is tried again with backoff for this long after its event
    # (then it fails and its endpoint is disabled with the reason); each process knows for this
    # long whether a tenant has endpoints, so a tenant without any costs no query per event.
    webhook_retry_seconds: float = Field(default=24 * 3600.0, gt=0)
    webhook_endpoints_cache_seconds: float = Field(default=10.0, ge=0)
    # The operator's console (/admin): how long a sign-in lasts.
    console_session_seconds: float = Field(default=8 * 3600.0, gt=0)
    log_level: str = "INFO"
    # JSON lines (production, compose, `make stack`), or text for people (`make run`).
    log_format: Literal["json", "text"] = "json"

    @field_validator("token_refresh_cron", "cleanup_cron")
    @classmethod
    def _cron_expression(cls, value: str) -> str:
        try:
            CronSim(value, datetime.now(UTC))
        except CronSimError as exc:
            raise ValueError(f"not a cron expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _public_url_follows_the_api(self) -> Settings:
        # Image URLs and OAuth callbacks must reach the API where it listens: API_PORT=8080
        # alone moves both. A wildcard host is reached on this machine's loopback.
        if "public_url" not in self.model_fields_set:
            host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
            host = f"[{host}]" if ":" in host else host
            self.public_url = f"http://{host}:{self.api_port}"
        return self

    @model_validator(mode="after")
    def _refuse_sqlite_in_production(self) -> Settings:
        if self.environment == "production" and self.database_url.startswith("sqlite"):
            raise ValueError("DATABASE_URL must point at PostgreSQL when HERALD_ENV=production")
        if self.environment == "production" and not self.secret_keys:
            raise ValueError(
                "HERALD_SECRET_KEYS must be set when HERALD_ENV=production "
                "(herald-admin generate-key makes one)"
            )
        return self

    @property
    def broker_url(self) -> str | None:
        """The Redis URL, built from REDIS_URL or the REDIS_HOST/PORT/PASSWORD/DB parts."""
        if self.redis_url:
            return self.redis_url
        if self.redis_host:
            auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
            return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"
        return None

    @property
    def required_queues(self) -> list[str]:
        """HEALTH_REQUIRED_QUEUES as a list."""
        return [q.strip() for q in self.health_required_queues.split(",") if q.strip()]

    def cron_schedule(self) -> dict[str, str]:
        """Every cron entry the scheduler fires, by name, with its expression (UTC)."""
        return {"token-refresh-weekly": self.token_refresh_cron, "clean-up": self.cleanup_cron}

    def concurrency_for(self, queue: str, default: int) -> int:
        """The worker concurrency for a queue: its own override, else the global one, else default."""
        specific = getattr(self, f"{queue.replace('-', '_')}_worker_concurrency", None)
        return specific or self.queue_concurrency or default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
