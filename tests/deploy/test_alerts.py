"""deploy/prometheus/: the alert rules pass ``promtool check rules`` and their unit tests
(``promtool test rules``), each alert's test shows it firing in its situation and quiet in a
healthy one, every rule reads only series the service exports, and the Prometheus config of the
compose "monitoring" profile passes ``promtool check config`` with the rules it loads."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings
from tests.deploy.promql_names import (
    exercised_exposition,
    exported_series,
    metric_names,
    promtool,
    unexported,
)

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
README = ROOT / "README.md"

# Each alert the service promises, and the series it must be read from.
REQUIRED_ALERTS = {
    "MomoPaymentsNeedReview": "momo_needs_review_payments",
    "MomoEventDeliveriesFailing": "momo_event_delivery_attempts_total",
    "MomoProviderUnavailable": "momo_provider_request_duration_seconds_count",
    "MomoPendingPaymentTooOld": "momo_oldest_pending_payment_age_seconds",
    "MomoApiNotReady": "momo_dependency_up",
    "MomoWorkerNotSeen": "momo_worker_heartbeat_timestamp_seconds",
}
SEVERITIES = {"warning", "critical"}


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def alert_rules(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    return alert_rules(load(ALERTS))


@pytest.fixture(scope="module")
async def exported(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    return exported_series(await exercised_exposition(tmp_path_factory.mktemp("metrics")))


# --- promtool ----------------------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(REQUIRED_ALERTS)} rules found" in result.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_the_prometheus_config_and_the_rules_it_loads() -> None:
    result = promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert load(CONFIG)["rule_files"] == [ALERTS.name]


@pytest.mark.parametrize("alert", sorted(REQUIRED_ALERTS))
def test_an_alert_that_never_fires_fails_the_unit_tests(alert: str, tmp_path: Path) -> None:
    """The unit tests really watch each alert: with its expression made one that never holds,
    ``promtool test rules`` fails."""
    document = load(ALERTS)
    alert_rules(document)[alert]["expr"] = "vector(0) > 1"
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(document))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)

    result = promtool("test", "rules", str(tmp_path / ALERT_TESTS.name))

    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


def test_each_alert_is_tested_firing_and_quiet(rules: dict[str, dict[str, Any]]) -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load(ALERT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == set(rules)
    assert quiet == set(rules)


# --- what the rules read and say ---------------------------------------------------------------


def test_the_promised_alerts_exist_and_read_their_series(
    rules: dict[str, dict[str, Any]],
) -> None:
    assert set(rules) == set(REQUIRED_ALERTS)
    for alert, series in REQUIRED_ALERTS.items():
        assert series in metric_names(rules[alert]["expr"]), alert


def test_every_rule_reads_only_exported_series(
    rules: dict[str, dict[str, Any]], exported: frozenset[str]
) -> None:
    unknown = {alert: unexported(rule["expr"], exported) for alert, rule in rules.items()}
    assert {alert: names for alert, names in unknown.items() if names} == {}


def test_a_misspelt_metric_in_a_rule_is_caught(
    rules: dict[str, dict[str, Any]], exported: frozenset[str]
) -> None:
    expression = rules["MomoApiNotReady"]["expr"].replace("momo_dependency_up", "momo_dependecy_up")
    assert unexported(expression, exported) == {"momo_dependecy_up"}


def test_every_alert_waits_has_a_severity_and_says_what_to_do(
    rules: dict[str, dict[str, Any]],
) -> None:
    for alert, rule in rules.items():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), alert
        assert rule["labels"]["severity"] in SEVERITIES, alert
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), alert
        assert annotations["description"].strip(), alert
        assert annotations["runbook_url"] == f"README.md#runbook-{alert.lower()}", alert


def test_the_deliveries_and_provider_alerts_wait_as_long_as_promised(
    rules: dict[str, dict[str, Any]],
) -> None:
    assert rules["MomoEventDeliveriesFailing"]["for"] == "15m"
    assert rules["MomoProviderUnavailable"]["for"] == "5m"
    assert re.search(r"\)\s*>\s*0\.5\b", rules["MomoProviderUnavailable"]["expr"])


def test_the_pending_age_threshold_is_the_payment_timeout(
    rules: dict[str, dict[str, Any]],
) -> None:
    threshold = re.search(r">\s*(\d+)\s*$", rules["MomoPendingPaymentTooOld"]["expr"].strip())
    assert threshold is not None
    timeout = Settings.model_fields["payment_timeout_seconds"].default
    assert int(threshold.group(1)) == timeout


def _github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_runbook_url_names_a_heading_of_the_readme_runbook(
    rules: dict[str, dict[str, Any]],
) -> None:
    text = README.read_text(encoding="utf-8")
    anchors = {_github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    assert "runbook" in anchors, "README has no 'Runbook' section"
    for alert, rule in rules.items():
        fragment = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert fragment in anchors, f"{alert}: README has no heading for #{fragment}"
