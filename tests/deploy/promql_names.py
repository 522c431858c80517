"""Which metrics a PromQL expression reads, and which series this service exports.

Shared by the dashboard and the alert-rule tests, so that neither a panel nor an alert can name a
series nobody serves (a typo there is silent: the panel stays empty, the alert never fires).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app import metrics  # noqa: F401 - registers every collector of the service
from app.merchants.service import create_merchant
from app.providers import registry
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from tests.conftest import PAYMENT_BODY, make_settings, migrated_database, running_app
from tests.fakes import FakeProvider
from tests.services import need_program

# Series Prometheus makes itself for every scrape target; panels and rules may read them.
PROMETHEUS_BUILTINS = frozenset({"up"})

SERVICE_PREFIX = "momo_"

# The sample names prometheus-client gives a family of each type (``*_created`` is switched off
# in app/metrics.py).
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}

KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'" r"|`[^`]*`")
_COMMENT = re.compile(r"#[^\n]*")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_MODIFIER = re.compile(r"\b(?:offset\s+-?|@\s*)[\w.$]+(?:\(\))?", re.IGNORECASE)
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_TOKEN = re.compile(
    r"(?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_:][\w:]*)(?P<call>\s*\()?"
)
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*\w+\s*\)\s*$", re.DOTALL)


class UncheckableExpression(ValueError):
    """The expression picks its metrics in a way no list of names can check."""


def metric_names(expression: str) -> frozenset[str]:
    """The metric names an expression selects: what is left once strings, comments, label
    matchers, ranges, ``offset``/``@`` modifiers, ``by (...)``-style label lists, numbers,
    keywords and function names are taken out."""
    text = _STRING.sub(" 0 ", expression)
    text = _COMMENT.sub(" ", text)
    if "__name__" in text:
        raise UncheckableExpression(f"selects metrics by __name__: {expression!r}")
    for match in re.finditer(r"\{", text):
        before = text[: match.start()].rstrip()
        if not before or not re.match(r"[\w:]", before[-1]):
            raise UncheckableExpression(f"a selector without a metric name: {expression!r}")
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _MODIFIER.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    if "$" in text:
        raise UncheckableExpression(f"a variable outside a matcher or range: {expression!r}")
    names = set()
    for token in _TOKEN.finditer(text):
        name = token.group("name")
        if name is None or token.group("call") or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return frozenset(names)


def variable_query_names(query: str) -> frozenset[str]:
    """The metric names a Grafana Prometheus variable query reads: ``label_values(selector,
    label)`` reads the selector's; any other query is taken as PromQL."""
    match = _LABEL_VALUES.match(query)
    return metric_names(match.group("selector") if match else query)


def unexported(expression: str, exported: frozenset[str]) -> frozenset[str]:
    """The names ``expression`` reads that neither the service nor Prometheus provides."""
    return metric_names(expression) - exported - PROMETHEUS_BUILTINS


# --- what the service exports -------------------------------------------------------------------


def declared_series(registry: CollectorRegistry = REGISTRY) -> frozenset[str]:
    """Every series name the service's collectors can serve, children or not yet."""
    names: set[str] = set()
    for family in registry.collect():
        if family.name.startswith(SERVICE_PREFIX):
            names.update(family.name + suffix for suffix in SERIES_SUFFIXES[family.type])
    return frozenset(names)


def exposed_series(exposition: str) -> dict[str, frozenset[str]]:
    """Family name → the sample names it has in a ``/metrics`` text (the service's only)."""
    return {
        family.name: frozenset(sample.name for sample in family.samples)
        for family in text_string_to_metric_families(exposition)
        if family.name.startswith(SERVICE_PREFIX) and family.samples
    }


def exported_series(exposition: str) -> frozenset[str]:
    """What the service exports: the sample names a real ``/metrics`` text shows, and those its
    collectors declare for the families that had no sample yet (labelled children appear on
    their first use)."""
    shown = frozenset().union(*exposed_series(exposition).values())
    return shown | declared_series()


async def exercised_exposition(directory: Path) -> str:
    """``/metrics`` after a payment is created and settled through the API, on SQLite with
    in-memory providers: counters, histograms and gauges all have samples."""
    providers = {name: FakeProvider(name) for name in registry.names()}
    database = migrated_database("sqlite", directory)
    async with database as url, running_app(make_settings(url), providers) as (app, http):
        merchant = await create_merchant(
            app.state.runtime.sessions, name="Metrics Shop", callback_url="https://shop.test/"
        )
        auth = {"Authorization": f"Bearer {merchant.api_key}"}
        created = await http.post("/v1/payments", json=PAYMENT_BODY, headers=auth)
        assert created.status_code == 201, created.text
        providers[Provider.MTN_MOMO].status = StatusResult(
            status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=50000, currency="UGX"
        )
        refreshed = await http.post(f"/v1/payments/{created.json()['id']}/refresh", headers=auth)
        assert refreshed.json()["status"] == "successful", refreshed.text
        response = await http.get("/metrics")
        assert response.status_code == 200
        return response.text


# --- promtool -----------------------------------------------------------------------------------


def need_promtool() -> str:
    """The path of ``promtool`` (Debian's ``prometheus`` package; ``.ci/tools/promtool.sh``
    installs it)."""
    return need_program(
        "promtool", "promtool is not installed (bash .ci/tools/promtool.sh installs it)"
    )


def promtool(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - promtool found on the PATH, arguments from the tests
        [need_promtool(), *arguments], capture_output=True, text=True, timeout=60, cwd=cwd
    )
