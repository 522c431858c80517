"""A third provider, defined only in the test tree (``tests/third_provider``), registered from
outside ``app/``: a payment goes through the API, its callback and the reconciler like MTN's and
Airtel's, with its own number range, currency, wire format and callback check."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from app.merchants.service import create_merchant
from app.providers import registry
from tests import third_provider
from tests.conftest import count_rows, make_settings, running_app

ZED_URL = "https://api.zed.example"
SECRET = "zed-callback-secret"


class ZedNetwork:
    """Zed's side of the wire: what it was asked, and what it says of each reference."""

    def __init__(self) -> None:
        self.collects: list[dict[str, Any]] = []
        self.states: dict[str, str] = {}

    def collect(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != "Token zed-merchant-token":
            return httpx.Response(401)
        body = json.loads(request.content)
        self.collects.append(body)
        self.states[body["ref"]] = "WAITING"
        return httpx.Response(202)

    def status(self, request: httpx.Request, ref: str) -> httpx.Response:
        if ref not in self.states:
            return httpx.Response(404)
        collect = next(c for c in self.collects if c["ref"] == ref)
        answer = {"ref": ref, "state": self.states[ref], "amount": collect["amount"]}
        return httpx.Response(200, json={**answer, "currency": "KES", "receipt": f"Z-{ref[:8]}"})


@pytest.fixture
def zed_registered() -> Iterator[None]:
    registry.register(third_provider.SPEC)
    yield
    registry.unregister(third_provider.NAME)


@pytest.fixture
def zed(zed_registered: None) -> Iterator[ZedNetwork]:
    network = ZedNetwork()
    with respx.mock(base_url=ZED_URL, assert_all_called=False) as wire:
        wire.post("/v2/collect").mock(side_effect=network.collect)
        wire.get(path__regex=r"^/v2/collect/(?P<ref>[^/]+)$").mock(side_effect=network.status)
        yield network


@pytest.fixture
async def gateway(clean_db: str, zed: ZedNetwork) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = make_settings(
        clean_db,
        zed_money_api_url=ZED_URL,
        zed_money_merchant_token="zed-merchant-token",
        zed_money_currency="KES",
        zed_money_webhook_secret=SECRET,
        provider_http_backend="httpx",  # respx fakes httpx's own transport
    )
    async with running_app(settings) as (app, http):  # the providers the registry builds
        merchant = await create_merchant(
            app.state.runtime.sessions, name="Shop", callback_url="https://shop.example/e"
        )
        http.headers["Authorization"] = f"Bearer {merchant.api_key}"
        yield app.state.runtime, http


async def pay(http: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    response = await http.post(
        "/v1/payments",
        json={
            "order_id": order_id,
            "amount": "150.50",
            "currency": "KES",
            "phone_number": "0710 123 456",
        },
    )
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


def callback(ref: str, state: str, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": ref, "state": state}).encode()
    return body, {"X-Zed-Signature": third_provider.sign(secret, body)}


async def test_a_payment_settles_through_its_callback(gateway, zed):
    runtime, http = gateway
    payment = await pay(http, "ZED-1")

    assert (payment["provider"], payment["status"], payment["amount"]) == (
        "zed_money",
        "pending",
        "150.50",
    )
    assert zed.collects == [
        {
            "ref": payment["provider_reference"],
            "msisdn": "256710123456",
            "amount": "150.50",
            "currency": "KES",
        }
    ]

    ref = payment["provider_reference"]
    zed.states[ref] = "DONE"
    forged_body, forged_headers = callback(ref, "DONE", secret="not-the-secret")
    forged = await http.post(
        "/api/webhooks/zed-money/", content=forged_body, headers=forged_headers
    )
    assert (forged.status_code, forged.json()["code"]) == (401, "bad_signature")
    assert (await http.get(f"/v1/payments/{payment['id']}")).json()["status"] == "pending"

    body, headers = callback(ref, "DONE")
    answer = await http.post("/api/webhooks/zed-money/", content=body, headers=headers)
    assert answer.json() == {"status": "success", "message": "Webhook processed"}
    settled = (await http.get(f"/v1/payments/{payment['id']}")).json()
    assert (settled["status"], settled["provider_transaction_id"]) == ("successful", f"Z-{ref[:8]}")
    assert await count_rows(runtime, "events", "type = 'payment.succeeded'") == 1


async def test_a_payment_without_callback_settles_through_the_reconciler(gateway, zed):
    runtime, http = gateway
    payment = await pay(http, "ZED-2")
    zed.states[payment["provider_reference"]] = "DONE"

    report = await runtime.reconciler.reconcile()

    assert report.settled == 1
    assert (await http.get(f"/v1/payments/{payment['id']}")).json()["status"] == "successful"


async def test_its_callback_says_declined_but_zed_is_asked_and_says_waiting(gateway, zed):
    _runtime, http = gateway
    payment = await pay(http, "ZED-3")
    body, headers = callback(payment["provider_reference"], "DECLINED")

    answer = await http.post("/api/webhooks/zed-money/", content=body, headers=headers)

    assert answer.status_code == 200
    assert (await http.get(f"/v1/payments/{payment['id']}")).json()["status"] == "pending"


async def test_its_numbers_currency_and_route_are_its_own(gateway, zed):
    _runtime, http = gateway
    wrong_currency = await http.post(
        "/v1/payments",
        json={"order_id": "ZED-4", "amount": "1000", "phone_number": "0710123456"},
    )
    assert (wrong_currency.status_code, wrong_currency.json()["code"]) == (
        422,
        "unsupported_currency",
    )
    mismatch = await http.post(
        "/v1/payments",
        json={"order_id": "ZED-5", "amount": "1000", "phone_number": "0772123456",
              "provider": "zed_money", "currency": "KES"},
    )  # fmt: skip
    assert (mismatch.status_code, mismatch.json()["code"]) == (422, "provider_mismatch")

    document = (await http.get("/openapi.json")).json()
    route = document["paths"]["/api/webhooks/zed-money/"]["post"]
    assert route["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ZedCallback"
    )
    assert (
        "zed_money"
        in document["components"]["schemas"]["CreatePaymentRequest"]["properties"]["provider"][
            "anyOf"
        ][0]["enum"]
    )


async def test_without_it_registered_its_numbers_are_unsupported(clean_db, fake_providers):
    async with running_app(make_settings(clean_db), providers=fake_providers) as (app, http):
        merchant = await create_merchant(
            app.state.runtime.sessions, name="Shop", callback_url="https://shop.example/e"
        )
        response = await http.post(
            "/v1/payments",
            json={"order_id": "ZED-6", "amount": "1000", "phone_number": "0710123456"},
            headers={"Authorization": f"Bearer {merchant.api_key}"},
        )
    assert (response.status_code, response.json()["code"]) == (422, "unsupported_network")
