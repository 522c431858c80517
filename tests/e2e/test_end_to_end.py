"""The gateway and the simulator over real HTTP: initiation, callbacks, verify-by-fetch."""

from __future__ import annotations

import asyncio

from app.providers.mtn_momo import MtnMomoSettings
from app.simulator.config import SimulatorConfig
from tests.conftest import count_rows
from tests.e2e.stack import running_stack


async def test_mtn_and_airtel_payments_settle_by_callback_with_tokens_reused(clean_db):
    config = SimulatorConfig(approval_delay_seconds=0.05, airtel_callback_secret="airtel-key")
    async with running_stack(
        clean_db, simulator=config, airtel_money_webhook_secret="airtel-key"
    ) as stack:
        mtn = [await stack.pay("0772123456", f"MTN-{i}") for i in range(3)]
        airtel = [await stack.pay("0700123456", f"AIR-{i}") for i in range(3)]
        assert {p["provider"] for p in mtn} == {"mtn_momo"}
        assert {p["provider"] for p in airtel} == {"airtel_money"}

        for payment in mtn + airtel:
            await stack.settles(payment["id"], "successful")

        stats = await stack.sim("/_simulator/stats")
        assert stats["token_requests"] == {"mtn_momo": 1, "airtel_money": 1}
        ledger = {p["reference"]: p for p in (await stack.sim("/_simulator/payments"))["payments"]}
        for payment in mtn + airtel:
            held = ledger[payment["provider_reference"]]
            assert held["charges"] == 1
            assert held["msisdn"] in ("256772123456", "700123456")

        # MTN called back with PUT, at the per-payment URL, with no reference id in the body;
        # Airtel posted to its registered URL with a hash. Both were verified by fetch.
        callbacks = (await stack.sim("/_simulator/callbacks"))["callbacks"]
        mtn_calls = [c for c in callbacks if c["provider"] == "mtn_momo"]
        assert {c["method"] for c in mtn_calls} == {"PUT"}
        assert all("referenceId" not in c["body"] for c in mtn_calls)
        assert all(c["url"].rsplit("/", 2)[-2] in ledger for c in mtn_calls)
        assert all("hash" in c["body"] for c in callbacks if c["provider"] == "airtel_money")
        assert await count_rows(stack.runtime, "provider_callbacks", "outcome = 'accepted'") == 6
        assert await count_rows(stack.runtime, "events", "type = 'payment.succeeded'") == 6


async def test_refusals_and_failures_map_to_failure_codes(clean_db):
    async with running_stack(clean_db) as stack:
        refused = await stack.pay("256772000457", "REFUSED")  # MTN 500 NOT_ALLOWED at request
        assert refused["status"] == "failed"
        assert refused["failure_code"] == "not_allowed"

        rejected = await stack.pay("0772000451", "REJECTED")  # payer says no
        await stack.settles(rejected["id"], "failed")
        assert (await stack.payment(rejected["id"]))["failure_code"] == "rejected_by_payer"

        broke = await stack.pay("0752000470", "BROKE")  # Airtel, not enough balance
        await stack.settles(broke["id"], "failed")
        assert (await stack.payment(broke["id"]))["failure_code"] == "insufficient_funds"


async def test_refresh_settles_when_callbacks_never_come(clean_db):
    config = SimulatorConfig(approval_delay_seconds=0, callbacks_enabled=False)
    async with running_stack(clean_db, simulator=config) as stack:
        mtn = await stack.pay("0772123456", "SILENT-MTN")
        airtel = await stack.pay("0700123456", "SILENT-AIRTEL")
        for payment in (mtn, airtel):
            refreshed = await stack.gateway.post(f"/v1/payments/{payment['id']}/refresh")
            assert refreshed.status_code == 200
            assert refreshed.json()["status"] == "successful"
        assert (await stack.payment(mtn["id"]))["provider_transaction_id"]
        assert (await stack.payment(airtel["id"]))["provider_transaction_id"]


async def test_a_forged_callback_over_http_changes_nothing(clean_db):
    config = SimulatorConfig(approval_delay_seconds=60, callbacks_enabled=False)
    async with running_stack(clean_db, simulator=config) as stack:
        payment = await stack.pay("0772123456", "FORGED")
        forged = {
            "status": "SUCCESSFUL",
            "amount": "1000",
            "currency": "UGX",
            "externalId": "FORGED",
            "financialTransactionId": "1",
        }
        base = stack.settings.provider_settings(MtnMomoSettings).callback_url
        reference = payment["provider_reference"]

        wrong_token = await stack.gateway.put(f"{base}{reference}/forged-token", json=forged)
        assert wrong_token.status_code == 401
        # The guide-style body names a real order, but the provider still says PENDING.
        guide_style = await stack.gateway.post(base, json=forged)
        assert guide_style.status_code == 200
        assert (await stack.payment(payment["id"]))["status"] == "pending"


async def test_many_concurrent_payments_share_one_token_per_provider(clean_db):
    async with running_stack(clean_db) as stack:
        created = await asyncio.gather(
            *(stack.pay("0772123456" if i % 2 else "0700123456", f"BURST-{i}") for i in range(40))
        )
        assert len({p["id"] for p in created}) == 40
        stats = await stack.sim("/_simulator/stats")
        assert stats["token_requests"] == {"mtn_momo": 1, "airtel_money": 1}


async def test_the_guides_curl_examples_over_http(clean_db):
    """ "Test Webhook Locally" and "Test Idempotency" from the original guide, against a real
    server: the body names the order (externalId), the simulator's status decides."""
    config = SimulatorConfig(approval_delay_seconds=0, callbacks_enabled=False)
    async with running_stack(clean_db, simulator=config) as stack:
        payment = await stack.pay("0772123456", "TEST-001")
        route = "/api/webhooks/mtn-momo/"
        local = {
            "externalId": "TEST-001",
            "referenceId": "test-uuid-12345",
            "status": "SUCCESSFUL",
            "amount": "1000",
            "currency": "UGX",
        }
        first = await stack.gateway.post(route, json=local)
        assert first.status_code == 200
        assert first.json() == {"status": "success", "message": "Webhook processed"}
        assert (await stack.payment(payment["id"]))["status"] == "successful"

        same = {**local, "referenceId": "same-uuid-12345"}
        once = await stack.gateway.post(route, json=same)
        twice = await stack.gateway.post(route, json=same)
        assert once.json() == {"status": "success", "message": "Webhook processed"}
        assert twice.json() == {"status": "success", "message": "Already processed"}
        assert await count_rows(stack.runtime, "events") == 1
