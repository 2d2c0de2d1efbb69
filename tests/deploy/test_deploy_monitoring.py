"""deploy/monitoring: every expression parses as PromQL and names a metric that exists.

The project's own metrics are read from runtime.metrics, django-prometheus's from its
installed source; metrics of other exporters must be on EXTERNAL_METRICS, the list that
docs/deployment.md documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import django_prometheus
import promql_parser
import pytest
from deploy_support import DEPLOY, REPO, container, find, load_yaml_documents, render
from prometheus_client import Counter, Gauge, Histogram

from runtime import metrics as nexus_metrics

MONITORING = DEPLOY / "monitoring"
RUNBOOK = REPO / "docs" / "runbook.md"
GUIDE = REPO / "docs" / "deployment.md"
# Series of exporters outside this project, by source (documented in docs/deployment.md).
EXTERNAL_METRICS = {
    "kube-state-metrics": {
        "kube_pod_container_status_restarts_total", "kube_pod_container_status_last_terminated_reason",
        "kube_pod_container_resource_limits", "kube_pod_status_ready",
        "kube_horizontalpodautoscaler_status_current_replicas", "kube_horizontalpodautoscaler_spec_max_replicas",
        "kube_job_status_failed",
    },
    "cAdvisor": {"container_memory_working_set_bytes"},
    "postgres-exporter": {"pg_up", "pg_stat_database_numbackends", "pg_settings_max_connections"},
    "redis-exporter": {"redis_up"},
    "Prometheus": {"up"},
}
# Labels Prometheus attaches to every series of a scraped pod.
TARGET_LABELS = {"namespace", "pod", "container", "job", "instance", "endpoint", "service"}
# What the issue asks the rules to watch, by alert.
REQUIRED_ALERTS = {
    "NexusPodRestarting", "NexusOOMKilled", "NexusPodsNotReady", "NexusHigh5xxRate", "NexusHighLatencyP95",
    "NexusRuntimeBusy", "NexusHandlerTimeouts", "NexusBusyInstanceRatioHigh", "NexusHandlersWaiting",
    "NexusPostgresConnectionsHigh", "NexusRedisDown", "NexusWebSocketsDropped", "NexusHPAAtMaximum",
    "NexusMigrationJobFailed",
}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "nexus"}


def exposed_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{name.removesuffix('_total')}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


@cache
def project_metrics() -> dict[str, set[str]]:
    """Series name -> label names of every nexus_* metric."""
    found: dict[str, set[str]] = {}
    for value in vars(nexus_metrics).values():
        if isinstance(value, Counter | Gauge | Histogram):
            labels = set(value._labelnames) | ({"le"} if value._type == "histogram" else set())
            for series in exposed_names(value._name, value._type):
                found[series] = labels
    return found


@cache
def django_prometheus_metrics() -> set[str]:
    """Series names defined in django-prometheus's source (Counter/Histogram/Gauge calls)."""
    package = Path(django_prometheus.__file__).parent
    definition = re.compile(r"\b(Counter|Histogram|Gauge)\s*[,(]\s*\"(django_\w+)\"")
    names: set[str] = set()
    for source in package.rglob("*.py"):
        if "tests" not in source.parts:
            for kind, name in definition.findall(source.read_text(encoding="utf-8")):
                names |= exposed_names(name, kind.lower())
    return names


