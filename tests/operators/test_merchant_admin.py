"""Operators' merchant actions (both backends): listing, a new callback URL, API key rotation
with its grace period checked at request time, disabling (401 merchant_disabled, events wait,
payments still settle), enabling, and the audit entry of each."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from app.db import utcnow
from app.errors import MerchantDisabled
from app.events.delivery import EventDelivery
from app.merchants import admin, auth
from app.merchants.admin import InvalidGracePeriod
from app.merchants.auth import ApiKeyCache
from app.merchants.models import Merchant
from app.merchants.service import InvalidCallbackUrl, UnknownMerchant
from app.operators.audit import list_actions
from app.operators.service import create_operator
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from app.workers.jobs import sweep_outbox
from tests.conftest import count_rows, make_settings
from tests.payments.test_create_payment import VALID


def bearer(api_key):
    return {"Authorization": f"Bearer {api_key}"}


async def answer(client, api_key):
    """What an authenticated request gets with ``api_key``: the status and the problem code."""
    response = await client.get("/v1/payments", headers=bearer(api_key))
    return response.status_code, response.json().get("code")


async def end_key_grace(runtime, merchant_id, *, seconds_ago=1):
    """The previous key's grace period ended ``seconds_ago`` (time moved, not waited for)."""
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(Merchant)
            .where(Merchant.id == merchant_id)
            .values(previous_key_expires_at=utcnow() - timedelta(seconds=seconds_ago))
        )


async def test_list_shows_merchants_without_their_key_or_secret(runtime, merchant, other_merchant):
    listed = await admin.list_merchants(runtime.sessions)

    assert [summary.id for summary in listed] == [merchant.id, other_merchant.id]
    first = listed[0].as_json()
    assert first["name"] == "Kampala Electronics"
    assert first["callback_url"] == "https://shop.example/hooks"
    assert first["api_key_prefix"] == merchant.api_key[:12]
    assert first["disabled"] is False
    assert first["sms_receipts"] is False
    assert first["previous_key_expires_at"] is None
    assert first["previous_secret_expires_at"] is None
    text = json.dumps([summary.as_json() for summary in listed])
    for secret in (merchant.api_key, merchant.webhook_secret, other_merchant.webhook_secret):
        assert secret not in text


async def test_callback_url_update_is_validated_and_audited(runtime, merchant):
    updated = await admin.update_callback_url(
        runtime.sessions, merchant.id, " https://new.shop.example/events?token=abc "
    )
    assert updated.callback_url == "https://new.shop.example/events?token=abc"
    with pytest.raises(InvalidCallbackUrl):
        await admin.update_callback_url(runtime.sessions, merchant.id, "ftp://shop.example/")
    with pytest.raises(UnknownMerchant):
        await admin.update_callback_url(runtime.sessions, "mer_nope", "https://x.example/")

    assert (await admin.get_merchant(runtime.sessions, merchant.id)).callback_url == (
        "https://new.shop.example/events?token=abc"
    )
    (entry,) = await list_actions(runtime.sessions, target_type="merchant", target_id=merchant.id)
    assert entry.action == "merchant.update_callback_url"
    # The query string (where a storefront may keep a token) is not written down.
    assert entry.detail == {
        "from": "https://shop.example/hooks",
        "to": "https://new.shop.example/events",
    }


async def test_a_rotated_key_keeps_working_until_its_grace_ends(client, runtime, merchant):
    old_key = merchant.api_key
    assert await answer(client, old_key) == (200, None)

    rotated = await admin.rotate_api_key(runtime.sessions, merchant.id, grace_seconds=3600)

    assert rotated["id"] == merchant.id
    new_key = rotated["api_key"]
    assert new_key.startswith("mgw_")
    assert new_key != old_key
    assert await answer(client, new_key) == (200, None)
    assert await answer(client, old_key) == (200, None)  # within the grace period
    summary = await admin.get_merchant(runtime.sessions, merchant.id)
    assert summary.api_key_prefix == new_key[:12]
    assert rotated[
        "previous_key_expires_at"
    ] == summary.previous_key_expires_at.isoformat().replace("+00:00", "Z")
    remaining = summary.previous_key_expires_at - utcnow()
    assert timedelta(minutes=59) < remaining <= timedelta(hours=1)

    # One second after the grace ended (as another process would see it: nothing cached).
    await end_key_grace(runtime, merchant.id, seconds_ago=1)
    runtime.merchant_keys.invalidate_merchant(merchant.id)
    assert await answer(client, old_key) == (401, "unauthorized")
    assert await answer(client, new_key) == (200, None)


