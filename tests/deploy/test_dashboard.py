"""deploy/grafana/momo-gateway.json: every query reads series the service really exports, every
panel takes its data source from the dashboard's variable, and the panels an operator needs are
there. The provisioning files for the compose "monitoring" profile load it."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.deploy.promql_names import (
    SERIES_SUFFIXES,
    UncheckableExpression,
    declared_series,
    exercised_exposition,
    exported_series,
    exposed_series,
    metric_names,
    promtool,
    unexported,
    variable_query_names,
)

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "momo-gateway.json"
PROVISIONING = GRAFANA / "provisioning"
DATASOURCE_VARIABLE = "${datasource}"

# What an operator must find on the dashboard: panel title → a series its queries must read.
REQUIRED_PANELS = {
    "Payments per minute by status and provider": "momo_payment_transitions_total",
    "Success rate": "momo_payment_transitions_total",
    "Initiation latency p50 / p99": "momo_http_request_duration_seconds_bucket",
    "Provider errors": "momo_provider_request_duration_seconds_count",
    "Callbacks by outcome": "momo_callbacks_received_total",
    "Reconcile backlog": "momo_pending_payments",
    "Oldest pending payment age": "momo_oldest_pending_payment_age_seconds",
    "Event deliveries failing": "momo_event_delivery_attempts_total",
    "Payments in needs_review": "momo_needs_review_payments",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
async def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    return await exercised_exposition(tmp_path_factory.mktemp("metrics"))


@pytest.fixture(scope="module")
def exported(exposition: str) -> frozenset[str]:
    return exported_series(exposition)


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def unexported_by_panel(
    dashboard: dict[str, Any], exported: frozenset[str]
) -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    for title, expression in queries(dashboard):
        unknown = unexported(expression, exported)
        if unknown:
            found[title] = found.get(title, frozenset()) | unknown
    return found


# --- reading metric names out of PromQL ---------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("momo_outbox_backlog", {"momo_outbox_backlog"}),
        ('up{job="api"} == 0', {"up"}),
        (
            'histogram_quantile(0.99, sum by (le, provider) (rate(a_bucket{route="/v1/x",'
            ' provider=~"$provider"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        ("sum(rate(a_total[5m])) by (provider) / ignoring(result) group_left b", {"a_total", "b"}),
        (
            'sum without (instance) (a offset 1h) > bool 1e3 and on() vector(0) or c{x="}"}',
            {"a", "c"},
        ),
        (
            "time() - max(a_seconds @ end()) > 0x10 unless absent(b_seconds)",
            {"a_seconds", "b_seconds"},
        ),
        ('label_replace(a, "dst", "$1", "src", "(momo_.*)") # momo_in_a_comment', {"a"}),
        ("max_over_time(deriv(a[10m])[1h:5m]) * -Inf", {"a"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


@pytest.mark.parametrize(
    "expression",
    ['{__name__=~"momo_.*"}', 'sum(rate({job="api"}[5m]))', "rate($metric[5m])"],
)
def test_an_expression_whose_metrics_cannot_be_named_is_refused(expression: str) -> None:
    with pytest.raises(UncheckableExpression):
        metric_names(expression)


def test_a_grafana_label_values_query_reads_its_selector() -> None:
    query = 'label_values(momo_payments_created_total{job="x"}, provider)'
    assert variable_query_names(query) == {"momo_payments_created_total"}


# --- what the service exports ------------------------------------------------------------------


def test_exported_series_are_named_as_the_exposition_names_them(exposition: str) -> None:
    """The suffixes added to each declared family are the ones /metrics really serves."""
    shown = exposed_series(exposition)
    types = {family.name: family.type for family in REGISTRY.collect() if family.name in shown}
    assert {"counter", "gauge", "histogram"} <= set(types.values()), "the exercise is too thin"
    for family, samples in shown.items():
        assert samples == {family + suffix for suffix in SERIES_SUFFIXES[types[family]]}, family
    assert frozenset().union(*shown.values()) <= declared_series()


def test_every_panel_query_names_only_exported_series(
    dashboard: dict[str, Any], exported: frozenset[str]
) -> None:
    assert list(queries(dashboard)), "no queries found"
    assert unexported_by_panel(dashboard, exported) == {}


def test_a_misspelt_metric_in_a_panel_is_caught(
    dashboard: dict[str, Any], exported: frozenset[str]
) -> None:
    misspelt = copy.deepcopy(dashboard)
    panel = next(p for p in panels(misspelt) if p["title"] == "Callbacks by outcome")
    target = panel["targets"][0]
    target["expr"] = target["expr"].replace("momo_callbacks_received", "momo_callback_received")

    assert unexported_by_panel(misspelt, exported) == {
        "Callbacks by outcome": {"momo_callback_received_total"}
    }


def test_the_variable_queries_name_exported_series(
    dashboard: dict[str, Any], exported: frozenset[str]
) -> None:
    variables = [v for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert variables
    for variable in variables:
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        assert variable_query_names(text) <= exported, variable["name"]


def test_every_panel_query_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Each query as Prometheus would run it (Grafana's variables filled in), checked by
    promtool as a recording rule."""
    rules = []
    for index, (_title, expression) in enumerate(queries(dashboard)):
        runnable = re.sub(r"\$__\w+", "5m", expression)  # $__rate_interval, $__interval …
        runnable = re.sub(r"\$\{?\w+\}?", ".*", runnable)  # $provider, in regex matchers
        rules.append({"record": f"dashboard:query_{index}", "expr": runnable})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = promtool("check", "rules", str(path))

    assert result.returncode == 0, result.stdout + result.stderr


# --- its shape ----------------------------------------------------------------------------------


def test_the_dashboard_is_current_and_chooses_a_prometheus_data_source(
    dashboard: dict[str, Any],
) -> None:
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"]
    assert dashboard["title"]
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"


def test_every_panel_has_a_title_and_reads_through_the_variable(
    dashboard: dict[str, Any],
) -> None:
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(dashboard):
        assert panel.get("title", "").strip(), panel["id"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_VARIABLE}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_VARIABLE


def test_no_data_source_uid_is_hard_coded() -> None:
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text(encoding="utf-8")))
    # The dashboard's own uid, the variable, and Grafana's built-in annotation source.
    assert uids <= {"momo-gateway", DATASOURCE_VARIABLE, "-- Grafana --"}


def test_the_panels_an_operator_needs_are_there(dashboard: dict[str, Any]) -> None:
    read: dict[str, set[str]] = {}
    for title, expression in queries(dashboard):
        read.setdefault(title, set()).update(metric_names(expression))
    for title, series in REQUIRED_PANELS.items():
        assert title in read, f"no panel {title!r}"
        assert series in read[title], (title, read[title])
    latency = "\n".join(e for t, e in queries(dashboard) if t == "Initiation latency p50 / p99")
    assert "histogram_quantile(0.5," in latency
    assert "histogram_quantile(0.99," in latency
    assert 'route="/v1/payments"' in latency
    assert 'method="POST"' in latency


# --- provisioning (compose "monitoring" profile) ------------------------------------------------


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True

    providers = yaml.safe_load((PROVISIONING / "dashboards" / "momo-gateway.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