def selectors(expression: str) -> Iterator[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        elif isinstance(node, list):
            for item in node:
                visit(item)
        else:
            for attribute in ("lhs", "rhs", "expr", "param", "args", "vector_selector"):
                if hasattr(node, attribute):
                    visit(getattr(node, attribute))

    visit(promql_parser.parse(expression))
    return iter(found)


def unknown_metrics(expression: str) -> list[str]:
    """Problems with the metrics an expression names; empty when every one exists."""
    external = set().union(*EXTERNAL_METRICS.values())
    problems: list[str] = []
    for selector in selectors(expression):
        name = selector.name
        if name in project_metrics():
            labels = {matcher.name for matcher in selector.matchers.matchers}
            stray = labels - project_metrics()[name] - TARGET_LABELS
            if stray:
                problems.append(f"{name} has no label {sorted(stray)}")
        elif name not in django_prometheus_metrics() and name not in external:
            problems.append(f"{name} is no metric of the project, django-prometheus or EXTERNAL_METRICS")
    return problems


def rules() -> list[dict[str, Any]]:
    [rule_file] = load_yaml_documents(MONITORING / "prometheusrule.yaml")
    return [rule for group in rule_file["spec"]["groups"] for rule in group["rules"]]


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#+ (.+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-") for heading in headings}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MONITORING / "nexus-dashboard.json").read_text(encoding="utf-8"))
    return loaded


def grafana_expression(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


# --- the check itself ------------------------------------------------------------------------

def test_the_metric_inventories_are_read_from_their_sources() -> None:
    assert {"nexus_handler_executions_total", "nexus_handler_duration_seconds_bucket",
            "nexus_runtime_instances", "nexus_runtime_waiting_executions", "nexus_ws_connections"} <= set(
        project_metrics())
    assert project_metrics()["nexus_runtime_instances"] == {"state"}
    assert {"django_http_responses_total_by_status_view_method_total",
            "django_http_requests_latency_seconds_by_view_method_bucket"} <= django_prometheus_metrics()


@pytest.mark.parametrize(("expression", "problem"), [
    ("rate(nexus_handler_execution_total[5m])", "nexus_handler_execution_total is no metric"),
    ('nexus_runtime_instances{status="busy"}', "has no label ['status']"),
    ("sum(kube_pod_restarts_total)", "kube_pod_restarts_total is no metric"),
])
def test_the_check_finds_unknown_metrics_and_labels(expression: str, problem: str) -> None:
    assert any(problem in found for found in unknown_metrics(expression))


def test_the_check_refuses_broken_promql() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(nexus_errors_total[5m])")


def test_external_metrics_are_documented() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    for source, names in EXTERNAL_METRICS.items():
        assert source in guide, source
        for name in names:
            assert f"`{name}`" in guide, f"docs/deployment.md does not list {name} ({source})"


# --- rules, monitor, dashboard, adapter ----------------------------------------------------

def test_every_alert_names_real_metrics_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    names = []
    for rule in rules():
        names.append(rule["alert"])
        assert not unknown_metrics(rule["expr"]), (rule["alert"], unknown_metrics(rule["expr"]))
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/runbook.md" and anchor in anchors, (rule["alert"], anchor)
    assert len(names) == len(set(names))
    assert REQUIRED_ALERTS <= set(names), sorted(REQUIRED_ALERTS - set(names))


def test_pod_monitor_scrapes_the_metrics_port_of_the_server_pods() -> None:
    [monitor] = load_yaml_documents(MONITORING / "podmonitor.yaml")
    base = render(DEPLOY / "k8s" / "base")
    deployment = find(base, "Deployment", "nexus")
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    ports = {port["name"]: port["containerPort"] for port in container(deployment, "nexus")["ports"]}
    assert endpoint["port"] == "metrics" and ports["metrics"] == 9100
    assert endpoint["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items())


def test_monitoring_kustomization_renders_rules_monitor_and_dashboard() -> None:
    resources = render(MONITORING)
    assert {(r["kind"], r["metadata"]["name"]) for r in resources} == {
        ("PodMonitor", "nexus"), ("PrometheusRule", "nexus"), ("ConfigMap", "nexus-grafana-dashboard")}
    config_map = find(resources, "ConfigMap", "nexus-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["nexus-dashboard.json"]) == dashboard()


def test_every_dashboard_query_names_real_metrics() -> None:
    panels = dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels) >= 12
    expressions = [target["expr"] for panel in panels for target in panel["targets"]]
    for expression in expressions:
        assert not unknown_metrics(grafana_expression(expression)), (expression, unknown_metrics(
            grafana_expression(expression)))
    shown = {selector.name for expression in expressions for selector in selectors(grafana_expression(expression))}
    assert {"nexus_runtime_instances", "nexus_runtime_waiting_executions", "nexus_ws_connections",
            "nexus_handler_executions_total", "pg_stat_database_numbackends"} <= shown


def test_adapter_rule_serves_the_hpa_metric_from_a_real_series() -> None:
    [values] = load_yaml_documents(MONITORING / "prometheus-adapter.yaml")
    [rule] = values["rules"]["custom"]
    assert rule["name"]["as"] == "nexus_runtime_busy_instances"
    query = rule["metricsQuery"].replace("<<.LabelMatchers>>", 'namespace="nexus",pod="p"').replace(
        "<<.GroupBy>>", "pod")
    assert not unknown_metrics(query)
    assert not unknown_metrics(rule["seriesQuery"].strip("'"))
