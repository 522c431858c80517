"""The metrics README's table promises are the ones ``/metrics`` serves: the same names, the
same labels, and no label value outside the sets the table lists.

Two views: the exposition after a payment, a callback, a delivery, an SMS receipt and a
reconciler sweep (the real MTN adapter and Africa's Talking client, respx at the wire), and the
source, where every value a ``.labels(...)`` call can pass must be a documented one, including
those the flow never reaches.
"""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount

from app import metrics
from app.callback_tokens import callback_token
from app.main import create_app
from app.merchants.service import create_merchant, update_sms_receipts
from app.payments.domain import Actor, PaymentStatus
from app.providers import registry
from app.providers.http import RetryPolicy
from app.providers.registry import build_providers, build_refund_providers, close_providers
from app.request_id import UNMATCHED, RequestId
from app.webhooks.service import CallbackOutcome
from app.workers.jobs import reconcile_pending, send_sms_receipts, sweep_outbox
from tests import third_provider
from tests.conftest import make_settings
from tests.payments.test_create_payment import VALID

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
APP = ROOT / "app"

MTN = "https://mtn.test"
AFRICASTALKING = "https://africastalking.test"
SMS_ACCEPTED = {
    "SMSMessageData": {
        "Message": "Sent to 1/1 Total Cost: UGX 25.0000",
        "Recipients": [
            {
                "statusCode": 101,
                "number": "+256772123456",
                "status": "Success",
                "messageId": "ATXid_contract",
            }
        ],
    }
}
REQUEST_TO_PAY = "/collection/v1_0/requesttopay"
TOKEN = {"access_token": "mtn-token-1", "token_type": "access_token", "expires_in": 3600}
SUCCESSFUL = {
    "amount": VALID["amount"],
    "currency": VALID["currency"],
    "financialTransactionId": "363440463",
    "externalId": "CONTRACT-1",
    "status": "SUCCESSFUL",
}
PENDING = {"amount": VALID["amount"], "currency": VALID["currency"], "status": "PENDING"}

Labels = dict[str, frozenset[str] | None]  # label name → its closed set of values, if listed


# --- what README documents ------------------------------------------------------------------


@dataclass(frozen=True)
class Documented:
    metrics: dict[str, Labels]  # as README names them: counters with their _total
    providers: frozenset[str]

    def closed(self, metric: str, label: str) -> frozenset[str] | None:
        if label == "provider":
            return self.providers
        return self.metrics[metric][label]


_LABEL = re.compile(r"\s*([a-z_]+)\s*(?:\(([^()]*)\))?\s*(?:,|$)")
_VALUE = re.compile(r"`([^`]+)`")


def _closed_set(parenthesis: str | None) -> frozenset[str] | None:
    """``(`a`, `b`)`` lists the values; any other parenthesis describes the label."""
    if parenthesis is None:
        return None
    items = [item.strip() for item in parenthesis.split(",")]
    if not all(_VALUE.fullmatch(item) for item in items):
        return None
    return frozenset(item.strip("`") for item in items)


def _labels(cell: str) -> Labels:
    cell = cell.strip()
    if cell == "—":
        return {}
    labels: Labels = {}
    position = 0
    while position < len(cell):
        match = _LABEL.match(cell, position)
        assert match, f"unreadable labels in README: {cell[position:]!r}"
        labels[match.group(1)] = _closed_set(match.group(2))
        position = match.end()
    return labels


def documented() -> Documented:
    text = README.read_text(encoding="utf-8")
    header = text.index("| metric | labels |")
    table = text[header:].split("\n\n", 1)[0].splitlines()[2:]
    found: dict[str, Labels] = {}
    for row in table:
        names, labels = row.strip().strip("|").split("|")
        for name in _VALUE.findall(names):
            assert name not in found, f"{name} is in README's table twice"
            found[name] = _labels(labels)
    providers = re.search(r"`provider` is `(\w+)` or `(\w+)`", text)
    assert providers, "README names the provider label's values"
    return Documented(found, frozenset(providers.groups()))


def test_the_table_is_read() -> None:
    table = documented()
    assert table.providers == set(registry.names())
    assert table.metrics["momo_outbox_backlog"] == {}
    assert table.metrics["momo_token_cache_requests_total"] == {"result": {"hit", "miss"}}
    assert table.metrics["momo_http_requests_total"]["route"] is None  # described, not listed


# --- what the collectors declare --------------------------------------------------------------


