"""deploy/k8s's NetworkPolicies, evaluated as Kubernetes does: a pod selected by a policy of a
direction takes only what one of those policies' rules allows (rules add up, never subtract).

No cluster here: `allows` below follows the NetworkPolicy semantics for the fields the
manifests use (podSelector, namespaceSelector, ipBlock with except, numbered and named ports).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.deploy.manifests import Resource, of_kind, pod_templates

PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}
KUBE_DNS = {"k8s-app": "kube-dns"}
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}


@dataclass(frozen=True)
class Peer:
    """The other end: a pod (its labels and its namespace's) or an address outside."""

    ip: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    namespace: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(rule_peer: dict[str, Any], peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        if peer.ip is None:
            return False
        address = ipaddress.ip_address(peer.ip)
        block = rule_peer["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(
            address in ipaddress.ip_network(e)
            for e in block.get("except", [])
            if ipaddress.ip_network(e).version == address.version
        )
    if peer.ip is not None:
        return False
    if "namespaceSelector" in rule_peer:
        ns_ok = selects(rule_peer["namespaceSelector"], peer.namespace)
    else:
        ns_ok = peer.namespace.get("kubernetes.io/metadata.name") == "herald"
    return ns_ok and selects(rule_peer.get("podSelector", {}), peer.labels)


def _port_matches(rule_ports: list[dict[str, Any]] | None, port: int, named: dict[str, int]):
    if not rule_ports:
        return True
    for entry in rule_ports:
        wanted = entry["port"]
        number = named.get(wanted) if isinstance(wanted, str) else wanted
        if number == port:
            return True
    return False


def allows(
    policies: list[Resource],
    pod: Peer,
    direction: str,
    peer: Peer,
    port: int,
) -> bool:
    """Whether traffic between `pod` and `peer` on `port` passes, `direction` being the pod's
    Ingress (from peer) or Egress (to peer)."""
    mine = [
        p
        for p in policies
        if selects(p["spec"]["podSelector"], pod.labels)
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not mine:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    # A named port names a port of the pod the traffic goes to.
    named = pod.ports if direction == "Ingress" else peer.ports
    for policy in mine:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(p, peer) for p in peers):
                continue
            if _port_matches(rule.get("ports"), port, named):
                return True
    return False


def _pods(resources: list[Resource]) -> dict[str, Peer]:
    pods = {}
    for resource, template in pod_templates(resources):
        (container,) = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        name = resource["metadata"]["name"]
        pods[name] = Peer(labels=template["metadata"]["labels"], ports=ports)
    return pods


@pytest.fixture
def policies(resources: list[Resource]) -> list[Resource]:
    return list(of_kind(resources, "NetworkPolicy").values())


def test_every_pod_is_denied_what_no_policy_allows(resources, policies) -> None:
    for name, pod in _pods(resources).items():
        # From a pod of another namespace, or to another pod of the cluster, on a random port
        other = Peer(labels={"app": "other"}, namespace={"kubernetes.io/metadata.name": "x"})
        assert not allows(policies, pod, "Ingress", other, 8080), name
        assert not allows(policies, pod, "Egress", other, 8080), name
        assert not allows(policies, pod, "Egress", Peer(ip="10.1.2.3"), 8080), name


def test_the_api_takes_ingress_and_only_prometheus_scrapes(resources, policies) -> None:
    pods = _pods(resources)
    api = pods["herald-api"]
    anyone = Peer(ip="203.0.113.7")
    prometheus = Peer(labels=PROMETHEUS, namespace=MONITORING)

    assert allows(policies, api, "Ingress", anyone, api.ports["http"])
    assert not allows(policies, api, "Ingress", anyone, api.ports["metrics"])
    for name, pod in pods.items():
        if "metrics" in pod.ports:
            assert allows(policies, pod, "Ingress", prometheus, pod.ports["metrics"]), name
        if name != "herald-api":
            assert not allows(policies, pod, "Ingress", anyone, 9191), name
            assert not allows(policies, pod, "Ingress", prometheus, 8000), name


@pytest.mark.parametrize("name", ["herald-publisher", "herald-scheduler", "herald-api"])
def test_pods_reach_dns_the_stores_and_the_internet_never_the_cluster_or_metadata(
    resources, policies, name
) -> None:
    pod = _pods(resources)[name]
    dns = Peer(labels=KUBE_DNS, namespace=KUBE_SYSTEM)

    # DNS, PostgreSQL and Redis (in the cluster or not), and the platforms' public APIs
    assert allows(policies, pod, "Egress", dns, 53)
    assert allows(policies, pod, "Egress", Peer(ip="10.20.0.5"), 5432)
    assert allows(policies, pod, "Egress", Peer(ip="10.20.0.6"), 6379)
    assert allows(policies, pod, "Egress", Peer(ip="104.244.42.1"), 443)
    assert allows(policies, pod, "Egress", Peer(ip="2a03:2880:f12f::1"), 443)
    assert allows(policies, pod, "Egress", Peer(ip="142.250.1.1"), 587)
    # never the metadata address, nor anything else on the cluster's private networks
    for address, port in [
        ("169.254.169.254", 80),
        ("169.254.169.254", 5432),
        ("10.96.0.1", 443),
        ("172.20.0.9", 8000),
        ("192.168.1.1", 22),
        ("100.64.0.1", 443),
        ("fd00::1", 443),
    ]:
        assert not allows(policies, pod, "Egress", Peer(ip=address), port), (address, port)
