"""Operators resolve needs_review payments and refunds while the gateway runs, and the
invariant checker still holds with their resolutions mixed in.

Over the real deployment shape (the API under uvicorn, the simulator over HTTP, PostgreSQL,
Redis, ``momo-gateway worker`` as its own process): a mix of payments, of which some end in
needs_review because MTN reports another amount, or because the provider contradicts a final
answer (on both networks), and MTN refunds that MTN reports for another amount. Two operators
then resolve them through ``momo-gateway payments resolve`` / ``refunds resolve``, some to the
provider's word and some against it, some of them both at once (one wins, one event), while
new payments keep arriving; the orders resolved failed are paid again. The worker runs
throughout and delivers every event.

Then the invariants hold (a person's resolution exempts a payment or refund from agreeing with
the provider; nothing else does), each resolution's event reached the storefront exactly once,
and nothing changed a resolved payment or refund afterwards, not even the provider sending its
callbacks again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from app.simulator.config import SimulatorConfig
from tests.receiver import storefront_receiver
from tests.reliability.harness import (
    Order,
    RefundAsk,
    airtel_payer,
    airtel_scenario,
    collector,
    create_payments,
    create_refunds,
    created_refunds,
    invariants_hold,
    mixed_orders,
    mtn_payer,
    mtn_scenario,
    one_worker,
    poll_until,
    refused_payment_ids,
    reliability_stack,
    run_cli,
    settings_env,
    settle_at_provider,
    settle_refund_at_provider,
    statuses,
    successful_payments,
    unexpected_refund_answers,
)
from tests.reliability.invariants import GatewaySnapshot, read_gateway

ADMINS = ("ops-a@shop.example", "ops-b@shop.example")
NOTE = "Checked with the provider's support desk and with the payer, by phone"
# The CLI's exit code for a resolution refused (e.g. another operator's won meanwhile).
REFUSED = 2
# CLI resolutions at once (each builds its own runtime and database pool).
CLI_CONCURRENCY = 4


@dataclass(frozen=True)
class Resolution:
    """One payment or refund to resolve: by one operator, or by both at once, each wanting
    another outcome (a race: exactly one may win)."""

    kind: str  # payment | refund
    subject: str  # its id
    outcomes: tuple[str, ...]  # one per operator: ADMINS[0]'s, then ADMINS[1]'s
    operator: str = ADMINS[0]  # who resolves it alone

    @property
    def raced(self) -> bool:
        return len(self.outcomes) > 1


async def resolve(kind: str, subject: str, status: str, operator: str) -> int:
    return await run_cli(
        f"{kind}s",
        "resolve",
        subject,
        "--status",
        status,
        "--note",
        f"{NOTE} ({operator}): {status}.",
        "--operator",
        operator,
    )


async def carry_out(step: Resolution, limit: asyncio.Semaphore) -> dict[str, int]:
    """The operators' exit codes, by the outcome each asked for."""
    async with limit:
        if not step.raced:
            return {
                step.outcomes[0]: await resolve(
                    step.kind, step.subject, step.outcomes[0], step.operator
                )
            }
        codes = await asyncio.gather(
            *(
                resolve(step.kind, step.subject, outcome, operator)
                for outcome, operator in zip(step.outcomes, ADMINS, strict=True)
            )
        )
        return dict(zip(step.outcomes, codes, strict=True))


def history(snapshot: GatewaySnapshot, kind: str, subject: str) -> tuple[Any, ...]:
    """Everything about one payment (refund) that anything could change: its status, its audit
    trail and its events."""
    if kind == "payment":
        status = next(p.status for p in snapshot.payments if p.id == subject)
        moves = [
            (t.id, t.from_status, t.to_status, t.actor)
            for t in snapshot.transitions
            if t.payment_id == subject
        ]
        events = sorted(
            e.id for e in snapshot.events if e.payment_id == subject and not e.refund_id
        )
    else:
        status = next(r.status for r in snapshot.refunds if r.id == subject)
        moves = [
            (t.id, t.from_status, t.to_status, t.actor)
            for t in snapshot.refund_transitions
            if t.refund_id == subject
        ]
        events = sorted(e.id for e in snapshot.events if e.refund_id == subject)
    return status, moves, events


