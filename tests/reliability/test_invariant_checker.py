"""The invariant checker itself: silent on consistent evidence, loud on each kind of damage.

If these pass, a green reliability run means the invariants held, not that nobody looked.
"""

from __future__ import annotations

from dataclasses import replace

from tests.reliability.invariants import (
    Delivery,
    GatewayEvent,
    GatewayPayment,
    GatewaySnapshot,
    ProviderPayment,
    SimulatorSnapshot,
    Transition,
    check_invariants,
    format_violations,
    simulator_snapshot_from,
)


def consistent_world() -> tuple[GatewaySnapshot, SimulatorSnapshot, list[Delivery]]:
    """Three payments that ended well: paid, refused by the payer, never accepted; and one
    still pending at both ends."""
    gateway = GatewaySnapshot(
        payments=[
            GatewayPayment("pay_ok", "mtn_momo", "successful", "ref-ok", None, "ORD-1"),
            GatewayPayment("pay_no", "airtel_money", "failed", "ref-no", "rejected_by_payer"),
            GatewayPayment("pay_lost", "mtn_momo", "failed", "ref-lost", "not_found_at_provider"),
            GatewayPayment("pay_wait", "mtn_momo", "pending", "ref-wait"),
        ],
        events=[
            GatewayEvent("evt_ok", "pay_ok", "payment.succeeded", "delivered"),
            GatewayEvent("evt_no", "pay_no", "payment.failed", "delivered"),
            GatewayEvent("evt_lost", "pay_lost", "payment.failed", "delivered"),
        ],
        transitions=[
            Transition(1, "pay_ok", None, "pending"),
            Transition(2, "pay_no", None, "pending"),
            Transition(3, "pay_lost", None, "pending"),
            Transition(4, "pay_wait", None, "pending"),
            Transition(5, "pay_ok", "pending", "successful"),
            Transition(6, "pay_no", "pending", "failed"),
            Transition(7, "pay_lost", "pending", "failed"),
        ],
    )
    simulator = SimulatorSnapshot(
        payments=[
            ProviderPayment("mtn_momo", "ref-ok", "SUCCESSFUL"),
            ProviderPayment("airtel_money", "ref-no", "FAILED"),
            ProviderPayment("mtn_momo", "ref-wait", "PENDING"),
        ],
        unaccepted={("mtn_momo", "ref-lost")},
    )
    deliveries = [
        Delivery("evt_ok", "pay_ok", "payment.succeeded", accepted=False),  # a 503, then ...
        Delivery("evt_ok", "pay_ok", "payment.succeeded"),  # ... the retry
        Delivery("evt_ok", "pay_ok", "payment.succeeded"),  # at-least-once: same id again
        Delivery("evt_no", "pay_no", "payment.failed"),
        Delivery("evt_lost", "pay_lost", "payment.failed"),
    ]
    return gateway, simulator, deliveries


def violations_of(gateway, simulator, deliveries, **options) -> list[str]:
    return [str(v) for v in check_invariants(gateway, simulator, deliveries, **options)]


def test_consistent_evidence_has_no_violations():
    assert violations_of(*consistent_world()) == []


def test_a_duplicate_charge_is_reported():
    gateway, simulator, deliveries = consistent_world()
    simulator.payments[0] = replace(simulator.payments[0], charges=2)

    found = violations_of(gateway, simulator, deliveries)

    assert found == ["[charges] ref-ok: charged 2 times at mtn_momo"]


def test_a_charge_under_a_reference_no_payment_has_is_reported():
    gateway, simulator, deliveries = consistent_world()
    simulator.payments.append(ProviderPayment("mtn_momo", "ref-second-try", "SUCCESSFUL"))

    found = violations_of(gateway, simulator, deliveries)

    assert len(found) == 1
    assert found[0].startswith("[charges] ref-second-try: mtn_momo charged a reference no")


def test_successful_at_the_gateway_but_failed_at_the_provider_is_reported():
    gateway, simulator, deliveries = consistent_world()
    simulator.payments[0] = replace(simulator.payments[0], status="FAILED")

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[state] pay_ok: gateway says successful, the provider holds FAILED "
        "(expected one of ['failed'])"
    ]


def test_two_webhook_ids_for_one_payment_are_reported():
    gateway, simulator, deliveries = consistent_world()
    gateway.events.append(GatewayEvent("evt_ok_again", "pay_ok", "payment.succeeded"))
    deliveries.append(Delivery("evt_ok_again", "pay_ok", "payment.succeeded"))

    found = violations_of(gateway, simulator, deliveries)

    assert (
        "[events] pay_ok: successful payment has events {'payment.succeeded': 2}, "
        "expected {'payment.succeeded': 1}"
    ) in found
    assert (
        "[events] pay_ok: payment.succeeded delivered under 2 different webhook-ids "
        "['evt_ok', 'evt_ok_again']"
    ) in found