async def test_a_cached_previous_key_stops_at_the_end_of_its_grace(runtime, merchant, monkeypatch):
    rotated = await admin.rotate_api_key(runtime.sessions, merchant.id, grace_seconds=60)
    cache = ApiKeyCache(runtime.sessions, ttl=3600)
    assert (await cache.merchant_for(merchant.api_key)).id == merchant.id  # now cached
    async with runtime.sessions.begin() as session:  # gone from the database: cache only
        await session.execute(
            update(Merchant).where(Merchant.id == merchant.id).values(previous_api_key_hash=None)
        )
    assert (await cache.merchant_for(merchant.api_key)).id == merchant.id

    ends = (await admin.get_merchant(runtime.sessions, merchant.id)).previous_key_expires_at
    monkeypatch.setattr(auth, "utcnow", lambda: ends + timedelta(seconds=1))

    assert await cache.merchant_for(merchant.api_key) is None
    assert (await cache.merchant_for(rotated["api_key"])).id == merchant.id


async def test_grace_zero_stops_the_old_key_at_once(client, runtime, merchant):
    assert await answer(client, merchant.api_key) == (200, None)  # cached in this process

    rotated = await admin.rotate_api_key(
        runtime.sessions, merchant.id, grace_seconds=0, keys=runtime.merchant_keys
    )

    assert rotated["previous_key_expires_at"] is None
    assert await answer(client, merchant.api_key) == (401, "unauthorized")
    assert await answer(client, rotated["api_key"]) == (200, None)


async def test_rotating_again_ends_the_earlier_previous_key(client, runtime, merchant):
    second = await admin.rotate_api_key(runtime.sessions, merchant.id, keys=runtime.merchant_keys)
    third = await admin.rotate_api_key(runtime.sessions, merchant.id, keys=runtime.merchant_keys)

    assert await answer(client, merchant.api_key) == (401, "unauthorized")
    assert await answer(client, second["api_key"]) == (200, None)
    assert await answer(client, third["api_key"]) == (200, None)
    entries = await list_actions(runtime.sessions, target_type="merchant", target_id=merchant.id)
    assert [entry.detail["earlier_previous_key_ended"] for entry in entries] == [True, False]


@pytest.mark.parametrize("grace", [-1, 30 * 86400 + 1, 10**9])
async def test_a_grace_outside_0_to_30_days_is_refused(client, runtime, merchant, grace):
    with pytest.raises(InvalidGracePeriod, match="between 0 and 2592000"):
        await admin.rotate_api_key(runtime.sessions, merchant.id, grace_seconds=grace)
    with pytest.raises(ValueError, match="30 days"):
        await admin.rotate_webhook_secret(runtime.sessions, merchant.id, grace_seconds=grace)

    assert await answer(client, merchant.api_key) == (200, None)
    assert await list_actions(runtime.sessions, target_type="merchant") == []


async def test_thirty_days_is_the_longest_grace(runtime, merchant):
    rotated = await admin.rotate_api_key(runtime.sessions, merchant.id, grace_seconds=30 * 86400)
    assert rotated["previous_key_expires_at"] is not None


async def test_actions_on_an_unknown_merchant_raise_unknown_merchant(runtime):
    actions = [
        admin.rotate_api_key(runtime.sessions, "mer_nope"),
        admin.rotate_webhook_secret(runtime.sessions, "mer_nope"),
        admin.disable_merchant(runtime.sessions, "mer_nope"),
        admin.enable_merchant(runtime.sessions, "mer_nope"),
        admin.get_merchant(runtime.sessions, "mer_nope"),
    ]
    for action in actions:
        with pytest.raises(UnknownMerchant):
            await action
    assert await list_actions(runtime.sessions) == []


async def test_a_disabled_merchant_is_refused_and_others_keep_working(
    client, runtime, merchant, other_merchant
):
    await admin.disable_merchant(runtime.sessions, merchant.id, keys=runtime.merchant_keys)

    refused = await client.post("/v1/payments", json=VALID, headers=bearer(merchant.api_key))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["code"] == "merchant_disabled"
    assert refused.json()["detail"] == (
        "This merchant is disabled; contact the gateway's operators."
    )
    assert await answer(client, merchant.api_key) == (401, "merchant_disabled")
    other = await client.post("/v1/payments", json=VALID, headers=bearer(other_merchant.api_key))
    assert other.status_code == 201
    assert await answer(client, "mgw_unknown") == (401, "unauthorized")
    assert (await admin.get_merchant(runtime.sessions, merchant.id)).disabled

    await admin.enable_merchant(runtime.sessions, merchant.id, keys=runtime.merchant_keys)
    assert await answer(client, merchant.api_key) == (200, None)


async def test_another_process_notices_a_disable_within_its_ttl(runtime, merchant):
    elsewhere = ApiKeyCache(runtime.sessions, ttl=0.2)
    assert (await elsewhere.merchant_for(merchant.api_key)).id == merchant.id

    await admin.disable_merchant(runtime.sessions, merchant.id)  # not told about it

    assert (await elsewhere.merchant_for(merchant.api_key)).id == merchant.id  # still cached
    await asyncio.sleep(0.25)
    with pytest.raises(MerchantDisabled):
        await elsewhere.merchant_for(merchant.api_key)
    # The disabled state is cached too: enabling shows after the TTL as well.
    await admin.enable_merchant(runtime.sessions, merchant.id)
    with pytest.raises(MerchantDisabled):
        await elsewhere.merchant_for(merchant.api_key)
    await asyncio.sleep(0.25)
    assert (await elsewhere.merchant_for(merchant.api_key)).id == merchant.id