async def test_operator_resolutions_mixed_in_keep_every_invariant(
    clean_pg, redis_url, tmp_path, monkeypatch
):
    started = time.monotonic()
    # MTN pays a refund only when the test says so.
    config = SimulatorConfig(approval_delay_seconds=0.05, refund_delay_seconds=3600)
    async with (
        storefront_receiver() as receiver,
        reliability_stack(clean_pg, redis_url, receiver, simulator=config) as stack,
        one_worker(stack.settings, tmp_path) as worker,
    ):
        engine = stack.runtime.engine
        # The CLI acts on this stack: its database, Redis and providers.
        for name, value in settings_env(stack.settings).items():
            monkeypatch.setenv(name, value)
        for email in ADMINS:
            assert await run_cli("operators", "create", "--email", email, "--role", "admin") == 0

        # --- payments and refunds, some of which a person must look at ---------------------
        to_refund = await successful_payments(
            stack, [Order(f"RES-RF-{i}", mtn_payer(500 + i)) for i in range(4)]
        )
        background = mixed_orders("RES-BG", 20)
        # MTN will report another amount (Airtel's enquiry reports none) for these ...
        mismatched = [Order(f"RES-AMT-{i}", mtn_scenario(499), "pending") for i in range(6)]
        # ... the provider will say FAILED after these succeeded ...
        paid = [
            Order(f"RES-PAID-{i}", mtn_payer(600 + i) if i % 2 == 0 else airtel_payer(600 + i))
            for i in range(6)
        ]
        # ... and SUCCESSFUL after the payer refused these.
        rejected = [
            Order(
                f"RES-REJ-{i}",
                mtn_scenario(451) if i % 2 == 0 else airtel_scenario(451),
                "failed",
            )
            for i in range(4)
        ]
        orders = background + mismatched + paid + rejected
        responses = await create_payments(stack, orders)
        assert statuses(responses) == [201] * len(orders)
        payment_of = {
            order.order_id: response.json()
            for order, response in zip(orders, responses, strict=True)
            if isinstance(response, httpx.Response)
        }
        answers = await create_refunds(stack, [[RefundAsk(p["id"], "4000")] for p in to_refund])
        assert unexpected_refund_answers(answers) == []
        refunds = created_refunds(answers)
        assert {r["status"] for r in refunds} == {"pending"}

        async def as_the_payers_said() -> bool:
            status = {p.order_id: p.status for p in (await read_gateway(engine)).payments}
            return all(status[o.order_id] == "successful" for o in paid) and all(
                status[o.order_id] == "failed" for o in rejected
            )

        await poll_until(as_the_payers_said, timeout=20, what="the payers' answers")

        # The provider's word changes: another amount, or the opposite of what it said.
        def reference(order: Order) -> str:
            return str(payment_of[order.order_id]["provider_reference"])

        await asyncio.gather(
            *(
                settle_at_provider(stack, reference(o), status="SUCCESSFUL", amount="900")
                for o in mismatched
            ),
            *(settle_at_provider(stack, reference(o), status="FAILED") for o in paid),
            *(settle_at_provider(stack, reference(o), status="SUCCESSFUL") for o in rejected),
            *(
                settle_refund_at_provider(
                    stack, r["provider_reference"], status="SUCCESSFUL", amount="3000"
                )
                for r in refunds[:3]
            ),
            # The last one MTN pays as asked: it succeeds without anyone.
            settle_refund_at_provider(stack, refunds[3]["provider_reference"], status="SUCCESSFUL"),
        )
        in_review = [payment_of[o.order_id]["id"] for o in mismatched + paid + rejected]
        refunds_in_review = [r["id"] for r in refunds[:3]]

        async def everything_in_review() -> bool:
            snapshot = await read_gateway(engine)
            payment_status = {p.id: p.status for p in snapshot.payments}
            refund_status = {r.id: r.status for r in snapshot.refunds}
            return (
                all(payment_status[pid] == "needs_review" for pid in in_review)
                and all(refund_status[rid] == "needs_review" for rid in refunds_in_review)
                and refund_status[refunds[3]["id"]] == "succeeded"
            )

        await poll_until(everything_in_review, timeout=20, what="needs_review everywhere")
        # A payment in review holds its order.
        blocked = await stack.gateway.post(
            "/v1/payments",
            json={
                "order_id": mismatched[1].order_id,
                "amount": "1000",
                "phone_number": mtn_payer(1),
            },
        )
        assert blocked.status_code == 409, blocked.text

        # --- two operators resolve, while payments keep arriving --------------------------
        def ids(group: list[Order]) -> list[str]:
            return [payment_of[o.order_id]["id"] for o in group]

        b = ADMINS[1]
        amount, contradicted, refused = ids(mismatched), ids(paid), ids(rejected)
        plan = [
            # MTN holds SUCCESSFUL for 900 of the 1000 asked.
            Resolution("payment", amount[0], ("successful",)),
            Resolution("payment", amount[1], ("failed",), b),
            Resolution("payment", amount[2], ("successful",), b),
            Resolution("payment", amount[3], ("failed",)),
            Resolution("payment", amount[4], ("successful", "failed")),
            Resolution("payment", amount[5], ("failed", "successful")),
            # Paid, then FAILED at the provider: a person may still say it was paid.
            Resolution("payment", contradicted[0], ("successful",)),
            Resolution("payment", contradicted[1], ("failed",), b),
            Resolution("payment", contradicted[2], ("successful",), b),
            Resolution("payment", contradicted[3], ("failed",)),
            Resolution("payment", contradicted[4], ("successful", "failed")),
            Resolution("payment", contradicted[5], ("failed",), b),
            # Refused by the payer, then SUCCESSFUL at the provider.
            Resolution("payment", refused[0], ("successful",)),
            Resolution("payment", refused[1], ("failed",), b),
            Resolution("payment", refused[2], ("failed", "successful")),
            Resolution("payment", refused[3], ("successful",), b),
            # MTN reports 3000 for refunds of 4000 (and paid them).
            Resolution("refund", refunds[0]["id"], ("succeeded",)),
            Resolution("refund", refunds[1]["id"], ("failed",), b),
            Resolution("refund", refunds[2]["id"], ("succeeded", "failed")),
        ]
        limit = asyncio.Semaphore(CLI_CONCURRENCY)
        live = mixed_orders("RES-LIVE", 12)
        codes, live_responses = await asyncio.gather(
            asyncio.gather(*(carry_out(step, limit) for step in plan)),
            create_payments(stack, live, concurrency=4),
        )
        assert statuses(live_responses) == [201] * len(live)

        # Alone, each resolution is made; at once, exactly one of the two is.
        outcome_of: dict[str, str] = {}
        for step, by_outcome in zip(plan, codes, strict=True):
            if step.raced:
                assert sorted(by_outcome.values()) == [0, REFUSED], (step, by_outcome)
            else:
                assert by_outcome == {step.outcomes[0]: 0}, (step, by_outcome)
            [won] = [outcome for outcome, code in by_outcome.items() if code == 0]
            outcome_of[step.subject] = won
        resolved_at = await read_gateway(engine)
        assert {p.id: p.status for p in resolved_at.payments if p.id in outcome_of} == {
            s.subject: outcome_of[s.subject] for s in plan if s.kind == "payment"
        }
        assert {r.id: r.status for r in resolved_at.refunds if r.id in outcome_of} == {
            s.subject: outcome_of[s.subject] for s in plan if s.kind == "refund"
        }

        # An order resolved failed is free again: pay it anew.
        freed = [
            order
            for order in mismatched + paid + rejected
            if outcome_of[payment_of[order.order_id]["id"]] == "failed"
        ]
        again = await create_payments(
            stack,
            [
                Order(
                    o.order_id,
                    mtn_payer(900 + i) if o.phone.startswith("0772") else airtel_payer(900 + i),
                )
                for i, o in enumerate(freed)
            ],
        )
        assert statuses(again) == [201] * len(freed)

        # The provider sends its callbacks again: repeats, which change nothing.
        for order in mismatched + paid + rejected:
            resent = await stack.simulator.post(f"/_simulator/payments/{reference(order)}/callback")
            assert resent.status_code == 200, resent.text

        evidence = await invariants_hold(
            collector(stack, receiver),
            [worker],
            timeout=40,
            refused_at_initiation=await refused_payment_ids(stack, background + live),
            require_delivered_status=True,
            require_refunds_final=True,
        )

        gateway = evidence.gateway
        # Each resolved once, by a person, with one audit entry.
        assert Counter(t.payment_id for t in gateway.transitions if t.actor == "operator") == {
            s.subject: 1 for s in plan if s.kind == "payment"
        }
        assert Counter(
            t.refund_id for t in gateway.refund_transitions if t.actor == "operator"
        ) == {s.subject: 1 for s in plan if s.kind == "refund"}
        assert Counter(
            (a.action, a.target_id)
            for a in gateway.operator_actions
            if a.action.endswith("resolve")
        ) == {(f"{s.kind}.resolve", s.subject): 1 for s in plan}
        # Each resolution's event, and only one, reached the storefront exactly once.
        resolution_events = [e for e in gateway.events if e.operator_action_id is not None]
        assert sorted(e.refund_id or e.payment_id for e in resolution_events) == sorted(
            s.subject for s in plan
        )
        received = Counter(d.webhook_id for d in evidence.deliveries)
        accepted = Counter(d.webhook_id for d in evidence.deliveries if d.accepted)
        assert {e.id: (received[e.id], accepted[e.id]) for e in resolution_events} == {
            e.id: (1, 1) for e in resolution_events
        }
        # Nothing changed a resolved payment or refund after its resolution.
        for step in plan:
            assert history(gateway, step.kind, step.subject) == history(
                resolved_at, step.kind, step.subject
            ), step
        # Some were resolved against the provider's word, which the checker let stand.
        held = {p.reference: p.status for p in evidence.simulator.payments}
        against = [
            pid
            for pid, order in zip(contradicted + refused, paid + rejected, strict=True)
            if (outcome_of[pid] == "successful") != (held[reference(order)] == "SUCCESSFUL")
        ]
        assert {contradicted[0], contradicted[2], refused[1]} <= set(against), against
        # The freed orders were paid anew.
        by_order = Counter(p.order_id for p in gateway.payments if p.status == "successful")
        assert all(by_order[o.order_id] == 1 for o in freed), by_order
        assert time.monotonic() - started < 60


