"""Initiation through the API with the real MTN adapter and respx at the wire: what the
storefront sees for each provider behaviour."""

from __future__ import annotations

import httpx
import pytest
import respx

from app.merchants.service import create_merchant
from app.providers.http import RetryPolicy
from app.providers.registry import build_providers, close_providers
from app.vocabulary import Provider
from tests.conftest import count_rows, make_settings, running_app
from tests.payments.test_create_payment import VALID

MTN = "https://mtn.test"
TOKEN = {"access_token": "mtn-token-1", "token_type": "access_token", "expires_in": 3600}


@pytest.fixture
async def gateway(clean_db):
    settings = make_settings(
        clean_db,
        mtn_momo_api_url=MTN,
        mtn_momo_target_env="mtnuganda",
        provider_http_backend="httpx",  # respx intercepts httpcore
    )
    providers = build_providers(settings, None, retry_policy=RetryPolicy.zero_wait())
    try:
        async with running_app(settings, providers) as (app, http):
            merchant = await create_merchant(
                app.state.runtime.sessions, name="Shop", callback_url="https://shop.example/"
            )
            http.headers["Authorization"] = f"Bearer {merchant.api_key}"
            yield app, http
    finally:
        await close_providers(providers)


@pytest.fixture
def mtn():
    with respx.mock(base_url=MTN, assert_all_called=False) as router:
        router.post("/collection/token/").respond(200, json=TOKEN)
        yield router


def references(route) -> list[str]:
    return [call.request.headers["X-Reference-Id"] for call in route.calls]


async def test_503_503_202_is_one_payment_with_one_reference(gateway, mtn):
    _, http = gateway
    route = mtn.post("/collection/v1_0/requesttopay")
    route.side_effect = [httpx.Response(503), httpx.Response(503), httpx.Response(202)]

    response = await http.post("/v1/payments", json=VALID)

    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert route.call_count == 3
    assert set(references(route)) == {response.json()["provider_reference"]}


async def test_400_fails_the_payment_without_retrying(gateway, mtn):
    app, http = gateway
    route = mtn.post("/collection/v1_0/requesttopay").respond(400)

    response = await http.post("/v1/payments", json=VALID)

    assert response.json()["status"] == "failed"
    assert response.json()["failure_code"] == "invalid_request"
    assert route.call_count == 1
    assert await count_rows(app.state.runtime, "events", "type = 'payment.failed'") == 1


async def test_timeout_on_every_try_leaves_the_payment_pending(gateway, mtn):
    _, http = gateway
    route = mtn.post("/collection/v1_0/requesttopay").mock(
        side_effect=httpx.ReadTimeout("provider too slow")
    )

    response = await http.post("/v1/payments", json=VALID)

    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert response.json()["failure_code"] is None
    assert route.call_count == 3
    assert len(set(references(route))) == 1


async def test_401_refreshes_the_token_once_then_succeeds(gateway, mtn):
    _, http = gateway
    token = mtn.post("/collection/token/")
    token.side_effect = [
        httpx.Response(200, json=TOKEN),
        httpx.Response(200, json={**TOKEN, "access_token": "mtn-token-2"}),
    ]
    route = mtn.post("/collection/v1_0/requesttopay")
    route.side_effect = [httpx.Response(401), httpx.Response(202)]

    response = await http.post("/v1/payments", json=VALID)

    assert response.json()["status"] == "pending"
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer mtn-token-1",
        "Bearer mtn-token-2",
    ]


async def test_409_duplicate_reference_counts_as_accepted(gateway, mtn):
    _, http = gateway
    route = mtn.post("/collection/v1_0/requesttopay")
    route.side_effect = [
        httpx.ReadTimeout("lost answer"),
        httpx.Response(
            409,
            json={
                "code": "RESOURCE_ALREADY_EXIST",
                "message": "Duplicated reference id. Creation of resource failed.",
            },
        ),
    ]

    response = await http.post("/v1/payments", json=VALID)

    assert response.json()["status"] == "pending"
    assert route.call_count == 2
    assert Provider.MTN_MOMO.value == response.json()["provider"]
