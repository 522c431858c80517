"""Acceptance: "Worker killed (SIGKILL) mid-sweep and restarted → no payment left unsettled, no
event lost or sent twice with different ids."

Callbacks are off, so the reconciler is the only way a payment settles. The provider's status
endpoints are slowed down so one sweep takes seconds; the worker is SIGKILLed once the provider
has answered some of the sweep's checks but not all of them — claims taken, transactions and
deliveries in flight — and a fresh worker is started. Everything must end exactly as the
provider says, each event delivered, under one webhook-id per payment.
"""

from __future__ import annotations

from app.simulator.config import SimulatorConfig
from tests.receiver import storefront_receiver
from tests.reliability.harness import (
    Order,
    collector,
    configure_simulator,
    create_payments,
    invariants_hold,
    mixed_orders,
    poll_until,
    refused_payment_ids,
    reliability_stack,
    status_requests,
    statuses,
    unexpected_outcomes,
    worker_processes,
)
from tests.reliability.invariants import read_gateway

# One sweep of ~50 payments at 10 concurrent checks takes ~5 s: time to kill it in the middle.
STATUS_LATENCY = {"latency_seconds": 1.0}


def orders() -> list[Order]:
    """Payers who pay, who refuse, who cannot, and numbers refused outright: every one of them
    has a final answer at the provider, so none may stay pending."""
    return [order for order in mixed_orders("KILL", 60) if order.outcome != "pending"]


async def test_worker_sigkilled_mid_sweep_loses_nothing(clean_pg, redis_url, tmp_path):
    config = SimulatorConfig(approval_delay_seconds=0, callbacks_enabled=False)
    wanted = orders()
    async with (
        storefront_receiver() as receiver,
        reliability_stack(clean_pg, redis_url, receiver, simulator=config) as stack,
        worker_processes(stack.settings, tmp_path) as spawn,
    ):
        responses = await create_payments(stack, wanted, concurrency=8)
        assert statuses(responses) == [201] * len(wanted)
        gateway = await read_gateway(stack.runtime.engine)
        to_sweep = sum(1 for p in gateway.payments if p.status == "pending")
        assert to_sweep == sum(1 for o in wanted if not o.refused)

        await configure_simulator(
            stack,
            {
                "endpoint_faults": {
                    "mtn.requesttopay_status": STATUS_LATENCY,
                    "airtel.enquiry": STATUS_LATENCY,
                }
            },
        )
        first = spawn()

        async def mid_sweep() -> bool:
            assert first.running(), first.log_tail()
            if await status_requests(stack) < to_sweep // 4:
                return False
            settled = await read_gateway(stack.runtime.engine)
            return any(p.status == "successful" for p in settled.payments)

        # The sweep is a quarter through and has already settled something ...
        await poll_until(mid_sweep, timeout=120, what="the first worker to settle a payment")
        first.kill()
        asked_before_kill = await status_requests(stack)
        at_kill = await read_gateway(stack.runtime.engine)
        left_pending = sum(1 for p in at_kill.payments if p.status == "pending")
        # ... and had not finished when it died.
        assert asked_before_kill < to_sweep, "the worker finished its sweep before the kill"
        assert 0 < left_pending < to_sweep, (left_pending, to_sweep)

        second = spawn()
        evidence = await invariants_hold(
            collector(stack, receiver),
            [first, second],
            timeout=150,
            refused_at_initiation=await refused_payment_ids(stack, wanted),
            require_delivered_status=True,
        )

        # No payment left unsettled: the provider has a final answer for each, so must we.
        assert [p.id for p in evidence.gateway.payments if p.status == "pending"] == []
        assert unexpected_outcomes(wanted, evidence) == []
        # No event lost: every terminal payment's one event reached the storefront ...
        delivered = {d.payment_id for d in evidence.deliveries if d.accepted}
        assert delivered == {p.id for p in evidence.gateway.payments}
        # ... and none sent twice with different ids.
        ids_per_payment: dict[str, set[str]] = {}
        for delivery in evidence.deliveries:
            ids_per_payment.setdefault(delivery.payment_id, set()).add(delivery.webhook_id)
        assert {pid: ids for pid, ids in ids_per_payment.items() if len(ids) != 1} == {}
