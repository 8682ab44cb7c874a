"""deploy/k8s: every overlay renders, validates, and agrees with the code it deploys."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import kubernetes_validate
import pytest

from herald_common.contracts import (
    CONTRACTS,
    DELIVER_WEBHOOK,
    GENERATE_IMAGE,
    GENERATE_MONTHLY,
    NOTIFY_APPROVERS,
    PUBLISH,
    PULL_ANALYTICS,
    REFRESH_ACCOUNT,
    REGENERATE_POST,
    Contract,
)
from herald_common.settings import Settings
from herald_common.workers import shutdown_timeout_ms
from tests.deploy.custom_resources import REDIS_TRIGGER_KEYS, SHAPES, shape_errors
from tests.deploy.manifests import (
    ROOT,
    Resource,
    config_data,
    container_env,
    of_kind,
    pod_templates,
    secret_keys,
    selects,
)

# The oldest Kubernetes the manifests promise to work on, and the newest schemas bundled.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())


@dataclass(frozen=True)
class Worker:
    """A Dramatiq worker service: its command and the contracts of the queues it consumes."""

    command: str
    contracts: tuple[Contract, ...]

    @property
    def queues(self) -> list[str]:
        return list(dict.fromkeys(c.queue for c in self.contracts))


# Every worker service deployed. A new one is a copy of deploy/k8s/workers/publisher and a
# line here.
WORKERS = {
    "herald-publisher": Worker("herald-publisher", (PUBLISH,)),
    "herald-token-refresher": Worker("herald-token-refresher", (REFRESH_ACCOUNT,)),
    "herald-content": Worker("herald-content", (GENERATE_MONTHLY, REGENERATE_POST)),
    "herald-approval": Worker("herald-approval", (NOTIFY_APPROVERS,)),
    "herald-image": Worker("herald-image", (GENERATE_IMAGE,)),
    "herald-analytics": Worker("herald-analytics", (PULL_ANALYTICS,)),
    "herald-webhooks": Worker("herald-webhooks", (DELIVER_WEBHOOK,)),
}
SERVICES = {
    "herald-api": ["gunicorn", "-c", "python:herald_api.gunicorn_conf", "herald_api.app:get_app()"],
    "herald-scheduler": ["herald-scheduler"],
    **{name: [worker.command] for name, worker in WORKERS.items()},
}


def test_every_service_is_deployed_with_its_command(resources: list[Resource]) -> None:
    # Given the rendered Deployments and Jobs
    deployments = of_kind(resources, "Deployment")
    jobs = of_kind(resources, "Job")

    # I expect one Deployment per service, each running its command, and the migrate Job
    assert set(deployments) == set(SERVICES)
    for name, command in SERVICES.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == command, name
    assert set(jobs) == {"herald-migrate"}
    (migrate,) = jobs["herald-migrate"]["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["herald-admin", "migrate"]


def test_every_command_is_installed() -> None:
    # Given the console scripts of the installed packages
    scripts = {script.name for script in entry_points(group="console_scripts")}

    # I expect each command the manifests run to be one of them
    commands = {command[0] for command in SERVICES.values()} | {"herald-admin"}
    assert commands <= scripts, commands - scripts


def test_every_worker_command_consumes_its_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = {script.name: script for script in entry_points(group="console_scripts")}
    started: list[tuple[str, list[str]]] = []
    for worker in WORKERS.values():
        # Given the worker's command, with the `dramatiq` launch replaced by a recorder
        main = scripts[worker.command].load()
        monkeypatch.setattr(
            sys.modules[main.__module__],
            "run_worker",
            lambda _, queues, command=worker.command: started.append((command, queues)),
        )

        # When it starts
        main()

    # I expect each to consume its contracts' queues (those its ScaledObject watches)
    assert started == [(w.command, w.queues) for w in WORKERS.values()]
    # and every queue of the contracts to be consumed by one service
    assert sorted(q for w in WORKERS.values() for q in w.queues) == sorted(
        {c.queue for c in CONTRACTS}
    )


def test_builtin_resources_pass_strict_schema_validation(resources: list[Resource]) -> None:
    for resource in resources:
        if resource["kind"] in SHAPES:
            continue
        for version in KUBERNETES_VERSIONS:
            # strict: a misspelled optional field is an error, not ignored
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(str(part) for part in exc.path)
                pytest.fail(
                    f"{resource['kind']}/{resource['metadata']['name']} on {version}: "
                    f"{where}: {exc.message}"
                )


def test_custom_resources_have_their_operators_fields(resources: list[Resource]) -> None:
    # Given custom resources (an API group with a dot, not Kubernetes' own) of known shapes
    groups = {r["kind"]: r["apiVersion"].rpartition("/")[0] for r in resources}
    custom = {k for k, g in groups.items() if "." in g and not g.endswith(".k8s.io")}
    assert custom <= set(SHAPES), custom - set(SHAPES)
    for resource in resources:
        shape = SHAPES.get(resource["kind"])
        if shape is None:
            continue
        # I expect no unknown or misspelled field, and every value of its type
        errors = shape_errors(resource, shape)
        assert not errors, f"{resource['kind']}/{resource['metadata']['name']}: {errors}"


def test_scaled_objects_are_complete(resources: list[Resource]) -> None:
    for scaled in of_kind(resources, "ScaledObject").values():
        spec = scaled["spec"]
        assert spec["scaleTargetRef"]["name"]
        assert spec["triggers"]
        for trigger in spec["triggers"]:
            assert set(trigger["metadata"]) <= REDIS_TRIGGER_KEYS, trigger["metadata"]
            assert {"listName", "listLength"} <= set(trigger["metadata"])
        # the scale-down behaviour is an HPA's: validate it as one
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "keda-hpa"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "x"},
                "maxReplicas": 1,
                "behavior": behavior,
            },
        }
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(hpa, version, strict=True)


def test_every_image_is_the_overlays(resources: list[Resource]) -> None:
    images = {
        container["image"]
        for _, template in pod_templates(resources)
        for container in template["spec"]["containers"]
    }
    # One image for every service, named and tagged by the overlay (never the bare "herald")
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(r".+/herald:[\w.-]+", image), image


def test_workers_scale_on_their_redis_lists(resources: list[Resource]) -> None:
    # Given the ScaledObjects, the Deployments and herald-config
    scaled = of_kind(resources, "ScaledObject")
    deployments = of_kind(resources, "Deployment")
    config = config_data(resources)
    namespace = config["HERALD_BROKER_NAMESPACE"]

    # I expect one per worker service, scaling its Deployment
    targets = {s["spec"]["scaleTargetRef"]["name"]: s for s in scaled.values()}
    assert set(targets) == set(WORKERS)
    for name, worker in WORKERS.items():
        spec = targets[name]["spec"]
        deployment = deployments[name]
        # KEDA owns the replicas: a spec.replicas would be reset by every apply
        assert "replicas" not in deployment["spec"], name
        # never to zero: a cold start would make posts late
        assert spec["minReplicaCount"] >= 1
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
        # on the lists Dramatiq's Redis broker keeps: waiting and delayed
        lists = [trigger["metadata"]["listName"] for trigger in spec["triggers"]]
        expected = [f"{namespace}:{q}{suffix}" for q in worker.queues for suffix in ("", ".DQ")]
        assert lists == expected, name
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = container_env(resources, container)
        for trigger in spec["triggers"]:
            metadata = trigger["metadata"]
            assert trigger["type"] == "redis"
            assert all(isinstance(value, str) for value in metadata.values()), metadata
            assert int(metadata["listLength"]) > 0
            # the Redis the workers use: the same variables, the same database
            for key in ("hostFromEnv", "portFromEnv", "passwordFromEnv"):
                assert metadata[key] in env, (name, key)
            assert metadata["databaseIndex"] == config["REDIS_DB"]
        # REDIS_URL would win over REDIS_HOST in the app while KEDA watched REDIS_HOST
        assert "REDIS_URL" not in env


def test_the_api_scales_on_cpu(resources: list[Resource]) -> None:
    (hpa,) = of_kind(resources, "HorizontalPodAutoscaler").values()
    api = of_kind(resources, "Deployment")["herald-api"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "herald-api",
    }
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    assert "replicas" not in api["spec"]
    # CPU utilisation is measured against the request
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]


def test_every_deployment_has_one_disruption_budget(resources: list[Resource]) -> None:
    budgets = of_kind(resources, "PodDisruptionBudget").values()
    for name, deployment in of_kind(resources, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, name
        # the Deployment's own selector picks its pods (and only its pods)
        assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
        for other_name, other in of_kind(resources, "Deployment").items():
            if other_name != name:
                other_labels = other["spec"]["template"]["metadata"]["labels"]
                assert not selects(deployment["spec"]["selector"]["matchLabels"], other_labels)


def test_the_api_service_reaches_the_api_pods(resources: list[Resource]) -> None:
    (service,) = of_kind(resources, "Service").values()
    api = of_kind(resources, "Deployment")["herald-api"]
    assert selects(service["spec"]["selector"], api["spec"]["template"]["metadata"]["labels"])
    (container,) = api["spec"]["template"]["spec"]["containers"]
    port_names = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names


def test_pods_run_locked_down(resources: list[Resource]) -> None:
    for workload, template in pod_templates(resources):
        name = workload["metadata"]["name"]
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["serviceAccountName"] == "herald"
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, (name, kind)
            # with a read-only root, every writable path is an emptyDir: /tmp at least
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts, name
            for volume_name in mounts.values():
                assert "emptyDir" in volumes[volume_name], (name, volume_name)


def test_metrics_directories_are_writable(resources: list[Resource]) -> None:
    # The pods whose processes (gunicorn's, Dramatiq's) pool their samples in METRICS_DIR
    deployments = of_kind(resources, "Deployment")
    for name in ["herald-api", *WORKERS]:
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {entry["name"]: entry.get("value") for entry in container["env"]}
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert env["METRICS_DIR"] in mounts, name


def test_workers_get_time_to_finish_their_messages(resources: list[Resource]) -> None:
    deployments = of_kind(resources, "Deployment")
    for name, worker in WORKERS.items():
        longest_ms = max(c.time_limit_ms for c in worker.contracts)
        grace = deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        # Dramatiq finishes the messages in hand on SIGTERM: up to the time limit, then stops
        assert grace >= longest_ms / 1000 + 30, name
        # and run_worker lets it wait that long (--worker-shutdown-timeout), within the grace
        assert longest_ms <= shutdown_timeout_ms(worker.queues) <= (grace - 10) * 1000, name
        # and no rollout takes a pod away before its replacement is up
        assert deployments[name]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_worker_threads_are_set_per_queue(resources: list[Resource]) -> None:
    deployments = of_kind(resources, "Deployment")
    for name, worker in WORKERS.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = container_env(resources, container)
        for queue in worker.queues:
            variable = f"{queue.replace('-', '_')}_WORKER_CONCURRENCY".upper()
            assert int(env[variable] or 0) >= 1, (name, queue)


def test_the_api_probes_its_health_routes(resources: list[Resource]) -> None:
    api = of_kind(resources, "Deployment")["herald-api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    port_names = {port["name"] for port in container["ports"]}
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    # A new pod waits for the database, the migrations and the broker (/ready); once up, only
    # liveness decides (/health): a Redis outage must not empty the Service.
    assert probes["startupProbe"]["path"] == "/ready"
    assert probes["readinessProbe"]["path"] == "/health"
    assert probes["livenessProbe"]["path"] == "/health"
    assert {probe["port"] for probe in probes.values()} <= port_names
    routes = Path(_module_file("herald_api.routes")).read_text()
    assert '"/health"' in routes
    assert '"/ready"' in routes


def test_ports_match_the_settings(resources: list[Resource]) -> None:
    config = config_data(resources)
    for name, deployment in of_kind(resources, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = container_env(resources, container)
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        if name == "herald-api":
            assert ports == {
                "http": int(str(env["API_PORT"])),
                "metrics": int(str(env["API_METRICS_PORT"])),
            }
            assert env["API_HOST"] == "0.0.0.0"
        else:
            assert ports == {"metrics": int(config["METRICS_PORT"])}, name
            assert env["METRICS_HOST"] == "0.0.0.0"


def test_every_variable_is_one_herald_reads(resources: list[Resource]) -> None:
    # Given every variable name the manifests give a container, herald-config's keys and the
    # documented Secret keys
    names = set(config_data(resources)) | secret_keys()
    for _, template in pod_templates(resources):
        for container in template["spec"]["containers"]:
            names |= {entry["name"] for entry in container.get("env", [])}

    # I expect each to be a setting, or read by Herald's code (gunicorn_conf, workers)
    unknown = names - _setting_names() - _names_in_herald_source()
    assert not unknown, f"not read by anything: {sorted(unknown)}"


def test_every_overlay_is_scraped_exactly_one_way(resources: list[Resource]) -> None:
    deployments = of_kind(resources, "Deployment")
    annotated = {
        name
        for name, d in deployments.items()
        if d["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape")
    }
    monitors = of_kind(resources, "ServiceMonitor") | of_kind(resources, "PodMonitor")
    # Both would scrape every pod twice (and double every rate in the rules)
    assert bool(annotated) != bool(monitors)
    if annotated:
        assert annotated == set(deployments)
        for d in deployments.values():
            (container,) = d["spec"]["template"]["spec"]["containers"]
            annotations = d["spec"]["template"]["metadata"]["annotations"]
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            assert int(annotations["prometheus.io/port"]) == ports["metrics"]
            assert annotations["prometheus.io/path"] == "/metrics"
    else:
        _check_monitors(resources)


def test_jobs_are_named_as_the_rules_expect(resources: list[Resource]) -> None:
    # The rules select `up{job=~"herald-.+"}`: every pod's app.kubernetes.io/name (the job
    # label under the PodMonitor and the documented relabelling) starts with herald-.
    for _, template in pod_templates(resources):
        assert template["metadata"]["labels"]["app.kubernetes.io/name"].startswith("herald-")


def test_no_secret_is_committed(resources: list[Resource]) -> None:
    # herald-secrets is created outside git; the manifests only refer to it
    assert not of_kind(resources, "Secret")
    gitignore = (ROOT / "deploy" / "k8s" / ".gitignore").read_text().split()
    assert "secrets.env" in gitignore


def _check_monitors(resources: list[Resource]) -> None:
    """The PodMonitor reaches every pod's `metrics` port, the API's too."""
    deployments = of_kind(resources, "Deployment")
    assert not of_kind(resources, "ServiceMonitor")
    (pod_monitor,) = of_kind(resources, "PodMonitor").values()
    (pod_endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    scraped = set()
    for name, deployment in deployments.items():
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        labels = template["metadata"]["labels"]
        has_port = pod_endpoint["port"] in {port["name"] for port in container["ports"]}
        if has_port and selects(pod_monitor["spec"]["selector"]["matchLabels"], labels):
            scraped.add(name)
            assert pod_monitor["spec"]["jobLabel"] in labels
    assert scraped == set(deployments)


def test_the_apis_metrics_are_not_in_its_service(resources: list[Resource]) -> None:
    # Given the API's Service and pod
    (container,) = of_kind(resources, "Deployment")["herald-api"]["spec"]["template"]["spec"][
        "containers"
    ]
    service = of_kind(resources, "Service")["herald-api"]
    env = container_env(resources, container)

    # I expect /metrics on a port of its own, served by gunicorn's arbiter, which the Service
    # (the clients' way in) does not expose
    assert int(str(env["API_METRICS_PORT"])) != int(str(env["API_PORT"]))
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]


def _module_file(module: str) -> str:
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    return spec.origin


def _setting_names() -> set[str]:
    """The variables Settings reads: a field's alias, else its name (case-insensitive)."""
    return {(field.alias or name).upper() for name, field in Settings.model_fields.items()}


def _names_in_herald_source() -> set[str]:
    """Upper-case string literals in Herald's packages: variables read with os.environ."""
    names: set[str] = set()
    for source in ROOT.glob("*/*/src/**/*.py"):
        names |= set(re.findall(r"""["']([A-Z][A-Z0-9_]+)["']""", source.read_text()))
    return names
