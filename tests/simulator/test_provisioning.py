"""MTN sandbox provisioning: API users and keys, and what they are then allowed to do."""

from __future__ import annotations

import httpx
import pytest

from app.simulator import DEFAULT_MTN_SUBSCRIPTION_KEY
from tests.simulator.conftest import SimulatorClient, basic, new_reference

SUBSCRIPTION = {"Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY}


async def provision(sim: SimulatorClient, host: str = "merchant.example") -> tuple[str, str]:
    user = new_reference()
    created = await sim.http.post(
        "/v1_0/apiuser",
        headers={**SUBSCRIPTION, "X-Reference-Id": user},
        json={"providerCallbackHost": host},
    )
    assert created.status_code == 201
    assert created.content == b""
    key = await sim.http.post(f"/v1_0/apiuser/{user}/apikey", headers=SUBSCRIPTION)
    assert key.status_code == 201
    return user, key.json()["apiKey"]


async def mtn_token(sim: SimulatorClient, user: str, key: str) -> httpx.Response:
    return await sim.http.post(
        "/collection/token/", headers={**SUBSCRIPTION, "Authorization": basic(user, key)}
    )


async def test_provisioned_user_can_be_read_back_and_get_tokens(sim: SimulatorClient) -> None:
    user, key = await provision(sim, host="shop.example.ug")

    read = await sim.http.get(f"/v1_0/apiuser/{user}", headers=SUBSCRIPTION)
    token = await mtn_token(sim, user, key)

    assert read.json() == {
        "providerCallbackHost": "shop.example.ug",
        "targetEnvironment": "sandbox",
    }
    assert token.status_code == 200
    assert token.json()["token_type"] == "access_token"


async def test_duplicate_user_is_409(sim: SimulatorClient) -> None:
    user = new_reference()
    headers = {**SUBSCRIPTION, "X-Reference-Id": user}
    body = {"providerCallbackHost": "merchant.example"}
    assert (await sim.http.post("/v1_0/apiuser", headers=headers, json=body)).status_code == 201

    again = await sim.http.post("/v1_0/apiuser", headers=headers, json=body)

    assert again.status_code == 409
    assert again.json()["code"] == "RESOURCE_ALREADY_EXIST"


async def test_a_new_key_replaces_the_old_one(sim: SimulatorClient) -> None:
    user, old_key = await provision(sim)

    new_key = (await sim.http.post(f"/v1_0/apiuser/{user}/apikey", headers=SUBSCRIPTION)).json()

    assert (await mtn_token(sim, user, old_key)).status_code == 401
    assert (await mtn_token(sim, user, new_key["apiKey"])).status_code == 200


async def test_unknown_user_is_404(sim: SimulatorClient) -> None:
    unknown = new_reference()

    key = await sim.http.post(f"/v1_0/apiuser/{unknown}/apikey", headers=SUBSCRIPTION)
    read = await sim.http.get(f"/v1_0/apiuser/{unknown}", headers=SUBSCRIPTION)

    assert key.status_code == 404
    assert read.status_code == 404
    assert (await mtn_token(sim, unknown, "anything")).status_code == 401


@pytest.mark.parametrize(
    ("headers", "body", "status_code"),
    [
        ({**SUBSCRIPTION, "X-Reference-Id": "not-a-uuid"}, {"providerCallbackHost": "h"}, 400),
        ({**SUBSCRIPTION}, {"providerCallbackHost": "h"}, 400),
        ({**SUBSCRIPTION, "X-Reference-Id": "ref"}, None, 400),
        ({"X-Reference-Id": "ref"}, {"providerCallbackHost": "h"}, 401),
    ],
)
async def test_create_user_validation(
    sim: SimulatorClient,
    headers: dict[str, str],
    body: dict[str, str] | None,
    status_code: int,
) -> None:
    if headers.get("X-Reference-Id") == "ref":
        headers = {**headers, "X-Reference-Id": new_reference()}

    response = await sim.http.post("/v1_0/apiuser", headers=headers, json=body)

    assert response.status_code == status_code


async def test_callback_host_must_match_the_provisioned_host(sim: SimulatorClient) -> None:
    await sim.configure(callbacks_enabled=False)
    user, key = await provision(sim, host="merchant.example")
    token = (await mtn_token(sim, user, key)).json()["access_token"]

    async def request_to_pay(callback_url: str) -> httpx.Response:
        return await sim.http.post(
            "/collection/v1_0/requesttopay",
            headers={
                **SUBSCRIPTION,
                "Authorization": f"Bearer {token}",
                "X-Target-Environment": "sandbox",
                "X-Reference-Id": new_reference(),
                "X-Callback-Url": callback_url,
            },
            json={
                "amount": "100",
                "currency": "EUR",
                "externalId": "1",
                "payer": {"partyIdType": "MSISDN", "partyId": "46733123453"},
            },
        )

    elsewhere = await request_to_pay("http://attacker.example/cb")
    registered = await request_to_pay("http://merchant.example/api/webhooks/mtn-momo/x/y")

    assert elsewhere.status_code == 500
    assert elsewhere.json()["code"] == "INVALID_CALLBACK_URL_HOST"
    assert registered.status_code == 202