def _collectors() -> dict[str, MetricWrapperBase]:
    return {
        name: value for name, value in vars(metrics).items() if isinstance(value, MetricWrapperBase)
    }


def _exposed_name(collector: MetricWrapperBase) -> str:
    (family,) = collector.describe()
    return f"{family.name}_total" if family.type == "counter" else family.name


def test_every_collector_is_documented_with_its_labels() -> None:
    table = documented()
    declared = {
        _exposed_name(collector): tuple(collector._labelnames)
        for collector in _collectors().values()
    }
    assert set(declared) == set(table.metrics)
    for name, labelnames in declared.items():
        assert list(labelnames) == list(table.metrics[name]), name


# --- what the source can pass -----------------------------------------------------------------


def _values(enum: Any) -> frozenset[str]:
    return frozenset(member.value for member in enum)


PROVIDERS = frozenset(registry.names())


def _provider_operations() -> frozenset[str]:
    """The operation names the adapters give their calls (``"mtn.token"``): the metric keeps
    the part after the dot."""
    names = set()
    for path in (APP / "providers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = re.fullmatch(r"(?:mtn|airtel)\.([a-z_]+)", node.value)
                if match:
                    names.add(match.group(1))
    return frozenset(names)


# Label arguments that are not string literals, and every value each can take. An argument not
# listed here (and not a literal, a conditional of literals or a parameter fed literals) fails
# the test until it is added with its values.
KNOWN_ARGUMENTS: dict[str, frozenset[str]] = {
    # A final answer by status class; httpx never hands back a 1xx.
    "f'{response.status_code // 100}xx'": frozenset({"2xx", "3xx", "4xx", "5xx"}),
    "operation_label": _provider_operations(),
    "reply.outcome.value": _values(CallbackOutcome),
    "updated.status": _values(PaymentStatus),
    "change.actor.value": _values(Actor),
    "Actor.OPERATOR.value": frozenset({Actor.OPERATOR.value}),
    "provider.value": PROVIDERS,
    "payment.provider": PROVIDERS,
    "refund.provider": PROVIDERS,
    "callback.provider.value": PROVIDERS,
    # app/health.py's readiness checks, by the name each gives its dependency.
    "dependency": frozenset({"database", "redis"}),
}


@dataclass(frozen=True)
class Module:
    path: Path
    tree: ast.Module
    enclosing: dict[ast.AST, ast.FunctionDef | ast.AsyncFunctionDef]


def _module(path: Path) -> Module:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    enclosing: dict[ast.AST, ast.FunctionDef | ast.AsyncFunctionDef] = {}

    def visit(node: ast.AST, function: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            if function is not None:
                enclosing[child] = function
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else None
            visit(child, inner or function)

    visit(tree, None)
    return Module(path, tree, enclosing)


def _resolve(module: Module, node: ast.expr) -> frozenset[str]:
    where = f"{module.path.relative_to(ROOT)}:{node.lineno}"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return frozenset({node.value})
    if isinstance(node, ast.IfExp):
        return _resolve(module, node.body) | _resolve(module, node.orelse)
    source = ast.unparse(node)
    if source in KNOWN_ARGUMENTS:
        return KNOWN_ARGUMENTS[source]
    function = module.enclosing.get(node)
    if isinstance(node, ast.Name) and function is not None:
        parameters = [argument.arg for argument in function.args.args]
        if node.id in parameters:
            return _passed(module, function, parameters.index(node.id), node.id)
    raise AssertionError(f"{where}: cannot tell the values of {source!r}; add it to KNOWN")


def _passed(
    module: Module, function: ast.FunctionDef | ast.AsyncFunctionDef, index: int, name: str
) -> frozenset[str]:
    """Every value the module passes to ``function``'s parameter ``name``."""
    values: set[str] = set()
    calls = 0
    for node in ast.walk(module.tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id != function.name:
            continue
        calls += 1
        if index < len(node.args):
            values |= _resolve(module, node.args[index])
        for keyword in node.keywords:
            if keyword.arg == name:
                values |= _resolve(module, keyword.value)
    assert calls, f"{function.name} is never called in {module.path}"
    return frozenset(values)


def _label_calls() -> Iterator[tuple[Module, str, str, ast.expr]]:
    """(module, collector, label name, argument) for every ``COLLECTOR.labels(...)`` in app/."""
    collectors = _collectors()
    for path in sorted(APP.rglob("*.py")):
        module = _module(path)
        for node in ast.walk(module.tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "labels"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in collectors
            ):
                continue
            name = node.func.value.id
            labelnames = collectors[name]._labelnames
            for label, argument in zip(labelnames, node.args, strict=False):
                yield module, name, label, argument
            for keyword in node.keywords:
                assert keyword.arg is not None, f"{path}:{node.lineno}: **labels"
                yield module, name, keyword.arg, keyword.value


def test_every_value_the_source_can_label_is_documented_and_every_documented_one_is_real():
    table = documented()
    collectors = _collectors()
    possible: dict[tuple[str, str], set[str]] = {}
    for module, collector, label, argument in _label_calls():
        metric = _exposed_name(collectors[collector])
        if table.closed(metric, label) is None:
            continue
        possible.setdefault((metric, label), set()).update(_resolve(module, argument))

    for metric, labels in table.metrics.items():
        for label in labels:
            expected = table.closed(metric, label)
            if expected is None:
                continue
            assert (metric, label) in possible, f"no .labels() call found for {metric} {label}"
            assert possible[(metric, label)] == expected, (metric, label)


# --- what /metrics serves ---------------------------------------------------------------------


@pytest.fixture
async def gateway(clean_db: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(
        clean_db,
        mtn_momo_api_url=MTN,
        mtn_momo_target_env="mtnuganda",
        mtn_momo_disbursement_api_user="3f2b6c1e-8a4d-4b1e-9d6f-0c7a5e2b1d91",
        mtn_momo_disbursement_api_key="mtn-disbursement-key",
        mtn_momo_disbursement_subscription_key="mtn-disbursement-subscription-key",
        provider_http_backend="httpx",  # respx intercepts httpcore
        africastalking_api_url=AFRICASTALKING,
        africastalking_username="sandbox",
        africastalking_api_key="at-api-key",
    )
    providers = build_providers(settings, None, retry_policy=RetryPolicy.zero_wait())
    refund_providers = build_refund_providers(settings, None, retry_policy=RetryPolicy.zero_wait())
    storefront = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(204)))
    application = create_app(
        settings,
        providers=providers,
        refund_providers=refund_providers,
        background_jobs=False,
        delivery_client=storefront,
    )
    try:
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
                merchant = await create_merchant(
                    application.state.runtime.sessions,
                    name="Contract Shop",
                    callback_url="https://shop.example/hooks",
                )
                await update_sms_receipts(
                    application.state.runtime.sessions, merchant.id, enabled=True
                )
                http.headers["Authorization"] = f"Bearer {merchant.api_key}"
                yield application, http
    finally:
        await close_providers(providers)
        await close_providers(refund_providers)


@pytest.fixture
def mtn() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=MTN) as router:
        router.post("/collection/token/").respond(200, json=TOKEN)
        router.post("/disbursement/token/").respond(200, json=TOKEN)
        router.post(REQUEST_TO_PAY).respond(202)
        router.post("/disbursement/v2_0/refund").respond(202)
        router.post(f"{AFRICASTALKING}/version1/messaging").respond(201, json=SMS_ACCEPTED)
        yield router


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metrics_text() -> str:
    return generate_latest().decode()


def _requests(samples: Samples, route: str) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "momo_http_requests_total" and ("route", route) in labels
    )


