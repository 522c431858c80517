"""One payment, many writers at once: provider callbacks (repeated and varied), storefront
refreshes and reconciler sweeps — in this process and in a worker process — all asking the
provider and all trying to move the same payments out of pending. Exactly one may."""

from __future__ import annotations

import asyncio
import json

import httpx

from app.callback_tokens import per_payment_url
from app.providers.airtel_money import AirtelMoneySettings
from app.providers.mtn_momo import MtnMomoSettings
from app.simulator.config import SimulatorConfig
from tests.e2e.stack import Stack
from tests.receiver import storefront_receiver
from tests.reliability.harness import (
    Order,
    airtel_payer,
    airtel_scenario,
    collector,
    configure_simulator,
    create_payments,
    invariants_hold,
    mtn_payer,
    mtn_scenario,
    one_worker,
    reliability_stack,
    statuses,
    unexpected_outcomes,
)

PAYMENTS = 10
# Per payment: 3 callbacks sent by the provider itself (identical), 3 callbacks with bodies of
# their own (so the inbox cannot dedupe them), 4 refreshes: 100 requests in flight together.
PROVIDER_CALLBACKS, OWN_CALLBACKS, REFRESHES = 3, 3, 4
IN_PROCESS_SWEEPS = 3


def orders() -> list[Order]:
    made = []
    for i in range(PAYMENTS):
        mtn = i % 2 == 0
        if i % 5 == 4:
            phone = mtn_scenario(451) if mtn else airtel_scenario(451)
            made.append(Order(f"RACE-{i}", phone, "failed"))
        else:
            made.append(Order(f"RACE-{i}", mtn_payer(i) if mtn else airtel_payer(i)))
    return made


def own_callback(stack: Stack, payment: dict, n: int) -> tuple[str, str, bytes]:
    """A callback as the provider would send it, with a body unique to ``n``."""
    reference = payment["provider_reference"]
    if payment["provider"] == "mtn_momo":
        url = per_payment_url(
            stack.settings.provider_settings(MtnMomoSettings).callback_url or "",
            stack.runtime.callback_secret,
            reference,
        )
        body = {"status": "SUCCESSFUL", "financialTransactionId": f"9000{n}", "amount": "1000"}
        return "PUT", url, json.dumps(body).encode()
    url = stack.settings.provider_settings(AirtelMoneySettings).callback_url or ""
    body = {
        "transaction": {
            "id": reference,
            "status_code": "TS",
            "message": f"attempt {n}",
            "airtel_money_id": f"MP{n}",
        }
    }
    return "POST", url, json.dumps(body).encode()


async def test_a_hundred_concurrent_writers_make_one_transition_per_payment(
    clean_pg, redis_url, tmp_path
):
    # Settled at the provider the moment it is accepted; callbacks only when we ask for them.
    config = SimulatorConfig(approval_delay_seconds=0, callbacks_enabled=False)
    wanted = orders()
    async with (
        storefront_receiver() as receiver,
        reliability_stack(clean_pg, redis_url, receiver, simulator=config) as stack,
    ):
        responses = await create_payments(stack, wanted, concurrency=PAYMENTS)
        assert statuses(responses) == [201] * PAYMENTS
        payments = [r.json() for r in responses if isinstance(r, httpx.Response)]
        assert {p["status"] for p in payments} == {"pending"}
        # Slow status answers keep every writer's check in flight at once: all of them read
        # "pending" before any of them writes.
        slow = {"latency_seconds": 0.2}
        await configure_simulator(
            stack, {"endpoint_faults": {"mtn.requesttopay_status": slow, "airtel.enquiry": slow}}
        )

        async def provider_callback(payment: dict) -> int:
            sent = await stack.simulator.post(
                f"/_simulator/payments/{payment['provider_reference']}/callback"
            )
            assert sent.status_code == 200, sent.text
            return int(sent.json()["status_code"])

        async def direct_callback(payment: dict, n: int) -> int:
            method, url, body = own_callback(stack, payment, n)
            answer = await stack.gateway.request(
                method, url, content=body, headers={"Content-Type": "application/json"}
            )
            return answer.status_code

        async def refresh(payment: dict) -> httpx.Response:
            return await stack.gateway.post(f"/v1/payments/{payment['id']}/refresh")

        async with one_worker(stack.settings, tmp_path) as worker:
            callbacks = [provider_callback(p) for p in payments for _ in range(PROVIDER_CALLBACKS)]
            callbacks += [direct_callback(p, n) for p in payments for n in range(OWN_CALLBACKS)]
            refreshes = [refresh(p) for p in payments for _ in range(REFRESHES)]
            sweeps = [stack.runtime.reconciler.reconcile() for _ in range(IN_PROCESS_SWEEPS)]
            assert len(callbacks) + len(refreshes) == 100
            results = await asyncio.gather(*callbacks, *refreshes, *sweeps)

            callback_statuses = results[: len(callbacks)]
            refreshed = results[len(callbacks) : len(callbacks) + len(refreshes)]
            assert callback_statuses == [200] * len(callbacks)
            # Every refresh answers with the final status, whichever writer won.
            assert [r.status_code for r in refreshed] == [200] * len(refreshes)
            assert {r.json()["status"] for r in refreshed} <= {"successful", "failed"}

            evidence = await invariants_hold(
                collector(stack, receiver), [worker], timeout=120, require_delivered_status=True
            )

        assert unexpected_outcomes(wanted, evidence) == []
        # The invariants include it; said here in so many words: one way out of pending each.
        leaving = [t.payment_id for t in evidence.gateway.transitions if t.from_status == "pending"]
        assert sorted(leaving) == sorted(p["id"] for p in payments)
        assert len(evidence.gateway.events) == PAYMENTS