def test_every_violation_is_reported_not_just_the_first():
    gateway, simulator, deliveries = consistent_world()
    simulator.payments[0] = replace(simulator.payments[0], charges=2)  # duplicate charge
    simulator.payments[1] = replace(simulator.payments[1], status="SUCCESSFUL")  # contradiction
    deliveries.append(Delivery("evt_forged", "pay_ok", "payment.succeeded"))  # a second id

    found = violations_of(gateway, simulator, deliveries)

    assert "[charges] ref-ok: charged 2 times at mtn_momo" in found
    assert any(v.startswith("[state] pay_no: gateway says failed") for v in found)
    assert any("2 different webhook-ids" in v for v in found)
    assert any("'evt_forged', which no event has" in v for v in found)
    report = format_violations(check_invariants(gateway, simulator, deliveries))
    assert report.startswith(f"{len(found)} invariant violations")


def test_a_settled_payment_left_pending_is_reported():
    gateway, simulator, deliveries = consistent_world()
    gateway.payments[0] = replace(gateway.payments[0], status="pending")
    gateway.events.pop(0)
    gateway.transitions = [t for t in gateway.transitions if t.id != 5]
    deliveries = [d for d in deliveries if d.payment_id != "pay_ok"]

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[state] pay_ok: gateway says pending, the provider holds SUCCESSFUL "
        "(expected one of ['successful'])"
    ]


def test_a_never_accepted_reference_must_fail_as_not_found():
    gateway, simulator, deliveries = consistent_world()
    gateway.payments[2] = replace(gateway.payments[2], failure_code="provider_error")
    assert violations_of(gateway, simulator, deliveries) == [
        "[state] pay_lost: failed with provider_error; a reference the provider never "
        "accepted should fail with not_found_at_provider"
    ]
    # ... unless the provider refused it at request time, with a reason of its own.
    assert violations_of(gateway, simulator, deliveries, refused_at_initiation={"pay_lost"}) == []

    gateway.payments[2] = replace(gateway.payments[2], status="pending")
    gateway.events.pop(2)
    gateway.transitions = [t for t in gateway.transitions if t.id != 7]
    deliveries = [d for d in deliveries if d.payment_id != "pay_lost"]
    assert len(violations_of(gateway, simulator, deliveries)) == 1
    assert violations_of(gateway, simulator, deliveries, allow_pending_unaccepted=True) == []


def test_a_lost_event_and_a_missing_audit_row_are_reported():
    gateway, simulator, deliveries = consistent_world()
    deliveries = [d for d in deliveries if d.payment_id != "pay_no"]  # never delivered
    gateway.transitions = [t for t in gateway.transitions if t.id != 7]  # no audit row

    found = violations_of(gateway, simulator, deliveries)

    assert "[events] pay_no: payment.failed evt_no never delivered (2xx)" in found
    assert "[audit] pay_lost: failed payment has 0 rows leaving pending (none); expected 1" in found
    assert "[audit] pay_lost: audit trail ends in pending, the payment is failed" in found


def test_a_payment_that_left_pending_twice_is_reported():
    gateway, simulator, deliveries = consistent_world()
    gateway.transitions.append(Transition(8, "pay_ok", "pending", "successful"))

    found = violations_of(gateway, simulator, deliveries)

    assert (
        "[audit] pay_ok: successful payment has 2 rows leaving pending "
        "(pending→successful, pending→successful); expected 1"
    ) in found
    assert "[audit] pay_ok: transition pending→successful does not follow successful" in found


def test_two_events_for_one_outcome_are_reported_even_with_a_matching_audit_trail():
    gateway, simulator, deliveries = consistent_world()
    gateway.transitions.append(Transition(8, "pay_ok", "pending", "successful"))
    gateway.events.append(GatewayEvent("evt_ok_2", "pay_ok", "payment.succeeded", "delivered"))

    found = violations_of(gateway, simulator, deliveries)

    assert (
        "[events] pay_ok: successful payment has events {'payment.succeeded': 2}, "
        "expected {'payment.succeeded': 1}"
    ) in found
    assert "[events] pay_ok: payment.succeeded evt_ok_2 never delivered (2xx)" in found


def test_a_later_contradiction_expects_one_event_per_status():
    gateway, simulator, deliveries = consistent_world()
    simulator.payments[0] = replace(simulator.payments[0], status="FAILED")
    gateway.payments[0] = replace(gateway.payments[0], status="needs_review")
    gateway.transitions.append(Transition(8, "pay_ok", "successful", "needs_review"))
    gateway.events.append(GatewayEvent("evt_review", "pay_ok", "payment.needs_review"))
    deliveries.append(Delivery("evt_review", "pay_ok", "payment.needs_review"))

    found = violations_of(gateway, simulator, deliveries)

    # The events and the audit trail are right; the state is not what the provider says, and
    # needs_review is never a state the checker accepts silently.
    assert found == [
        "[state] pay_ok: gateway says needs_review, the provider holds FAILED "
        "(expected one of ['failed'])"
    ]


def test_the_simulator_ledger_is_read_as_served():
    ledger = {
        "payments": [
            {
                "provider": "mtn_momo",
                "reference": "r1",
                "status": "SUCCESSFUL",
                "charges": 1,
                "create_requests": 3,
                "amount": "1000",
            },
        ],
        "unaccepted": [
            {
                "provider": "airtel_money",
                "reference": "r2",
                "create_requests": 3,
                "last_http_status": 503,
            }
        ],
    }
    snapshot = simulator_snapshot_from(ledger)
    assert snapshot.payments == [ProviderPayment("mtn_momo", "r1", "SUCCESSFUL", 1, 3)]
    assert snapshot.unaccepted == {("airtel_money", "r2")}