async def test_the_exposition_after_a_payment_a_callback_and_a_sweep_is_the_documented_one(
    gateway: tuple[FastAPI, httpx.AsyncClient], mtn: respx.MockRouter
) -> None:
    app, http = gateway
    runtime = app.state.runtime
    settled = await http.post("/v1/payments", json={**VALID, "order_id": "CONTRACT-1"})
    pending = await http.post("/v1/payments", json={**VALID, "order_id": "CONTRACT-2"})
    assert (settled.status_code, pending.status_code) == (201, 201)
    settled_reference = settled.json()["provider_reference"]
    pending_reference = pending.json()["provider_reference"]
    mtn.get(f"{REQUEST_TO_PAY}/{settled_reference}").respond(200, json=SUCCESSFUL)
    mtn.get(f"{REQUEST_TO_PAY}/{pending_reference}").respond(200, json=PENDING)

    token = callback_token(runtime.callback_secret, settled_reference)
    callback = await http.put(
        f"/api/webhooks/mtn-momo/{settled_reference}/{token}", json={"status": "SUCCESSFUL"}
    )
    assert callback.status_code == 200, callback.text
    assert [result.delivered for result in await sweep_outbox(runtime)] == [True]
    assert (await send_sms_receipts(runtime)).sent == 1
    refund = await http.post("/v1/refunds", json={"payment_id": settled.json()["id"]})
    assert refund.status_code == 201, refund.text
    refund_reference = refund.json()["provider_reference"]
    mtn.get(f"/disbursement/v1_0/refund/{refund_reference}").respond(
        200, json={**SUCCESSFUL, "externalId": "CONTRACT-1"}
    )
    report = await reconcile_pending(runtime)
    assert report.claimed == 1
    assert (await http.get("/v1/payments/pay_none")).status_code == 404
    assert (await http.get("/nowhere")).status_code == 404

    before_docs = _samples((await http.get("/metrics")).text)
    assert (await http.get("/docs")).status_code == 200
    assert (await http.get("/openapi.json")).status_code == 200
    text = (await http.get("/metrics")).text
    after_docs = _samples(text)

    # The documentation pages are counted under their own routes, not with the 404s.
    assert _requests(after_docs, "/docs") == _requests(before_docs, "/docs") + 1
    assert _requests(after_docs, "/openapi.json") == _requests(before_docs, "/openapi.json") + 1
    assert _requests(after_docs, UNMATCHED) == _requests(before_docs, UNMATCHED)
    assert _requests(after_docs, "/v1/payments/{payment_id}") >= 1

    table = documented()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    exposed = {
        f"{name}_total" if family.type == "counter" else name: family
        for name, family in families.items()
        if name.startswith("momo_")
    }
    assert set(exposed) <= set(table.metrics), "every momo_* metric is in README"
    for metric, labels in table.metrics.items():
        assert metric in exposed, f"{metric} is documented but not exposed"
        samples = exposed[metric].samples
        assert samples, f"{metric} has no sample after the flow"
        for sample in samples:
            names = set(sample.labels) - {"le"}  # a histogram bucket's bound
            assert names == set(labels), (metric, sample.labels)
            for label, value in sample.labels.items():
                allowed = table.closed(metric, label) if label in labels else None
                if allowed is not None and label == "provider":
                    # The network a test registers for itself leaves samples in the process.
                    allowed = allowed | {third_provider.NAME}
                if allowed is not None:
                    assert value in allowed, (metric, label, value)

    for family in families.values():
        for sample in family.samples:
            assert not sample.name.endswith("_created"), sample.name

    provider_calls = {
        (labels["provider"], labels["operation"], labels["outcome"])
        for labels in (
            sample.labels for sample in exposed["momo_provider_request_duration_seconds"].samples
        )
    }
    assert ("mtn_momo", "token", "2xx") in provider_calls
    assert ("mtn_momo", "request_to_pay", "2xx") in provider_calls
    assert ("mtn_momo", "status", "2xx") in provider_calls


