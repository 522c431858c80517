"""Reading payments: auth, merchant isolation, listing, refresh."""

from __future__ import annotations

import pytest

from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import FailureCode, Provider
from tests.conftest import count_rows
from tests.payments.test_create_payment import VALID


async def create(client, headers, **changes):
    response = await client.post("/v1/payments", json={**VALID, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer mgw_wrong"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
async def test_unauthenticated_requests_are_401(client, headers):
    for method, path in [
        ("POST", "/v1/payments"),
        ("GET", "/v1/payments"),
        ("GET", "/v1/payments/pay_x"),
        ("POST", "/v1/payments/pay_x/refresh"),
    ]:
        response = await client.request(method, path, headers=headers, json=VALID)
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "unauthorized"
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_merchant_cannot_see_another_merchants_payment(client, auth, other_merchant):
    payment = await create(client, auth)
    other = {"Authorization": f"Bearer {other_merchant.api_key}"}

    assert (await client.get(f"/v1/payments/{payment['id']}", headers=other)).status_code == 404
    refresh = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=other)
    assert refresh.status_code == 404
    listed = await client.get("/v1/payments", headers=other)
    assert listed.json()["data"] == []
    assert (await client.get(f"/v1/payments/{payment['id']}", headers=auth)).status_code == 200


async def test_list_is_newest_first_with_cursor_pagination(client, auth):
    ids = [(await create(client, auth, order_id=f"ORD-{i}"))["id"] for i in range(5)]

    page1 = (await client.get("/v1/payments?limit=2", headers=auth)).json()
    assert page1["object"] == "list"
    assert [p["id"] for p in page1["data"]] == ids[::-1][:2]
    assert page1["has_more"] is True
    page2 = (await client.get(f"/v1/payments?limit=2&starting_after={ids[3]}", headers=auth)).json()
    assert [p["id"] for p in page2["data"]] == [ids[2], ids[1]]
    page3 = (await client.get(f"/v1/payments?limit=2&starting_after={ids[1]}", headers=auth)).json()
    assert [p["id"] for p in page3["data"]] == [ids[0]]
    assert page3["has_more"] is False


async def test_list_filters_by_order_and_status(client, auth):
    await create(client, auth, order_id="ORD-A")
    await create(client, auth, order_id="ORD-B")
    by_order = (await client.get("/v1/payments?order_id=ORD-B", headers=auth)).json()
    assert [p["order_id"] for p in by_order["data"]] == ["ORD-B"]
    failed = (await client.get("/v1/payments?status=failed", headers=auth)).json()
    assert failed["data"] == []
    bad = await client.get("/v1/payments?status=paid", headers=auth)
    assert bad.status_code == 422
    assert bad.json()["code"] == "validation_error"


async def test_unknown_cursor_is_400(client, auth):
    response = await client.get("/v1/payments?starting_after=pay_nope", headers=auth)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


async def test_refresh_applies_the_providers_answer(client, auth, runtime, fake_providers):
    payment = await create(client, auth)
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL,
        amount_minor=50000,
        currency="UGX",
        provider_transaction_id="1234567890",
    )
    response = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)

    assert response.status_code == 200
    assert response.json()["status"] == "successful"
    assert response.json()["provider_transaction_id"] == "1234567890"
    assert response.json()["completed_at"] is not None
    assert await count_rows(runtime, "events", "type = 'payment.succeeded'") == 1
    again = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)
    assert again.json()["status"] == "successful"
    assert await count_rows(runtime, "events") == 1


async def test_refresh_with_another_amount_goes_to_review(client, auth, runtime, fake_providers):
    payment = await create(client, auth)
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=500, currency="UGX"
    )
    response = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)
    assert response.json()["status"] == "needs_review"
    assert (
        await count_rows(
            runtime, "payments", "reported_amount_minor = 500 AND amount_minor = 50000"
        )
        == 1
    )


async def test_refresh_when_the_provider_is_down_is_503_and_changes_nothing(
    client, auth, fake_providers
):
    payment = await create(client, auth)
    fake_providers[Provider.MTN_MOMO].unavailable = True
    response = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)
    assert response.status_code == 503
    assert response.json()["code"] == "provider_unavailable"
    current = await client.get(f"/v1/payments/{payment['id']}", headers=auth)
    assert current.json()["status"] == "pending"


async def test_refresh_maps_a_provider_failure(client, auth, fake_providers):
    payment = await create(client, auth)
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.FAILED,
        failure_code=FailureCode.INSUFFICIENT_FUNDS,
        failure_message="NOT_ENOUGH_FUNDS",
    )
    response = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)
    assert response.json()["status"] == "failed"
    assert response.json()["failure_code"] == "insufficient_funds"
    assert response.json()["failure_message"] == "NOT_ENOUGH_FUNDS"
