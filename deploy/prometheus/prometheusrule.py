"""Write the PrometheusRule (Prometheus operator) that carries herald.rules.yml.

    uv run --frozen --no-sync python deploy/prometheus/prometheusrule.py

herald.rules.yml is the source (promtool reads it; so does the rules ConfigMap); the
PrometheusRule in deploy/k8s/components/prometheus-operator/ is generated from it, and
tests/deploy checks that the two hold the same groups.
"""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "herald.rules.yml"
TARGET = HERE.parent / "k8s" / "components" / "prometheus-operator" / "prometheus-rule.yaml"
HEADER = (
    "# Generated from deploy/prometheus/herald.rules.yml by deploy/prometheus/prometheusrule.py:\n"
    "# edit the rules there and run it again.\n"
)


def prometheus_rule(rules: dict) -> dict:
    """The PrometheusRule resource holding these rule groups."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "herald"},
        "spec": {"groups": rules["groups"]},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the longer expressions) as literal blocks, as in the source."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def main() -> None:
    """Regenerate the PrometheusRule file."""
    rules = yaml.safe_load(RULES.read_text())
    text = yaml.dump(prometheus_rule(rules), Dumper=_Dumper, sort_keys=False, width=120)
    TARGET.write_text(HEADER + text)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
