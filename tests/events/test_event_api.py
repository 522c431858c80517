"""``/v1/events`` over the real database (both backends): what delivery recorded, paging, and
queueing a redelivery."""

from __future__ import annotations

import httpx

from app.events.delivery import EventDelivery
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from tests.conftest import make_settings
from tests.payments.test_create_payment import VALID


async def settled_payment_events(client, auth, runtime, fake_providers, count):
    """``count`` successful payments, each with its payment.succeeded event; newest first."""
    for number in range(count):
        response = await client.post(
            "/v1/payments", json={**VALID, "order_id": f"ORD-E{number}"}, headers=auth
        )
        assert response.status_code == 201
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=50000, currency="UGX"
    )
    assert (await runtime.reconciler.reconcile()).settled == count
    events = (await client.get("/v1/events", headers=auth)).json()["data"]
    assert len(events) == count
    return [event["id"] for event in events]


def delivery_answering(runtime, status_code, **overrides):
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(status_code)))
    settings = make_settings(runtime.settings.database_url, **overrides)
    return EventDelivery(sessions=runtime.sessions, settings=settings, client=client)


async def test_delivery_outcomes_show_in_the_event(client, auth, runtime, fake_providers):
    delivered, retried, failed = await settled_payment_events(
        client, auth, runtime, fake_providers, 3
    )

    assert (await delivery_answering(runtime, 204).deliver(delivered)).delivered
    assert not (await delivery_answering(runtime, 500).deliver(retried)).delivered
    last_try = delivery_answering(runtime, 500, event_max_attempts=1)
    assert not (await last_try.deliver(failed)).delivered

    shown = {
        event_id: (await client.get(f"/v1/events/{event_id}", headers=auth)).json()["delivery"]
        for event_id in (delivered, retried, failed)
    }
    assert shown[delivered]["status"] == "delivered"
    assert [a["status_code"] for a in shown[delivered]["attempts"]] == [204]
    assert shown[retried]["status"] == "pending"
    assert shown[retried]["next_attempt_at"] is not None
    assert [a["error"] for a in shown[retried]["attempts"]] == ["HTTP 500"]
    assert shown[failed]["status"] == "failed"
    assert shown[failed]["next_attempt_at"] is None
    # A retry is not due yet, so a second sender right away sends nothing.
    assert not (await delivery_answering(runtime, 204).deliver(retried)).sent


async def test_redeliver_queues_a_finished_event_again(
    client, auth, runtime, fake_providers, other_merchant
):
    (event_id,) = await settled_payment_events(client, auth, runtime, fake_providers, 1)
    assert (await delivery_answering(runtime, 200).deliver(event_id)).delivered

    others = {"Authorization": f"Bearer {other_merchant.api_key}"}
    refused = await client.post(f"/v1/events/{event_id}/redeliver", headers=others)
    assert refused.status_code == 404

    response = await client.post(f"/v1/events/{event_id}/redeliver", headers=auth)
    assert response.status_code == 202
    delivery = response.json()["delivery"]
    assert delivery["status"] == "pending"
    assert delivery["next_attempt_at"] is not None
    assert len(delivery["attempts"]) == 1
    assert event_id in await runtime.delivery.due_events()


async def test_events_page_newest_first(client, auth, runtime, fake_providers):
    newest, middle, oldest = await settled_payment_events(client, auth, runtime, fake_providers, 3)

    first = (await client.get("/v1/events?limit=2", headers=auth)).json()
    assert [event["id"] for event in first["data"]] == [newest, middle]
    assert first["has_more"] is True
    second = (await client.get(f"/v1/events?limit=2&starting_after={middle}", headers=auth)).json()
    assert [event["id"] for event in second["data"]] == [oldest]
    assert second["has_more"] is False

    unknown = await client.get("/v1/events?starting_after=evt_nope", headers=auth)
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "invalid_cursor"
