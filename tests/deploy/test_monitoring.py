"""deploy/prometheus and deploy/grafana: every query parses and names only metrics Herald
exports; the alerts are complete and documented; the dashboard is importable.

`promtool check rules` and `promtool test rules` (deploy/check.sh) go further where promtool
is installed; these checks need only the project's dev dependencies.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
import yaml

from herald_common.contracts import CONTRACTS
from tests.deploy.manifests import DEPLOY, K8S

RULES = DEPLOY / "prometheus" / "herald.rules.yml"
PROMETHEUS_RULE = K8S / "components" / "prometheus-operator" / "prometheus-rule.yaml"
DASHBOARD = DEPLOY / "grafana" / "herald.json"
README = DEPLOY / "README.md"

# The contract: every metric Herald's processes export (name → type). Rules and the dashboard
# may use these and nothing else (and Prometheus's own `up`).
METRICS = {
    # API (job herald-api)
    "herald_http_requests_total": "counter",
    "herald_http_request_duration_seconds": "histogram",
    # every worker service: Dramatiq's Prometheus middleware
    "dramatiq_messages_total": "counter",
    "dramatiq_message_errors_total": "counter",
    "dramatiq_message_retries_total": "counter",
    "dramatiq_message_rejects_total": "counter",
    "dramatiq_messages_inprogress": "gauge",
    "dramatiq_delayed_messages_inprogress": "gauge",
    "dramatiq_message_duration_milliseconds": "histogram",
    # scheduler
    "herald_queue_messages": "gauge",
    "herald_oldest_due_target_age_seconds": "gauge",
    "herald_targets": "gauge",
    "herald_accounts": "gauge",
    "herald_scheduler_tick_duration_seconds": "histogram",
    "herald_scheduler_last_tick_timestamp_seconds": "gauge",
    "herald_targets_dispatched_total": "counter",
    "herald_workers_alive": "gauge",
    # publisher
    "herald_targets_published_total": "counter",
    "herald_targets_failed_total": "counter",
    "herald_publish_lateness_seconds": "histogram",
    "herald_publish_attempts_total": "counter",
    # content, image and analytics services (herald_common.jobs)
    "herald_jobs_finished_total": "counter",
    "herald_job_duration_seconds": "histogram",
    # token-refresher
    "herald_token_refreshes_total": "counter",
    "herald_accounts_needs_reauth_total": "counter",
}
# Gauges every scheduler replica exports alike: summing them would count each reading twice.
SCHEDULER_GAUGES = {
    "herald_queue_messages",
    "herald_oldest_due_target_age_seconds",
    "herald_targets",
    "herald_accounts",
    "herald_scheduler_last_tick_timestamp_seconds",
    "herald_workers_alive",
}
SEVERITIES = {"critical", "warning", "info"}
# Grafana's variables, replaced by values of the same type before parsing.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$platform": ".*",
    "$queue": ".*",
}


def series_names() -> dict[str, str]:
    """Every series name a metric of the contract may be queried by → its metric."""
    names = {"up": "up"}
    for metric, kind in METRICS.items():
        names[metric] = metric
        if kind == "histogram":
            names |= {f"{metric}{suffix}": metric for suffix in ("_bucket", "_sum", "_count")}
    return names


def alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables replaced) for every panel target."""
    queries = []
    for panel in all_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr.replace("$1", ""), f"unknown variable in {panel['title']}"
            queries.append((f"{panel['title']} {target['refId']}", expr))
    return queries


def rule_queries() -> list[tuple[str, str]]:
    return [(rule["alert"], rule["expr"]) for rule in alerts()]


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


@pytest.mark.parametrize(
    ("where", "expr"), [pytest.param(w, e, id=w) for w, e in rule_queries() + dashboard_queries()]
)
def test_every_query_parses_and_uses_only_known_metrics(where: str, expr: str) -> None:
    # When the query is parsed (syntax and types: rate() of a range, and so on)
    try:
        found = selectors(expr)
    except ValueError as exc:
        pytest.fail(f"{where}: {exc}\n{expr}")

    # I expect every series it selects to be one Herald exports, by its name
    names = series_names()
    for selector in found:
        assert selector.name in names, f"{where}: {selector.name} is not in the contract"
        # and a histogram only through its _bucket, _sum or _count series
        assert METRICS.get(selector.name) != "histogram", f"{where}: {selector.name}"


