"""Refunds under faults, over the real deployment shape (API under uvicorn, the simulator over
HTTP, PostgreSQL, Redis, ``momo-gateway worker`` as its own process).

Acceptance:

* "Provider 5xx/timeouts during the refund call → retried with the same reference; a refund call
  that never gets an answer stays pending and is never sent a second time under a new
  reference."
* "Redis flushed, worker killed mid-batch → no refund lost, none sent twice: Σ succeeded refunds
  ≤ payment amount, each refund one provider reference, one event per final refund status."

Each run ends with the invariant checker (``invariants.py``) comparing the gateway's refunds,
their events and audit trail with the simulator's refund ledger and what the storefront
received.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from app.simulator.config import SimulatorConfig
from tests.receiver import storefront_receiver
from tests.reliability.harness import (
    Order,
    RefundAsk,
    airtel_payer,
    collector,
    configure_simulator,
    create_refunds,
    created_refunds,
    endpoint_stats,
    invariants_hold,
    mtn_payer,
    one_worker,
    poll_until,
    refund_ledger,
    refund_status_requests,
    refund_statuses,
    reliability_stack,
    successful_payments,
    unexpected_refund_answers,
    worker_processes,
)
from tests.reliability.invariants import Evidence

EXCEEDS = "refund_exceeds_payment"
PARTIAL = "partial_refund_not_supported"


def mtn_orders(prefix: str, count: int) -> list[Order]:
    return [Order(f"{prefix}-M{i}", mtn_payer(i)) for i in range(count)]


def airtel_orders(prefix: str, count: int) -> list[Order]:
    return [Order(f"{prefix}-A{i}", airtel_payer(i)) for i in range(count)]


def mtn_plan(payment_id: str, i: int) -> list[RefundAsk]:
    """Partial refunds of a UGX 10000 MTN payment, up to all of it, with over-refunds between
    them that must be refused."""
    if i % 2 == 0:
        return [
            RefundAsk(payment_id, "3000"),
            RefundAsk(payment_id, "3000"),
            RefundAsk(payment_id, "3000"),
            RefundAsk(payment_id, "5000", 422, EXCEEDS),
            RefundAsk(payment_id, None),  # the 1000 left
            RefundAsk(payment_id, "1", 422, EXCEEDS),
        ]
    return [
        RefundAsk(payment_id, "4000"),
        RefundAsk(payment_id, "7000", 422, EXCEEDS),
        RefundAsk(payment_id, "6000"),
        RefundAsk(payment_id, None, 422, EXCEEDS),  # nothing left
    ]


def airtel_plan(payment_id: str, i: int) -> list[RefundAsk]:
    """Airtel refunds the full amount, once: a partial refund and a second one are refused."""
    if i % 2 == 0:
        return [
            RefundAsk(payment_id, "5000", 422, PARTIAL),
            RefundAsk(payment_id, None),
            RefundAsk(payment_id, None, 422, PARTIAL),
        ]
    return [RefundAsk(payment_id, "10000"), RefundAsk(payment_id, "10000", 422, PARTIAL)]


def interleaved(*lists: list[Any]) -> list[Any]:
    longest = max(len(items) for items in lists)
    return [items[i] for i in range(longest) for items in lists if i < len(items)]


def refund_deliveries(evidence: Evidence) -> dict[str, set[str]]:
    """Per refund, the webhook-ids its events reached the storefront under (2xx)."""
    delivered: dict[str, set[str]] = {}
    for delivery in evidence.deliveries:
        if delivery.refund_id is not None and delivery.accepted:
            delivered.setdefault(delivery.refund_id, set()).add(delivery.webhook_id)
    return delivered


# --- provider faults on every refund endpoint ----------------------------------------------------

# An unanswered refund goes to needs_review after this long: short, so the run sees it happen.
REFUND_TIMEOUT = 12
# A simulated timeout holds the request this long and then answers 504.
HANG_SECONDS = 1.0
MTN_REFUND_FAULTS = {
    "error_rate": 0.30,
    "timeout_rate": 0.05,
    "timeout_after_processing_rate": 0.05,
    "hang_seconds": HANG_SECONDS,
}
# Fewer Airtel refunds, so more of their answers are lost.
AIRTEL_REFUND_FAULTS = {
    "error_rate": 0.30,
    "timeout_rate": 0.10,
    "timeout_after_processing_rate": 0.15,
    "hang_seconds": HANG_SECONDS,
}
NO_FAULTS = {"error_rate": 0, "timeout_rate": 0, "timeout_after_processing_rate": 0}


async def test_refunds_through_provider_faults_are_sent_once_and_end_as_the_provider_says(
    clean_pg, redis_url, tmp_path
):
    config = SimulatorConfig(approval_delay_seconds=0.05, seed=20261204)
    async with (
        storefront_receiver() as receiver,
        reliability_stack(
            clean_pg,
            redis_url,
            receiver,
            simulator=config,
            payment_timeout_seconds=REFUND_TIMEOUT,
        ) as stack,
        one_worker(stack.settings, tmp_path) as worker,
    ):
        mtn = await successful_payments(stack, mtn_orders("RFAULT", 28))
        airtel = await successful_payments(stack, airtel_orders("RFAULT", 13))
        storm_mtn, never_taken_mtn, lost_answer_mtn = mtn[:24], mtn[24:26], mtn[26:]
        storm_airtel, lost_answer_airtel = airtel[:12], airtel[12:]

        # The storm: every refund endpoint errs (503 for the first half, MTN's 500
        # INTERNAL_PROCESSING_ERROR for the second: both "try again"), hangs, and loses answers
        # after taking the refund. Payments' endpoints are left alone.
        await configure_simulator(
            stack,
            {
                "endpoint_faults": {
                    "mtn.refund": {**MTN_REFUND_FAULTS, "error_status": 503},
                    "mtn.refund_status": {**MTN_REFUND_FAULTS, "error_status": 503},
                    "airtel.refund": {**AIRTEL_REFUND_FAULTS, "error_status": 503},
                }
            },
        )
        plans = interleaved(
            [mtn_plan(p["id"], i) for i, p in enumerate(storm_mtn)],
            [airtel_plan(p["id"], i) for i, p in enumerate(storm_airtel)],
        )
        half = len(plans) // 2
        answers = await create_refunds(stack, plans[:half])
        await configure_simulator(
            stack,
            {
                "endpoint_faults": {
                    "mtn.refund": {"error_status": 500},
                    "mtn.refund_status": {"error_status": 500},
                    "airtel.refund": {"error_status": 500},
                }
            },
        )
        answers += await create_refunds(stack, plans[half:])

        # Calls that never get an answer. Every attempt dropped before MTN took it ...
        await configure_simulator(
            stack,
            {
                "endpoint_faults": {
                    "mtn.refund": {**NO_FAULTS, "timeout_rate": 1, "hang_seconds": 0.3},
                    "mtn.refund_status": NO_FAULTS,
                }
            },
        )
        never_taken = await create_refunds(
            stack, [[RefundAsk(p["id"], "2500")] for p in never_taken_mtn]
        )
        # ... and every answer lost after MTN or Airtel took the refund.
        await configure_simulator(
            stack,
            {
                "endpoint_faults": {
                    "mtn.refund": {**NO_FAULTS, "timeout_after_processing_rate": 1},
                    "airtel.refund": {
                        **NO_FAULTS,
                        "timeout_after_processing_rate": 1,
                        "hang_seconds": 0.3,
                    },
                }
            },
        )
        lost_answer = await create_refunds(
            stack,
            [[RefundAsk(p["id"], "2500")] for p in lost_answer_mtn]
            + [[RefundAsk(p["id"], None)] for p in lost_answer_airtel],
        )
        await configure_simulator(
            stack,
            {
                "endpoint_faults": {
                    name: None for name in ("mtn.refund", "mtn.refund_status", "airtel.refund")
                }
            },
        )

        # Faults never reach the storefront as errors: each refund is created (201, pending or
        # already succeeded, never failed), each over-refund refused with its code.
        everything = answers + never_taken + lost_answer
        assert unexpected_refund_answers(everything) == []
        unanswered = created_refunds(never_taken) + created_refunds(lost_answer)
        assert {r["status"] for r in created_refunds(never_taken)} == {"pending"}
        # The storm really happened, on each refund endpoint, including lost answers.
        for name in ("mtn.refund", "mtn.refund_status", "airtel.refund"):
            faults = (await endpoint_stats(stack, name))["faults"]
            assert sum(faults.values()) > 0, (name, faults)
            if name != "mtn.refund_status":
                assert faults.get("timeout_after_processing", 0) > 0, (name, faults)
        # What the providers were asked when the calls ended: the unanswered calls were retried
        # under their own reference, and that count must not grow later.
        asked = await refund_ledger(stack)
        requests_at_creation = {
            (entry["provider"], entry["reference"]): entry["create_requests"]
            for entry in asked["refunds"] + asked["unaccepted"]
        }

        evidence = await invariants_hold(
            collector(stack, receiver),
            [worker],
            timeout=REFUND_TIMEOUT + 120,
            require_delivered_status=True,
            require_refunds_final=True,
        )

        created = created_refunds(everything)
        by_id = {r.id: r for r in evidence.gateway.refunds}
        assert set(by_id) == {r["id"] for r in created}
        ledger = await refund_ledger(stack)
        taken = {r["reference"]: r for r in ledger["refunds"] if r["provider"] == "mtn_momo"}
        unaccepted = {
            r["reference"]: r for r in ledger["unaccepted"] if r["provider"] == "mtn_momo"
        }
        # Retried with the same reference: some MTN refund was asked for more than once, and
        # still paid out once under the one reference the gateway recorded.
        assert any(r["create_requests"] > 1 for r in taken.values())
        assert all(r["payouts"] <= 1 for r in ledger["refunds"])
        # Every reference MTN was asked to refund under is a gateway refund's own.
        assert set(taken) | set(unaccepted) <= {
            r.provider_reference for r in evidence.gateway.refunds
        }
        # Nothing was sent again after the call ended: the reconciler only ever reads.
        for entry in ledger["refunds"] + ledger["unaccepted"]:
            key = (entry["provider"], entry["reference"])
            assert entry["create_requests"] == requests_at_creation.get(key), entry
        # Never taken by MTN: pending until the timeout, then a person looks; the payment's
        # refunds at MTN are the storm's only.
        for refund in created_refunds(never_taken):
            reference = refund["provider_reference"]
            assert by_id[refund["id"]].status == "needs_review"
            assert reference not in taken
            assert unaccepted[reference]["create_requests"] > 1
        # Taken but never answered: MTN's status read settles it; Airtel has none to read, and
        # its retry was refused as a repeat, so a person looks.
        for refund in unanswered:
            if refund["provider"] == "mtn_momo" and refund["provider_reference"] in taken:
                entry = taken[refund["provider_reference"]]
                assert entry["create_requests"] > 1, entry
                assert entry["payouts"] == 1, entry
                assert by_id[refund["id"]].status == "succeeded"
            elif refund["provider"] == "airtel_money":
                assert by_id[refund["id"]].status == "needs_review"
        # No refund stays pending once the provider has a final answer: every MTN refund MTN
        # took ended as MTN says (the checker's state invariant), none is left in review.
        mtn_reviewed = [
            r.id
            for r in evidence.gateway.refunds
            if r.provider == "mtn_momo"
            and r.status == "needs_review"
            and r.provider_reference in taken
        ]
        assert mtn_reviewed == []
        # One event per final refund status reached the storefront, under one webhook-id.
        delivered = refund_deliveries(evidence)
        assert set(delivered) == set(by_id)
        assert {rid: ids for rid, ids in delivered.items() if len(ids) != 1} == {}


# --- Redis flushed while refunds are pending -----------------------------------------------------


async def test_redis_flushed_while_refunds_are_pending_loses_none_and_pays_none_twice(
    clean_pg, redis_url, tmp_path
):
    config = SimulatorConfig(approval_delay_seconds=0.05)
    redis = Redis.from_url(redis_url)
    pending_at_flush: list[int] = []

    try:
        async with (
            storefront_receiver() as receiver,
            reliability_stack(clean_pg, redis_url, receiver, simulator=config) as stack,
            one_worker(stack.settings, tmp_path) as worker,
        ):
            mtn = await successful_payments(stack, mtn_orders("RFLUSH", 30))
            airtel = await successful_payments(stack, airtel_orders("RFLUSH", 8))
            # From here on only the worker's sweeps settle MTN refunds, each status read a
            # little slow, so that refunds are pending whenever Redis is wiped.
            await configure_simulator(
                stack,
                {
                    "callbacks_enabled": False,
                    "endpoint_faults": {"mtn.refund_status": {"latency_seconds": 0.2}},
                },
            )

            async def flush() -> None:
                statuses = await refund_statuses(stack)
                pending_at_flush.append(sum(1 for s in statuses.values() if s == "pending"))
                await redis.flushdb()

            async def flush_now_and_then(done: int) -> None:
                # Queued deliveries, cached tokens (the disbursement one too) and the worker's
                # bookkeeping all vanish while refunds are being created and settled.
                if done % 12 == 6:
                    await flush()

            plans = [[RefundAsk(p["id"], "4000"), RefundAsk(p["id"], None)] for p in mtn] + [
                [RefundAsk(p["id"], None)] for p in airtel
            ]
            answers = await create_refunds(
                stack, plans, concurrency=8, on_progress=flush_now_and_then
            )
            await flush()  # and once more, with the last refunds surely pending
            assert unexpected_refund_answers(answers) == []
            assert len(pending_at_flush) >= 6
            assert pending_at_flush[-1] > 0, pending_at_flush

            evidence = await invariants_hold(
                collector(stack, receiver),
                [worker],
                timeout=120,
                require_delivered_status=True,
                require_refunds_final=True,
            )

            # No refund lost: each one the API created succeeded, as the provider says.
            created = created_refunds(answers)
            assert len(created) == 2 * len(mtn) + len(airtel)
            assert {r.id: r.status for r in evidence.gateway.refunds} == {
                r["id"]: "succeeded" for r in created
            }
            assert {p.id: p.amount_refunded_minor for p in evidence.gateway.payments} == {
                p["id"]: 10000 for p in mtn + airtel
            }
            # None sent twice: one request and one payout per refund at the provider, under
            # the refund's own reference.
            ledger = await refund_ledger(stack)
            assert ledger["unaccepted"] == []
            assert {(r["create_requests"], r["payouts"]) for r in ledger["refunds"]} == {(1, 1)}
            assert sorted(
                r["reference"] for r in ledger["refunds"] if r["provider"] == "mtn_momo"
            ) == sorted(r["provider_reference"] for r in created if r["provider"] == "mtn_momo")
            # One event per refund reached the storefront, under one webhook-id.
            delivered = refund_deliveries(evidence)
            assert set(delivered) == {r["id"] for r in created}
            assert {rid: ids for rid, ids in delivered.items() if len(ids) != 1} == {}
            # The token cache really was lost: MTN was asked for a disbursement token again.
            tokens = await endpoint_stats(stack, "mtn.disbursement_token")
            assert tokens["requests"] > 1, tokens
    finally:
        await redis.aclose()


# --- a worker SIGKILLed in the middle of a refund sweep ------------------------------------------

# One sweep of ~48 refunds at 10 concurrent status reads takes ~5 s: time to kill it midway.
STATUS_LATENCY = {"latency_seconds": 1.0}
# MTN pays refunds while its disbursement account lasts: 30 of the 5000 ones, or fewer 3000s.
DISBURSEMENT_BALANCE = "150000"


async def test_worker_sigkilled_mid_refund_sweep_loses_no_refund_and_pays_none_twice(
    clean_pg, redis_url, tmp_path
):
    config = SimulatorConfig(approval_delay_seconds=0.05)
    redis = Redis.from_url(redis_url)
    try:
        async with (
            storefront_receiver() as receiver,
            reliability_stack(clean_pg, redis_url, receiver, simulator=config) as stack,
            worker_processes(stack.settings, tmp_path) as spawn,
        ):
            mtn = await successful_payments(stack, mtn_orders("RKILL", 24))
            airtel = await successful_payments(stack, airtel_orders("RKILL", 6))
            # No callbacks: the reconciler is the only way an MTN refund settles. MTN settles a
            # refund the moment it takes it, paying or failing NOT_ENOUGH_FUNDS.
            await configure_simulator(
                stack, {"callbacks_enabled": False, "refund_delay_seconds": 0}
            )
            balance = await stack.simulator.post(
                "/_simulator/disbursement/balance",
                json={"currency": "UGX", "available_balance": DISBURSEMENT_BALANCE},
            )
            assert balance.status_code == 200, balance.text
            plans = [[RefundAsk(p["id"], "5000"), RefundAsk(p["id"], "3000")] for p in mtn] + [
                [RefundAsk(p["id"], None)] for p in airtel
            ]
            answers = await create_refunds(stack, plans, concurrency=8)
            assert unexpected_refund_answers(answers) == []
            created = created_refunds(answers)
            at_start = await refund_statuses(stack)
            to_sweep = sum(1 for status in at_start.values() if status == "pending")
            # Every MTN refund waits for the sweep; Airtel answered each at once.
            assert to_sweep == 2 * len(mtn)
            held = {r["status"] for r in (await refund_ledger(stack))["refunds"]}
            assert held == {"SUCCESSFUL", "FAILED"}, held

            await configure_simulator(
                stack, {"endpoint_faults": {"mtn.refund_status": STATUS_LATENCY}}
            )
            first = spawn()

            async def mid_sweep() -> bool:
                assert first.running(), first.log_tail()
                if await refund_status_requests(stack) < to_sweep // 4:
                    return False
                statuses = await refund_statuses(stack)
                return sum(1 for status in statuses.values() if status == "pending") < to_sweep

            # The sweep is a quarter through and has already settled a refund ...
            await poll_until(mid_sweep, timeout=60, what="the first worker to settle a refund")
            first.kill()
            asked_before_kill = await refund_status_requests(stack)
            left_pending = sum(
                1 for status in (await refund_statuses(stack)).values() if status == "pending"
            )
            # ... and had not finished when it died; Redis goes with it.
            await redis.flushdb()
            assert asked_before_kill < to_sweep, "the worker finished its sweep before the kill"
            assert 0 < left_pending < to_sweep, (left_pending, to_sweep)

            second = spawn()
            evidence = await invariants_hold(
                collector(stack, receiver),
                [first, second],
                timeout=120,
                require_delivered_status=True,
                require_refunds_final=True,
            )

            # No refund lost: each ended as the provider says (the checker's state invariant),
            # none is left pending, and all of them are there.
            assert {r.id for r in evidence.gateway.refunds} == {r["id"] for r in created}
            ledger = await refund_ledger(stack)
            mtn_held = {r["reference"]: r for r in ledger["refunds"] if r["provider"] == "mtn_momo"}
            expected = {"SUCCESSFUL": "succeeded", "FAILED": "failed"}
            assert {
                r.id: r.status for r in evidence.gateway.refunds if r.provider == "mtn_momo"
            } == {
                r.id: expected[mtn_held[r.provider_reference]["status"]]
                for r in evidence.gateway.refunds
                if r.provider == "mtn_momo"
            }
            assert {r.failure_code for r in evidence.gateway.refunds if r.status == "failed"} == {
                "insufficient_funds"
            }
            # None paid twice, none sent twice: the workers only ever read a refund's status.
            assert ledger["unaccepted"] == []
            assert {
                (r["create_requests"], r["payouts"])
                for r in ledger["refunds"]
                if r["status"] == "SUCCESSFUL"
            } == {(1, 1)}
            assert {r["create_requests"] for r in ledger["refunds"]} == {1}
            # One event per final refund status reached the storefront, under one webhook-id.
            delivered = refund_deliveries(evidence)
            assert set(delivered) == {r["id"] for r in created}
            assert {rid: ids for rid, ids in delivered.items() if len(ids) != 1} == {}
    finally:
        await redis.aclose()
