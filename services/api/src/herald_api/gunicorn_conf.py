"""gunicorn settings: `gunicorn -c python:herald_api.gunicorn_conf 'herald_api.app:get_app()'`.

Bind address from API_HOST/API_PORT (the settings' defaults otherwise), worker processes from
WEB_CONCURRENCY (default: one per CPU this process may run on), four threads each
(GUNICORN_THREADS), access log on stdout.

A worker runs Python, which uses one core at a time whatever its threads, so one worker per
core is what lets the API use the machine. The CPUs counted are the ones this process may run
on (its affinity), not the cgroup's CPU quota: a container limited to one CPU of a large node
still sees every CPU of the node, so set WEB_CONCURRENCY there (deploy/k8s does).

Four threads: for POST /v1/posts at 300 req/s on 2 cores, 1, 2, 4 and 8 threads cost the same
CPU per request within the run-to-run noise (±15 %), and each kept p99 under 40 ms whenever
the machine was otherwise idle; threads let a worker overlap what waits (the database, a
platform's token endpoint during a connect), so the default stays at four.

Metrics: every worker writes its samples to one directory (PROMETHEUS_MULTIPROC_DIR, else
METRICS_DIR, else a new temporary one), emptied here at start. With API_METRICS_PORT set, the
arbiter serves their sum on METRICS_HOST:API_METRICS_PORT, a port the clients' Service does
not expose; else GET /metrics on any worker adds them all up. The directory is set before
anything imports prometheus_client (herald_common.metrics).
"""

from __future__ import annotations

import os
from typing import Any

from herald_common.logs import gunicorn_logconfig
from herald_common.multiproc import use_metrics_dir
from herald_common.settings import Settings

_settings = Settings()


use_metrics_dir(_settings.metrics_dir, prefix="herald-api-metrics-")

bind = f"{os.environ.get('API_HOST', _settings.api_host)}:{os.environ.get('API_PORT', _settings.api_port)}"
workers = int(os.environ.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
# Its error and access lines in Herald's format (LOG_FORMAT), as the app's own.
logconfig_dict = gunicorn_logconfig(_settings)
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# gunicorn 27's control socket would go under $HOME, which a read-only container cannot write.
control_socket_disable = True
# Each worker builds its own engine and broker in get_app(); nothing is shared across a fork.
preload_app = False


def when_ready(server: Any) -> None:
    """Serve the workers' summed samples on the metrics port, from the arbiter (which outlives
    every worker), when API_METRICS_PORT asks for it."""
    if not _settings.api_metrics_port:
        return
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(_settings.api_metrics_port, addr=_settings.metrics_host, registry=registry)
    server.log.info("metrics on %s:%s/metrics", _settings.metrics_host, _settings.api_metrics_port)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges must no longer count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