def test_scheduler_gauges_are_never_summed_across_replicas() -> None:
    for where, expr in rule_queries() + dashboard_queries():

        def visit(node: Any, where: str = where) -> bool:
            if (
                isinstance(node, promql_parser.AggregateExpr)
                and str(node.op) in {"sum", "avg", "count"}
                and isinstance(node.expr, promql_parser.VectorSelector)
            ):
                assert node.expr.name not in SCHEDULER_GAUGES, f"{where}: use max(), not {node.op}"
            return True

        promql_parser.walk(promql_parser.parse(expr), visit)


def test_the_dashboard_shows_every_metric() -> None:
    used = {series_names()[s.name] for _, expr in dashboard_queries() for s in selectors(expr)}
    assert set(METRICS) - used == set()


def test_every_alert_is_complete_and_documented() -> None:
    # Given the runbook's headings
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in README.read_text().splitlines()
        if line.startswith("#")
    }
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    for rule in alerts():
        name = rule["alert"]
        # I expect a wait, a severity, words for a person and a runbook section that exists
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        anchor = rule["annotations"]["runbook"].removeprefix("deploy/README.md#")
        assert anchor == name.lower(), name
        assert anchor in headings, f"deploy/README.md has no section for {name}"


def test_required_alerts_exist() -> None:
    # The conditions the runbook promises a page or a warning for, by the metric they watch
    watched = {s.name for _, expr in rule_queries() for s in selectors(expr)}
    assert {
        "herald_oldest_due_target_age_seconds",
        "herald_queue_messages",
        "dramatiq_message_rejects_total",
        "herald_publish_lateness_seconds_bucket",
        "herald_targets_failed_total",
        "herald_targets",
        "herald_accounts",
        "herald_workers_alive",
        "herald_scheduler_last_tick_timestamp_seconds",
        "herald_http_requests_total",
        "herald_http_request_duration_seconds_bucket",
        "up",
    } <= watched


def test_promtool_unit_tests_cover_the_critical_alerts() -> None:
    tests = yaml.safe_load((DEPLOY / "prometheus" / "tests.yml").read_text())
    assert tests["rule_files"] == [RULES.name]
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {
        "HeraldNothingDraining",
        "HeraldDeadLetters",
        "HeraldNoPublishWorkers",
        "HeraldSchedulerNotTicking",
    } <= tested
    assert {rule["alert"] for rule in alerts()} - tested == set()


def test_every_queue_has_a_no_live_worker_alert() -> None:
    # Given the roles each alert on herald_workers_alive watches (by equality or regex)
    watched: dict[str, set[str]] = {}
    for rule in alerts():
        for match in re.finditer(r'herald_workers_alive\{role(=~?)"([^"]+)"\}', rule["expr"]):
            roles = match.group(2).split("|") if match.group(1) == "=~" else [match.group(2)]
            watched.setdefault(rule["alert"], set()).update(roles)

    # I expect every queue of the contracts watched, and each absent role alerting too
    queues = {contract.queue for contract in CONTRACTS}
    assert set().union(*watched.values()) == queues
    for name, roles in watched.items():
        expr = next(rule["expr"] for rule in alerts() if rule["alert"] == name)
        for role in roles:
            assert f'absent(herald_workers_alive{{role="{role}"}})' in expr, (name, role)
    # and the worker manifest cites one that exists
    worker = (K8S / "worker" / "worker.yaml").read_text()
    assert "HeraldNoLiveWorkers" in worker
    assert "HeraldNoLiveWorkers" in watched


def test_promtool_tests_pass() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: `make debian-tools` (apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_rule_carries_the_rules_file() -> None:
    # deploy/prometheus/prometheusrule.py writes it; it must not drift from the source
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text())
    rules = yaml.safe_load(RULES.read_text())
    assert resource["spec"]["groups"] == rules["groups"], (
        "run: uv run --frozen --no-sync python deploy/prometheus/prometheusrule.py"
    )


def test_the_dashboard_is_importable() -> None:
    board = dashboard()
    panels = list(all_panels(board["panels"]))
    # a fixed uid (links and provisioning keep working) and unique panel ids
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", board["uid"])
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    # the data source is a variable, so the dashboard imports into any Grafana
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    source = {"type": "prometheus", "uid": f"${{{variable['name']}}}"}
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == source, panel["title"]
        assert all(target["datasource"] == source for target in panel["targets"])
    # the rows the runbook refers to
    rows = [panel["title"] for panel in panels if panel["type"] == "row"]
    assert rows == [
        "Overview",
        "Queues",
        "API",
        "Token refresh",
        "Background jobs (content, images, analytics)",
    ]
    # no two panels overlap on the grid
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