async def test_a_mounted_application_is_labelled_by_its_mount(tmp_path: Path) -> None:
    console = FastAPI()

    @console.get("/payments/{payment_id}")
    async def payment(payment_id: str) -> dict[str, str]:
        return {"id": payment_id}

    (tmp_path / "app.js").write_text("// console")
    application = FastAPI()
    application.add_middleware(RequestId)
    application.mount("/console", console)
    application.mount("/console-static", StaticFiles(directory=tmp_path))

    @application.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    before = _samples(metrics_text())
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
        assert (await http.get("/console/payments/pay_123")).status_code == 200
        assert (await http.get("/console-static/app.js")).status_code == 200
        assert (await http.get("/v1/things/thing_9")).status_code == 200
        assert (await http.delete("/v1/things/thing_9")).status_code == 405
        assert (await http.get("/nowhere/pay_123")).status_code == 404
    after = _samples(metrics_text())

    def moved(route: str) -> float:
        return _requests(after, route) - _requests(before, route)

    assert moved("/console") == 1
    assert moved("/payments/{payment_id}") == 0  # the mounted app's own template is not used
    assert moved("/console-static") == 1
    assert moved("/v1/things/{thing_id}") == 2
    assert moved(UNMATCHED) == 1


async def test_the_app_labels_every_mount_it_serves(clean_db: str) -> None:
    application = create_app(make_settings(clean_db), providers={}, background_jobs=False)
    mounts = [route.path for route in application.router.routes if isinstance(route, Mount)]
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
            before = _samples(metrics_text())
            for mount in mounts:
                await http.get(f"{mount}/missing-file.js")
            after = _samples(metrics_text())
    for mount in mounts:
        assert _requests(after, mount) == _requests(before, mount) + 1, mount
