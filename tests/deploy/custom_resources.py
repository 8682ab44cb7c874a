"""Shapes of the custom resources the manifests use (KEDA, Prometheus operator).

kubernetes-validate has no schema for a CRD, so these list the fields of each resource that
its operator's API reference documents (KEDA 2.x ScaledObject, prometheus-operator
monitoring.coreos.com/v1) and the type of each: a misspelled key or a number where a string
belongs fails here instead of being dropped by the API server.
"""

from __future__ import annotations

from typing import Any

# A shape is a type, a dict of key → shape (unknown keys are errors), {str: shape} for a map
# with any keys, or [shape] for a list.
Shape = Any

METADATA: Shape = {
    "name": str,
    "namespace": str,
    "labels": {str: str},
    "annotations": {str: str},
}

SCALED_OBJECT: Shape = {
    "apiVersion": str,
    "kind": str,
    "metadata": METADATA,
    "spec": {
        "scaleTargetRef": {
            "apiVersion": str,
            "kind": str,
            "name": str,
            "envSourceContainerName": str,
        },
        "pollingInterval": int,
        "cooldownPeriod": int,
        "initialCooldownPeriod": int,
        "idleReplicaCount": int,
        "minReplicaCount": int,
        "maxReplicaCount": int,
        "fallback": {"failureThreshold": int, "replicas": int, "behavior": str},
        "advanced": {
            "restoreToOriginalReplicaCount": bool,
            # behavior is an autoscaling/v2 HPA's: checked against the HPA schema
            "horizontalPodAutoscalerConfig": {"name": str, "behavior": dict},
            "scalingModifiers": {
                "formula": str,
                "target": str,
                "activationTarget": str,
                "metricType": str,
            },
        },
        "triggers": [
            {
                "type": str,
                "name": str,
                "metadata": {str: str},
                "metricType": str,
                "useCachedMetrics": bool,
                "authenticationRef": {"name": str, "kind": str},
            }
        ],
    },
}

# The `redis` (lists) scaler's metadata keys.
REDIS_TRIGGER_KEYS = {
    "address",
    "addressFromEnv",
    "host",
    "hostFromEnv",
    "port",
    "portFromEnv",
    "username",
    "usernameFromEnv",
    "passwordFromEnv",
    "listName",
    "listLength",
    "activationListLength",
    "enableTLS",
    "unsafeSsl",
    "databaseIndex",
}

_ENDPOINT: Shape = {
    "port": str,
    "targetPort": str,
    "path": str,
    "scheme": str,
    "params": {str: [str]},
    "interval": str,
    "scrapeTimeout": str,
    "honorLabels": bool,
    "honorTimestamps": bool,
    "relabelings": [dict],
    "metricRelabelings": [dict],
}
_SELECTOR: Shape = {"matchLabels": {str: str}, "matchExpressions": [dict]}
_NAMESPACE_SELECTOR: Shape = {"any": bool, "matchNames": [str]}

SERVICE_MONITOR: Shape = {
    "apiVersion": str,
    "kind": str,
    "metadata": METADATA,
    "spec": {
        "jobLabel": str,
        "targetLabels": [str],
        "podTargetLabels": [str],
        "endpoints": [_ENDPOINT],
        "selector": _SELECTOR,
        "namespaceSelector": _NAMESPACE_SELECTOR,
        "sampleLimit": int,
    },
}

POD_MONITOR: Shape = {
    "apiVersion": str,
    "kind": str,
    "metadata": METADATA,
    "spec": {
        "jobLabel": str,
        "podTargetLabels": [str],
        "podMetricsEndpoints": [_ENDPOINT | {"portNumber": int}],
        "selector": _SELECTOR,
        "namespaceSelector": _NAMESPACE_SELECTOR,
        "sampleLimit": int,
    },
}

PROMETHEUS_RULE: Shape = {
    "apiVersion": str,
    "kind": str,
    "metadata": METADATA,
    "spec": {
        "groups": [
            {
                "name": str,
                "interval": str,
                "limit": int,
                "rules": [
                    {
                        "alert": str,
                        "record": str,
                        "expr": str,
                        "for": str,
                        "keep_firing_for": str,
                        "labels": {str: str},
                        "annotations": {str: str},
                    }
                ],
            }
        ]
    },
}

SHAPES = {
    "ScaledObject": SCALED_OBJECT,
    "ServiceMonitor": SERVICE_MONITOR,
    "PodMonitor": POD_MONITOR,
    "PrometheusRule": PROMETHEUS_RULE,
}


def shape_errors(value: Any, shape: Shape, path: str = "") -> list[str]:
    """What in `value` does not fit `shape`: unknown keys and wrong types, with their paths."""
    if isinstance(shape, type):
        # YAML's true is not a number, and a number is not a string
        fits = isinstance(value, shape) and not (shape is int and isinstance(value, bool))
        return [] if fits else [f"{path or '/'}: {value!r} is not {shape.__name__}"]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [
            e for i, item in enumerate(value) for e in shape_errors(item, shape[0], f"{path}/{i}")
        ]
    if not isinstance(value, dict):
        return [f"{path}: not a mapping"]
    if set(shape) == {str}:
        return [e for k, v in value.items() for e in shape_errors(v, shape[str], f"{path}/{k}")]
    errors = [f"{path}/{key}: unknown field" for key in value if key not in shape]
    for key, item in value.items():
        if key in shape:
            errors += shape_errors(item, shape[key], f"{path}/{key}")
    return errors
