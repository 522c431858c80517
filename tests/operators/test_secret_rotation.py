"""Webhook secret rotation through the real delivery path (both backends): while the old
secret's grace lasts, every delivery carries two Standard Webhooks signatures, so a storefront
holding only the old secret and one holding only the new one both accept it; after, one."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.db import utcnow
from app.events.delivery import EventDelivery
from app.events.signing import generate_webhook_secret, sign, signature_headers, verify
from app.merchants import admin
from app.merchants.models import Merchant
from tests.conftest import make_settings
from tests.events.test_event_api import settled_payment_events


class Storefront:
    """Takes every delivery (204) and keeps what arrived."""

    def __init__(self) -> None:
        self.received: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        return httpx.Response(204)

    def last(self) -> tuple[bytes, dict[str, str]]:
        request = self.received[-1]
        return request.content, dict(request.headers)


def delivery_to(runtime, storefront):
    client = httpx.AsyncClient(transport=httpx.MockTransport(storefront))
    settings = make_settings(runtime.settings.database_url)
    return EventDelivery(sessions=runtime.sessions, settings=settings, client=client)


async def deliver_again(runtime, delivery, merchant_id, event_id):
    await runtime.events.redeliver(merchant_id, event_id)
    result = await delivery.deliver(event_id)
    assert result.delivered


def test_two_secrets_give_two_signatures_new_first():
    new, old = generate_webhook_secret(), generate_webhook_secret()
    body = b'{"id":"evt_01"}'

    headers = signature_headers(new, "evt_01", 1700000000, body, previous_secret=old)

    assert headers["webhook-signature"] == (
        f"{sign(new, 'evt_01', 1700000000, body)} {sign(old, 'evt_01', 1700000000, body)}"
    )
    assert signature_headers(new, "evt_01", 1700000000, body)["webhook-signature"] == sign(
        new, "evt_01", 1700000000, body
    )


async def test_during_the_grace_both_secrets_verify_the_same_delivery(
    client, auth, runtime, fake_providers, merchant
):
    (event_id,) = await settled_payment_events(client, auth, runtime, fake_providers, 1)
    old_secret = merchant.webhook_secret

    rotated = await admin.rotate_webhook_secret(runtime.sessions, merchant.id, grace_seconds=3600)

    new_secret = rotated["webhook_secret"]
    assert rotated["id"] == merchant.id
    assert new_secret.startswith("whsec_")
    assert new_secret != old_secret
    assert rotated["previous_secret_expires_at"] is not None
    storefront = Storefront()
    delivery = delivery_to(runtime, storefront)
    assert (await delivery.deliver(event_id)).delivered

    body, headers = storefront.last()
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(value.startswith("v1,") for value in signatures)
    timestamp = int(headers["webhook-timestamp"])
    assert signatures[0] == sign(new_secret, event_id, timestamp, body)  # new first
    assert signatures[1] == sign(old_secret, event_id, timestamp, body)
    # Standard Webhooks' own library, holding one secret or the other.
    assert Webhook(old_secret).verify(body, headers)["id"] == event_id
    assert Webhook(new_secret).verify(body, headers)["id"] == event_id
    assert verify(old_secret, body, headers)
    assert verify(new_secret, body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_webhook_secret()).verify(body, headers)
    summary = await admin.get_merchant(runtime.sessions, merchant.id)
    assert summary.previous_secret_expires_at - utcnow() > timedelta(minutes=59)


async def test_after_the_grace_only_the_new_secret_signs(
    client, auth, runtime, fake_providers, merchant
):
    (event_id,) = await settled_payment_events(client, auth, runtime, fake_providers, 1)
    rotated = await admin.rotate_webhook_secret(runtime.sessions, merchant.id, grace_seconds=3600)
    storefront = Storefront()
    delivery = delivery_to(runtime, storefront)
    assert (await delivery.deliver(event_id)).delivered
    assert len(storefront.last()[1]["webhook-signature"].split(" ")) == 2

    async with runtime.sessions.begin() as session:  # the grace ended a second ago
        await session.execute(
            update(Merchant)
            .where(Merchant.id == merchant.id)
            .values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
        )
    await deliver_again(runtime, delivery, merchant.id, event_id)

    body, headers = storefront.last()
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert Webhook(rotated["webhook_secret"]).verify(body, headers)["id"] == event_id
    with pytest.raises(WebhookVerificationError):
        Webhook(merchant.webhook_secret).verify(body, headers)
    assert (
        await admin.get_merchant(runtime.sessions, merchant.id)
    ).previous_secret_expires_at is None


async def test_grace_zero_signs_with_the_new_secret_only_at_once(
    client, auth, runtime, fake_providers, merchant
):
    (event_id,) = await settled_payment_events(client, auth, runtime, fake_providers, 1)

    rotated = await admin.rotate_webhook_secret(runtime.sessions, merchant.id, grace_seconds=0)

    assert rotated["previous_secret_expires_at"] is None
    storefront = Storefront()
    assert (await delivery_to(runtime, storefront).deliver(event_id)).delivered
    body, headers = storefront.last()
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert Webhook(rotated["webhook_secret"]).verify(body, headers)["id"] == event_id
    with pytest.raises(WebhookVerificationError):
        Webhook(merchant.webhook_secret).verify(body, headers)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