def capturing_delivery(runtime, sent):
    def storefront(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    client = httpx.AsyncClient(transport=httpx.MockTransport(storefront))
    settings = make_settings(runtime.settings.database_url)
    return EventDelivery(sessions=runtime.sessions, settings=settings, client=client)


async def test_a_disabled_merchants_events_wait_and_go_out_after_enable(
    client, auth, runtime, fake_providers, merchant, other_merchant
):
    for number, headers in enumerate([auth, auth, bearer(other_merchant.api_key)]):
        created = await client.post(
            "/v1/payments", json={**VALID, "order_id": f"ORD-W{number}"}, headers=headers
        )
        assert created.status_code == 201
    await admin.disable_merchant(runtime.sessions, merchant.id, source="192.0.2.10")

    # Its payments still settle, and their events are written...
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=50000, currency="UGX"
    )
    assert (await runtime.reconciler.reconcile()).settled == 3
    assert await count_rows(runtime, "payments", "status = 'successful'") == 3
    waiting = await count_rows(runtime, "events", "merchant_id = :m", m=merchant.id)
    assert waiting == 2

    # ...but not sent: not due, not taken, no attempt, nothing counted.
    sent: list[httpx.Request] = []
    delivery = capturing_delivery(runtime, sent)
    swept = dataclasses.replace(runtime, delivery=delivery)
    results = await sweep_outbox(swept)
    assert [result.delivered for result in results] == [True]  # the other merchant's
    assert {request.url.host for request in sent} == {"other.example"}
    async with runtime.engine.connect() as connection:
        (event_id,) = (
            await connection.exec_driver_sql(
                "SELECT id FROM events WHERE merchant_id = ? LIMIT 1"
                if connection.dialect.name == "sqlite"
                else "SELECT id FROM events WHERE merchant_id = $1 LIMIT 1",
                (merchant.id,),
            )
        ).one()
    assert not (await delivery.deliver(event_id)).sent
    assert await count_rows(runtime, "event_delivery_attempts", "event_id = :e", e=event_id) == 0
    assert (
        await count_rows(
            runtime,
            "events",
            "merchant_id = :m AND attempt_count = 0 AND delivery_status = 'pending'",
            m=merchant.id,
        )
        == 2
    )

    await admin.enable_merchant(runtime.sessions, merchant.id)
    results = await sweep_outbox(swept)

    assert [result.delivered for result in results] == [True, True]
    assert [request.url.host for request in sent[1:]] == ["shop.example", "shop.example"]
    delivered = "merchant_id = :m AND attempt_count = 1 AND delivery_status = 'delivered'"
    assert await count_rows(runtime, "events", delivered, m=merchant.id) == 2


async def test_each_merchant_action_is_audited_with_who_where_and_what(runtime, merchant):
    operator, _ = await create_operator(runtime.sessions, "ops@gateway.example", "admin")
    by = {"operator": operator, "source": "192.0.2.10"}

    await admin.update_callback_url(runtime.sessions, merchant.id, "https://b.example/", **by)
    key = await admin.rotate_api_key(runtime.sessions, merchant.id, grace_seconds=60, **by)
    secret = await admin.rotate_webhook_secret(runtime.sessions, merchant.id, **by)
    await admin.disable_merchant(runtime.sessions, merchant.id, **by)
    await admin.enable_merchant(runtime.sessions, merchant.id, actor="cli", source="cli")

    entries = await list_actions(runtime.sessions, target_type="merchant", target_id=merchant.id)
    assert [entry.action for entry in entries] == [
        "merchant.enable",
        "merchant.disable",
        "merchant.rotate_secret",
        "merchant.rotate_key",
        "merchant.update_callback_url",
    ]
    assert {(entry.operator_id, entry.actor, entry.source) for entry in entries[1:]} == {
        (operator.id, "ops@gateway.example", "192.0.2.10")
    }
    assert (entries[0].operator_id, entries[0].actor, entries[0].source) == (None, "cli", "cli")
    rotate_key = entries[3].detail
    assert rotate_key["grace_seconds"] == 60
    assert rotate_key["previous_key_expires_at"] == key["previous_key_expires_at"]
    assert rotate_key["replaced_key_prefix"] == merchant.api_key[:12]
    assert rotate_key["new_key_prefix"] == key["api_key"][:12]
    assert entries[2].detail["previous_secret_expires_at"] == secret["previous_secret_expires_at"]
    written = json.dumps([entry.detail for entry in entries])
    for secret_value in (key["api_key"], secret["webhook_secret"], merchant.webhook_secret):
        assert secret_value not in written
