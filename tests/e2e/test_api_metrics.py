"""The API's /metrics on a port of its own (API_METRICS_PORT), as deploy/k8s runs it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from herald_embedded.stack import BIN, free_port, wait_for


def test_metrics_are_served_on_their_own_port_and_not_on_the_apis(tmp_path: Path) -> None:
    # Given gunicorn as the API's Deployment runs it, with API_METRICS_PORT
    api, metrics = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PROMETHEUS_"))}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'herald.db'}",
            "API_HOST": "127.0.0.1",
            "API_PORT": str(api),
            "API_METRICS_PORT": str(metrics),
            "METRICS_HOST": "127.0.0.1",
            "METRICS_DIR": str(tmp_path / "metrics"),
            "WEB_CONCURRENCY": "1",
        }
    )
    argv = [str(BIN / "gunicorn"), "-c", "python:herald_api.gunicorn_conf"]
    proc = subprocess.Popen(
        [*argv, "herald_api.app:get_app()"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def health() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{api}/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        # When a request has been served
        wait_for(health, timeout=30, interval=0.1, what="gunicorn to serve")
        on_api = httpx.get(f"http://127.0.0.1:{api}/metrics", timeout=5)
        scraped = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    # Then the metrics port counts it, and the API's port has no /metrics
    assert on_api.status_code == 404
    assert scraped.status_code == 200
    assert 'herald_http_requests_total{method="GET",route="/health",status="200"}' in scraped.text
