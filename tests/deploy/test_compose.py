"""compose.yaml, checked offline: `docker compose config` accepts it, it runs what deploy/k8s
runs, gives each worker its grace period, and Prometheus scrapes every Herald process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from herald_common.workers import shutdown_timeout_ms
from tests.deploy.manifests import DEPLOY, ROOT
from tests.deploy.test_manifests import SERVICES, WORKERS

COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "compose" / "herald.example.env"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.compose.yml"
#: The compose service of each Deployment (herald-<name>).
HERALD = {name.removeprefix("herald-"): command for name, command in SERVICES.items()}


def docker_compose(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("docker-compose")
    return subprocess.run(
        [str(binary), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """compose.yaml beside a herald.env filled from the example (the real one is git's to
    ignore), in a directory of its own."""
    directory = tmp_path_factory.mktemp("compose")
    shutil.copy(COMPOSE, directory / "compose.yaml")
    (directory / "deploy" / "compose").mkdir(parents=True)
    shutil.copy(ENV_EXAMPLE, directory / "deploy" / "compose" / "herald.env")
    return directory


@pytest.fixture(scope="module")
def config(project: Path) -> dict[str, Any]:
    """The project as Compose resolves it."""
    result = docker_compose("config", "--format", "json", cwd=project)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_compose_validates(project: Path) -> None:
    result = docker_compose("config", "-q", cwd=project)
    assert result.returncode == 0, result.stderr


def test_the_secrets_file_is_required_and_never_committed(tmp_path: Path) -> None:
    shutil.copy(COMPOSE, tmp_path / "compose.yaml")
    result = docker_compose("config", "-q", cwd=tmp_path)
    assert result.returncode != 0
    assert "herald.env" in result.stderr
    assert "herald.env" in (DEPLOY / "compose" / ".gitignore").read_text().split()


def test_it_runs_what_kubernetes_runs(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, command in HERALD.items():
        assert services[name]["command"] == command, name
        assert services[name]["image"] == services["migrate"]["image"], name
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[name]["environment"]["HERALD_ENV"] == "production"
        assert services[name]["read_only"] is True
    assert services["migrate"]["command"] == ["herald-admin", "migrate"]
    assert services["migrate"]["build"]["context"]
    # and the stores keep their data in volumes, each service with a health check
    for store, path in [("postgres", "/var/lib/postgresql/data"), ("redis", "/data")]:
        assert [v["target"] for v in services[store]["volumes"]] == [path]
    for name, service in services.items():
        if name != "migrate":
            assert service["healthcheck"]["test"], name


def test_workers_finish_their_jobs_before_compose_kills_them(config: dict[str, Any]) -> None:
    for name, worker in WORKERS.items():
        grace = config["services"][name.removeprefix("herald-")]["stop_grace_period"]
        seconds = _seconds(grace)
        assert seconds * 1000 > shutdown_timeout_ms(worker.queues), (name, grace)


def test_prometheus_scrapes_every_herald_process_with_the_rules(config: dict[str, Any]) -> None:
    scrape = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {
        job["job_name"]: target
        for job in scrape["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert jobs == {f"herald-{name}": f"{name}:9191" for name in HERALD}
    assert scrape["rule_files"] == ["herald.rules.yml"]
    # the API's metrics port is reached inside, never published
    api = config["services"]["api"]
    assert api["environment"]["API_METRICS_PORT"] == "9191"
    assert [p["target"] for p in api["ports"]] == [8000]
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: `make debian-tools` (apt-get install prometheus)"
    checked = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _seconds(duration: str) -> int:
    """Compose's normalised duration ("3m0s", "30m30s", "45s") in seconds."""
    total, number = 0, ""
    for char in duration:
        if char.isdigit():
            number += char
        else:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    return total