async def test_a_resolved_payment_the_storefront_refreshes_stays_as_a_person_resolved_it(
    clean_pg, redis_url, tmp_path, monkeypatch
):
    """The storefront asks for a fresh status (``POST /v1/payments/{id}/refresh``) of payments a
    person resolved against what the provider holds: another amount, and a success the provider
    now calls failed. The person decided: the refresh answers the payment as resolved, and
    changes nothing."""
    config = SimulatorConfig(approval_delay_seconds=0.05)
    async with (
        storefront_receiver() as receiver,
        reliability_stack(clean_pg, redis_url, receiver, simulator=config) as stack,
        one_worker(stack.settings, tmp_path) as worker,
    ):
        for name, value in settings_env(stack.settings).items():
            monkeypatch.setenv(name, value)
        operator = ADMINS[0]
        assert await run_cli("operators", "create", "--email", operator, "--role", "admin") == 0
        other_amount = await stack.pay(mtn_scenario(499), "RES-REFRESH-1")
        contradicted = await stack.pay(mtn_payer(31), "RES-REFRESH-2")
        await stack.settles(contradicted["id"], "successful")
        await settle_at_provider(
            stack, other_amount["provider_reference"], status="SUCCESSFUL", amount="900"
        )
        await settle_at_provider(stack, contradicted["provider_reference"], status="FAILED")
        resolved = [other_amount["id"], contradicted["id"]]
        for payment_id in resolved:
            await stack.settles(payment_id, "needs_review")
            assert await resolve("payment", payment_id, "successful", operator) == 0
        resolved_at = await read_gateway(stack.runtime.engine)

        answers = [await stack.gateway.post(f"/v1/payments/{pid}/refresh") for pid in resolved]

        assert [(a.status_code, a.json().get("status")) for a in answers] == [
            (200, "successful"),
            (200, "successful"),
        ], [a.text for a in answers]
        evidence = await invariants_hold(
            collector(stack, receiver), [worker], timeout=30, require_delivered_status=True
        )
        for payment_id in resolved:
            assert history(evidence.gateway, "payment", payment_id) == history(
                resolved_at, "payment", payment_id
            )
