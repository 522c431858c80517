"""The invariant checker itself: silent on consistent evidence, loud on each kind of damage.

If these pass, a green reliability run means the invariants held, not that nobody looked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from tests.reliability.invariants import (
    Delivery,
    GatewayEvent,
    GatewayPayment,
    GatewayRefund,
    GatewaySnapshot,
    OperatorAction,
    ProviderPayment,
    ProviderRefund,
    RefundTransition,
    SimulatorSnapshot,
    Transition,
    check_invariants,
    deliveries_from,
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


# --- refunds -------------------------------------------------------------------------------------


def refund_world() -> tuple[GatewaySnapshot, SimulatorSnapshot, list[Delivery]]:
    """The consistent world, plus refunds that ended well: of pay_ok (UGX 50000, MTN) one
    succeeded, one failed at the provider, one still pending at both ends and one whose call
    never reached the provider (a person looks); of an Airtel payment, one full refund."""
    gateway, simulator, deliveries = consistent_world()
    gateway.payments[0] = replace(
        gateway.payments[0], amount_minor=50000, amount_refunded_minor=20000
    )
    gateway.payments.append(
        GatewayPayment(
            "pay_air",
            "airtel_money",
            "successful",
            "ref-air",
            None,
            "ORD-AIR",
            amount_minor=1000,
            amount_refunded_minor=1000,
            provider_transaction_id="MP1",
        )
    )
    gateway.events.append(GatewayEvent("evt_air", "pay_air", "payment.succeeded", "delivered"))
    gateway.transitions += [
        Transition(8, "pay_air", None, "pending"),
        Transition(9, "pay_air", "pending", "successful"),
    ]
    simulator.payments.append(ProviderPayment("airtel_money", "ref-air", "SUCCESSFUL"))
    deliveries.append(Delivery("evt_air", "pay_air", "payment.succeeded"))

    gateway.refunds = [
        GatewayRefund("re_ok", "pay_ok", "mtn_momo", "succeeded", 20000, "rf-ok"),
        GatewayRefund("re_no", "pay_ok", "mtn_momo", "failed", 10000, "rf-no", "UGX", "refused"),
        GatewayRefund("re_wait", "pay_ok", "mtn_momo", "pending", 5000, "rf-wait"),
        GatewayRefund("re_lost", "pay_ok", "mtn_momo", "needs_review", 5000, "rf-lost"),
        GatewayRefund("re_air", "pay_air", "airtel_money", "succeeded", 1000, "rf-air"),
    ]
    gateway.refund_transitions = [
        RefundTransition(1, "re_ok", None, "pending"),
        RefundTransition(2, "re_no", None, "pending"),
        RefundTransition(3, "re_wait", None, "pending"),
        RefundTransition(4, "re_lost", None, "pending"),
        RefundTransition(5, "re_air", None, "pending"),
        RefundTransition(6, "re_ok", "pending", "succeeded"),
        RefundTransition(7, "re_no", "pending", "failed"),
        RefundTransition(8, "re_lost", "pending", "needs_review"),
        RefundTransition(9, "re_air", "pending", "succeeded"),
    ]
    refund_events = [
        GatewayEvent("evt_re_ok", "pay_ok", "refund.succeeded", "delivered", "re_ok"),
        GatewayEvent("evt_re_no", "pay_ok", "refund.failed", "delivered", "re_no"),
        GatewayEvent("evt_re_lost", "pay_ok", "refund.needs_review", "delivered", "re_lost"),
        GatewayEvent("evt_re_air", "pay_air", "refund.succeeded", "delivered", "re_air"),
    ]
    gateway.events += refund_events
    deliveries += [
        Delivery(e.id, e.payment_id, e.type, refund_id=e.refund_id) for e in refund_events
    ]
    simulator.refunds = [
        # Retried after a lost answer: asked three times, paid once.
        ProviderRefund("mtn_momo", "rf-ok", "ref-ok", "SUCCESSFUL", "20000", 1, 3),
        ProviderRefund("mtn_momo", "rf-no", "ref-ok", "FAILED", "10000", 0, 1, "NOT_ALLOWED"),
        ProviderRefund("mtn_momo", "rf-wait", "ref-ok", "PENDING", "5000", 0, 1),
        # Airtel names the refund by the collection's airtel_money_id.
        ProviderRefund("airtel_money", "MP1", "ref-air", "SUCCESSFUL", "1000", 1, 2),
    ]
    # Every attempt of re_lost was lost on the way: the provider never took it.
    simulator.unaccepted_refunds = {("mtn_momo", "rf-lost")}
    return gateway, simulator, deliveries


def test_consistent_refunds_have_no_violations():
    gateway, simulator, deliveries = refund_world()
    assert violations_of(gateway, simulator, deliveries) == []
    assert violations_of(gateway, simulator, deliveries, require_delivered_status=True) == []


def test_a_double_payout_is_reported():
    gateway, simulator, deliveries = refund_world()
    simulator.refunds[0] = replace(simulator.refunds[0], payouts=2)

    assert violations_of(gateway, simulator, deliveries) == [
        "[refunds] rf-ok: paid out 2 times at mtn_momo"
    ]


def test_a_refund_sent_again_under_a_new_reference_is_reported():
    gateway, simulator, deliveries = refund_world()
    # re_lost's call got no answer, and someone sent it again under a reference of its own.
    simulator.refunds.append(
        ProviderRefund("mtn_momo", "rf-lost-again", "ref-ok", "SUCCESSFUL", "5000", 1, 1)
    )
    simulator.unaccepted_refunds.add(("mtn_momo", "rf-lost-twice"))

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[refunds] rf-lost-again: mtn_momo took a refund under a reference no gateway refund has "
        "(a second reference for some refund, or one never written ahead)",
        "[refunds] rf-lost-twice: mtn_momo was asked for a refund under a reference no gateway "
        "refund has",
    ]


def test_an_over_refund_is_reported():
    gateway, simulator, deliveries = refund_world()
    # A second succeeded refund, consistent everywhere else, takes more than the payment.
    gateway.refunds.append(
        GatewayRefund("re_more", "pay_ok", "mtn_momo", "succeeded", 40000, "rf-more")
    )
    gateway.payments[0] = replace(gateway.payments[0], amount_refunded_minor=60000)
    gateway.refund_transitions += [
        RefundTransition(10, "re_more", None, "pending"),
        RefundTransition(11, "re_more", "pending", "succeeded"),
    ]
    gateway.events.append(
        GatewayEvent("evt_re_more", "pay_ok", "refund.succeeded", "delivered", "re_more")
    )
    deliveries.append(Delivery("evt_re_more", "pay_ok", "refund.succeeded", refund_id="re_more"))
    simulator.refunds.append(
        ProviderRefund("mtn_momo", "rf-more", "ref-ok", "SUCCESSFUL", "40000", 1, 1)
    )

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[refunds] pay_ok: succeeded refunds add up to 60000, more than the payment's 50000 "
        "(minor units)",
        "[refunds] pay_ok: pending, succeeded and needs_review refunds hold 70000, more than "
        "the payment's 50000 (minor units)",
        "[refunds] pay_ok: mtn_momo paid back 60000, more than the payment's 50000",
    ]


def test_a_refunded_total_that_is_not_the_sum_of_succeeded_refunds_is_reported():
    gateway, simulator, deliveries = refund_world()
    gateway.payments[0] = replace(gateway.payments[0], amount_refunded_minor=30000)

    assert violations_of(gateway, simulator, deliveries) == [
        "[refunds] pay_ok: amount_refunded_minor is 30000, its succeeded refunds add up to 20000"
    ]


def test_a_payout_for_another_amount_or_payment_is_reported():
    gateway, simulator, deliveries = refund_world()
    simulator.refunds[0] = replace(simulator.refunds[0], amount="25000", payment_reference="x")

    found = violations_of(gateway, simulator, deliveries)

    assert "[refunds] re_ok: mtn_momo refunds 'x', not the reference of pay_ok" in found
    assert "[refunds] re_ok: mtn_momo took 25000, the gateway refund is 20000" in found


def test_a_missing_refund_event_is_reported():
    gateway, simulator, deliveries = refund_world()
    gateway.events = [e for e in gateway.events if e.id != "evt_re_ok"]
    deliveries = [d for d in deliveries if d.webhook_id != "evt_re_ok"]

    assert violations_of(gateway, simulator, deliveries) == [
        "[events] re_ok: succeeded refund has events none, expected {'refund.succeeded': 1}"
    ]


def test_an_undelivered_refund_event_is_reported():
    gateway, simulator, deliveries = refund_world()
    deliveries = [d for d in deliveries if d.webhook_id != "evt_re_no"]
    gateway.events = [
        replace(e, delivery_status="pending") if e.id == "evt_re_no" else e for e in gateway.events
    ]

    assert violations_of(gateway, simulator, deliveries, require_delivered_status=True) == [
        "[events] re_no: refund.failed evt_re_no never delivered (2xx)",
        "[events] re_no: refund.failed evt_re_no is pending in the outbox",
    ]


def test_two_events_for_one_refund_status_are_reported():
    gateway, simulator, deliveries = refund_world()
    gateway.events.append(
        GatewayEvent("evt_re_ok_2", "pay_ok", "refund.succeeded", "delivered", "re_ok")
    )
    deliveries.append(Delivery("evt_re_ok_2", "pay_ok", "refund.succeeded", refund_id="re_ok"))

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[events] re_ok: succeeded refund has events {'refund.succeeded': 2}, "
        "expected {'refund.succeeded': 1}",
        "[events] re_ok: refund.succeeded delivered under 2 different webhook-ids "
        "['evt_re_ok', 'evt_re_ok_2']",
    ]


def test_an_event_for_a_pending_refund_is_reported():
    gateway, simulator, deliveries = refund_world()
    gateway.events.append(
        GatewayEvent("evt_re_wait", "pay_ok", "refund.succeeded", "delivered", "re_wait")
    )
    deliveries.append(Delivery("evt_re_wait", "pay_ok", "refund.succeeded", refund_id="re_wait"))

    assert violations_of(gateway, simulator, deliveries) == [
        "[events] re_wait: pending refund has events {'refund.succeeded': 1}, expected none"
    ]


def test_a_refund_delivery_under_an_unknown_or_wrong_webhook_id_is_reported():
    gateway, simulator, deliveries = refund_world()
    deliveries.append(Delivery("evt_forged", "pay_ok", "refund.succeeded", refund_id="re_ok"))
    deliveries.append(Delivery("evt_re_no", "pay_ok", "refund.succeeded", refund_id="re_ok"))

    found = violations_of(gateway, simulator, deliveries)

    assert "[events] re_ok: storefront got webhook-id 'evt_forged', which no event has" in found
    assert (
        "[events] re_ok: webhook-id evt_re_no carried refund.succeeded for re_ok, but that "
        "event is refund.failed for re_no"
    ) in found


def test_a_refund_audit_chain_that_does_not_end_in_its_status_is_reported():
    gateway, simulator, deliveries = refund_world()
    gateway.refund_transitions = [t for t in gateway.refund_transitions if t.id != 6]

    assert violations_of(gateway, simulator, deliveries) == [
        "[audit] re_ok: succeeded refund has 0 rows leaving pending (none); expected 1",
        "[audit] re_ok: audit trail ends in pending, the refund is succeeded",
    ]


def test_a_refund_without_its_creation_row_or_leaving_pending_twice_is_reported():
    gateway, simulator, deliveries = refund_world()
    gateway.refund_transitions = [t for t in gateway.refund_transitions if t.id != 1]
    gateway.refund_transitions.append(RefundTransition(10, "re_no", "pending", "failed"))

    found = violations_of(gateway, simulator, deliveries)

    assert "[audit] re_ok: 0 creation rows (expected 1)" in found
    assert "[audit] re_ok: transition pending→succeeded does not follow None" in found
    assert (
        "[audit] re_no: failed refund has 2 rows leaving pending (pending→failed, "
        "pending→failed); expected 1"
    ) in found


def test_a_refund_the_provider_settled_but_the_gateway_did_not_is_reported():
    gateway, simulator, deliveries = refund_world()
    simulator.refunds[2] = replace(simulator.refunds[2], status="SUCCESSFUL", payouts=1)

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[state] re_wait: gateway says pending, the provider holds SUCCESSFUL "
        "(expected one of ['succeeded'])"
    ]


def test_a_succeeded_refund_the_provider_never_took_is_reported():
    gateway, simulator, deliveries = refund_world()
    simulator.refunds.pop(0)

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[state] re_ok: gateway says succeeded, but the provider never received its reference"
    ]


def test_pending_refunds_are_reported_once_every_refund_should_be_final():
    gateway, simulator, deliveries = refund_world()
    assert violations_of(gateway, simulator, deliveries, require_refunds_final=True) == [
        "[state] re_wait: refund still pending (by now the provider has answered, or the "
        "timeout has passed)"
    ]


def test_an_airtel_refund_whose_answer_was_lost_may_wait_for_a_person():
    gateway, simulator, deliveries = refund_world()
    # Airtel refunded, its answer was lost, the retry was refused as a repeat: needs_review.
    gateway.refunds[4] = replace(gateway.refunds[4], status="needs_review")
    gateway.payments[4] = replace(gateway.payments[4], amount_refunded_minor=0)
    gateway.refund_transitions[-1] = RefundTransition(9, "re_air", "pending", "needs_review")
    gateway.events[-1] = replace(gateway.events[-1], type="refund.needs_review")
    deliveries[-1] = replace(deliveries[-1], event_type="refund.needs_review")

    assert violations_of(gateway, simulator, deliveries, require_refunds_final=True) == [
        "[state] re_wait: refund still pending (by now the provider has answered, or the "
        "timeout has passed)"
    ]


def test_an_airtel_refund_failed_at_the_gateway_but_made_at_airtel_is_reported():
    gateway, simulator, deliveries = refund_world()
    gateway.refunds[4] = replace(gateway.refunds[4], status="failed")
    gateway.payments[4] = replace(gateway.payments[4], amount_refunded_minor=0)
    gateway.refund_transitions[-1] = RefundTransition(9, "re_air", "pending", "failed")
    gateway.events[-1] = replace(gateway.events[-1], type="refund.failed")
    deliveries[-1] = replace(deliveries[-1], event_type="refund.failed")

    assert violations_of(gateway, simulator, deliveries) == [
        "[state] pay_air: airtel_money refunded it once; 0 of its refunds are not failed "
        "(re_air failed), expected exactly 1"
    ]


def test_an_airtel_refund_of_an_unknown_collection_or_twice_is_reported():
    gateway, simulator, deliveries = refund_world()
    simulator.refunds[3] = replace(simulator.refunds[3], payouts=2)
    simulator.refunds.append(
        ProviderRefund("airtel_money", "MP9", "ref-unknown", "SUCCESSFUL", "1000", 1, 1)
    )

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[refunds] MP1: paid out 2 times at airtel_money",
        "[refunds] MP9: airtel_money refunded 'ref-unknown', which no gateway payment has",
    ]


def test_the_refund_ledger_and_refund_deliveries_are_read_as_served():
    payments = {"payments": [], "unaccepted": []}
    refunds = {
        "refunds": [
            {
                "provider": "mtn_momo",
                "reference": "rf-1",
                "payment_reference": "r1",
                "amount": "2000",
                "currency": "UGX",
                "status": "SUCCESSFUL",
                "reason": None,
                "create_requests": 2,
                "payouts": 1,
            }
        ],
        "unaccepted": [
            {"provider": "mtn_momo", "reference": "rf-2", "create_requests": 3},
        ],
    }
    snapshot = simulator_snapshot_from(payments, refunds)
    assert snapshot.refunds == [
        ProviderRefund("mtn_momo", "rf-1", "r1", "SUCCESSFUL", "2000", 1, 2, None)
    ]
    assert snapshot.unaccepted_refunds == {("mtn_momo", "rf-2")}
    assert simulator_snapshot_from(payments).refunds == []

    @dataclass
    class Sent:
        headers: dict[str, str]
        body: bytes

    refund_event = Sent(
        {"Webhook-Id": "evt_1"},
        json.dumps(
            {"type": "refund.succeeded", "data": {"id": "re_1", "payment_id": "pay_1"}}
        ).encode(),
    )
    payment_event = Sent(
        {"webhook-id": "evt_2"},
        json.dumps({"type": "payment.succeeded", "data": {"id": "pay_1"}}).encode(),
    )
    assert deliveries_from([refund_event, payment_event], [refund_event]) == [
        Delivery("evt_1", "pay_1", "refund.succeeded", accepted=True, refund_id="re_1"),
        Delivery("evt_2", "pay_1", "payment.succeeded", accepted=False),
    ]


# --- operator resolutions ------------------------------------------------------------------------

NOTE = "Checked with MTN support: the payer was charged 1,000 once."


def resolution_world() -> tuple[GatewaySnapshot, SimulatorSnapshot, list[Delivery]]:
    """The refund world, plus what operators resolved, each with its audit row and event:

    * pay_rev: MTN reported another amount (pending → needs_review); ops@ resolved it
      successful (audit row 1);
    * pay_twice: successful, then MTN said FAILED (→ needs_review); ops@ resolved it successful
      again (audit row 2): two payment.succeeded, one of them the resolution's;
    * re_lost: the refund call never got an answer (needs_review); resolved failed (row 3).
    """
    gateway, simulator, deliveries = refund_world()
    gateway.payments += [
        GatewayPayment("pay_rev", "mtn_momo", "successful", "ref-rev", None, "ORD-REV", 1000),
        GatewayPayment("pay_twice", "mtn_momo", "successful", "ref-twice", None, "ORD-2", 1000),
    ]
    gateway.transitions += [
        Transition(20, "pay_rev", None, "pending", "api"),
        Transition(21, "pay_twice", None, "pending", "api"),
        Transition(22, "pay_rev", "pending", "needs_review", "callback"),
        Transition(23, "pay_twice", "pending", "successful", "callback"),
        Transition(24, "pay_twice", "successful", "needs_review", "reconciler"),
        Transition(25, "pay_rev", "needs_review", "successful", "operator", "op_1"),
        Transition(26, "pay_twice", "needs_review", "successful", "operator", "op_1"),
    ]
    gateway.refunds[3] = replace(gateway.refunds[3], status="failed")
    gateway.refund_transitions.append(
        RefundTransition(10, "re_lost", "needs_review", "failed", "operator", "op_2")
    )
    gateway.operator_actions = [
        OperatorAction(1, "op_1", "payment.resolve", "payment", "pay_rev", "successful", NOTE),
        OperatorAction(2, "op_1", "payment.resolve", "payment", "pay_twice", "successful", NOTE),
        OperatorAction(3, "op_2", "refund.resolve", "refund", "re_lost", "failed", NOTE),
        # Not a resolution: the checker has nothing to say about it.
        OperatorAction(4, "op_2", "merchant.rotate_key", "merchant", "mer_1"),
    ]
    new_events = [
        GatewayEvent("evt_rev_review", "pay_rev", "payment.needs_review", "delivered"),
        GatewayEvent("evt_rev_ok", "pay_rev", "payment.succeeded", "delivered", None, 1),
        GatewayEvent("evt_twice_ok", "pay_twice", "payment.succeeded", "delivered"),
        GatewayEvent("evt_twice_review", "pay_twice", "payment.needs_review", "delivered"),
        GatewayEvent("evt_twice_ok_2", "pay_twice", "payment.succeeded", "delivered", None, 2),
        GatewayEvent("evt_re_lost_no", "pay_ok", "refund.failed", "delivered", "re_lost", 3),
    ]
    gateway.events += new_events
    deliveries += [Delivery(e.id, e.payment_id, e.type, refund_id=e.refund_id) for e in new_events]
    simulator.payments += [
        ProviderPayment("mtn_momo", "ref-rev", "SUCCESSFUL"),  # for another amount
        ProviderPayment("mtn_momo", "ref-twice", "FAILED"),  # a person decided otherwise
    ]
    return gateway, simulator, deliveries


def test_resolutions_with_their_events_and_audit_rows_have_no_violations():
    gateway, simulator, deliveries = resolution_world()
    assert violations_of(gateway, simulator, deliveries) == []
    assert violations_of(gateway, simulator, deliveries, require_delivered_status=True) == []


def test_a_resolution_without_an_audit_row_is_reported():
    gateway, simulator, deliveries = resolution_world()
    gateway.operator_actions = [a for a in gateway.operator_actions if a.id != 2]

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        # Not exempt any more: MTN holds FAILED.
        "[state] pay_twice: gateway says successful, the provider holds FAILED "
        "(expected one of ['failed'])",
        "[events] pay_twice: payment.succeeded evt_twice_ok_2 is tied to audit row 2, which "
        "records no resolution of this payment",
        "[audit] pay_twice: resolution needs_review→successful (transition 26) has no "
        "payment.resolve audit row (by op_1, to successful)",
    ]


def test_an_audit_row_without_a_note_or_without_a_resolution_is_reported():
    gateway, simulator, deliveries = resolution_world()
    gateway.operator_actions[0] = replace(gateway.operator_actions[0], note="  ")
    gateway.operator_actions.append(
        OperatorAction(5, "op_1", "payment.resolve", "payment", "pay_ok", "failed", NOTE)
    )
    gateway.operator_actions.append(
        OperatorAction(6, "op_1", "refund.resolve", "refund", "re_gone", "failed", NOTE)
    )

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[audit] pay_ok: payment.resolve audit row 5 (by op_1, to failed) records no "
        "resolution of the payment",
        "[audit] pay_rev: resolution needs_review→successful (transition 25): its audit row 1 "
        "has no note",
        "[audit] re_gone: refund.resolve audit row 6 names refund re_gone, which is no refund "
        "of the gateway",
    ]


def test_an_event_of_a_resolution_not_tied_to_its_audit_row_is_reported():
    gateway, simulator, deliveries = resolution_world()
    # The resolution's event written as if a machine had made the move.
    gateway.events = [
        replace(e, operator_action_id=None) if e.id == "evt_rev_ok" else e for e in gateway.events
    ]

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[events] pay_rev: successful payment has events {'payment.needs_review': 1, "
        "'payment.succeeded': 1} besides its resolutions', expected {'payment.needs_review': 1}",
        "[events] pay_rev: resolution needs_review→successful (audit row 1) has events none, "
        "expected {'payment.succeeded': 1}",
    ]

    # ... or tied to the audit row of another payment's resolution.
    gateway, simulator, deliveries = resolution_world()
    gateway.events = [
        replace(e, operator_action_id=2) if e.id == "evt_rev_ok" else e for e in gateway.events
    ]

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[events] pay_rev: resolution needs_review→successful (audit row 1) has events none, "
        "expected {'payment.succeeded': 1}",
        "[events] pay_rev: payment.succeeded evt_rev_ok is tied to audit row 2, which records "
        "no resolution of this payment",
    ]


def test_two_events_for_one_resolution_are_reported():
    gateway, simulator, deliveries = resolution_world()
    gateway.events.append(
        GatewayEvent("evt_rev_ok_2", "pay_rev", "payment.succeeded", "delivered", None, 1)
    )
    deliveries.append(Delivery("evt_rev_ok_2", "pay_rev", "payment.succeeded"))

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[events] pay_rev: resolution needs_review→successful (audit row 1) has events "
        "{'payment.succeeded': 2}, expected {'payment.succeeded': 1}"
    ]


def test_a_refund_resolution_must_have_exactly_its_one_event():
    gateway, simulator, deliveries = resolution_world()
    gateway.events = [e for e in gateway.events if e.id != "evt_re_lost_no"]
    deliveries = [d for d in deliveries if d.webhook_id != "evt_re_lost_no"]

    assert violations_of(gateway, simulator, deliveries) == [
        "[events] re_lost: resolution needs_review→failed (audit row 3) has events none, "
        "expected {'refund.failed': 1}"
    ]


def test_an_undelivered_resolution_event_is_reported():
    gateway, simulator, deliveries = resolution_world()
    deliveries = [d for d in deliveries if d.webhook_id != "evt_twice_ok_2"]

    assert violations_of(gateway, simulator, deliveries) == [
        "[events] pay_twice: payment.succeeded evt_twice_ok_2 never delivered (2xx)"
    ]


def test_a_resolution_from_a_status_other_than_needs_review_is_reported():
    gateway, simulator, deliveries = resolution_world()
    # pay_rev failed at the payer's refusal, and an operator turned it successful directly.
    gateway.transitions = [
        replace(t, to_status="failed")
        if t.id == 22
        else replace(t, from_status="failed")
        if t.id == 25
        else t
        for t in gateway.transitions
    ]
    gateway.events = [
        replace(e, type="payment.failed") if e.id == "evt_rev_review" else e for e in gateway.events
    ]
    deliveries = [
        replace(d, event_type="payment.failed") if d.webhook_id == "evt_rev_review" else d
        for d in deliveries
    ]

    assert violations_of(gateway, simulator, deliveries) == [
        "[audit] pay_rev: resolution failed→successful (transition 25) does not come from "
        "needs_review"
    ]


def test_a_resolution_row_must_follow_a_needs_review_row():
    gateway, simulator, deliveries = resolution_world()
    # The row into needs_review is missing: the resolution follows a successful row.
    gateway.transitions = [t for t in gateway.transitions if t.id != 24]

    found = violations_of(gateway, simulator, deliveries)

    assert (
        "[audit] pay_twice: transition needs_review→successful does not follow successful"
    ) in found


def test_a_machine_leaving_needs_review_is_reported():
    gateway, simulator, deliveries = resolution_world()
    # The reconciler "resolved" pay_rev itself, and its event is an ordinary one.
    gateway.transitions = [
        replace(t, actor="reconciler", operator_id=None) if t.id == 25 else t
        for t in gateway.transitions
    ]
    gateway.operator_actions = [a for a in gateway.operator_actions if a.id != 1]
    gateway.events = [
        replace(e, operator_action_id=None) if e.id == "evt_rev_ok" else e for e in gateway.events
    ]

    assert violations_of(gateway, simulator, deliveries) == [
        "[audit] pay_rev: transition needs_review→successful by reconciler: only an operator "
        "resolves needs_review"
    ]


def test_a_resolved_payment_may_disagree_with_the_provider_but_only_when_resolved():
    gateway, simulator, deliveries = resolution_world()
    # A person resolved pay_rev failed although MTN holds SUCCESSFUL (for another amount).
    gateway.payments = [
        replace(p, status="failed") if p.id == "pay_rev" else p for p in gateway.payments
    ]
    gateway.transitions = [
        replace(t, to_status="failed") if t.id == 25 else t for t in gateway.transitions
    ]
    gateway.operator_actions[0] = replace(gateway.operator_actions[0], to_status="failed")
    gateway.events = [
        replace(e, type="payment.failed") if e.id == "evt_rev_ok" else e for e in gateway.events
    ]
    deliveries = [
        replace(d, event_type="payment.failed") if d.webhook_id == "evt_rev_ok" else d
        for d in deliveries
    ]
    assert violations_of(gateway, simulator, deliveries) == []

    # The same disagreement reached by a machine (pending → failed) is still a violation.
    gateway.transitions = [t for t in gateway.transitions if t.id != 25]
    gateway.transitions = [
        replace(t, to_status="failed") if t.id == 22 else t for t in gateway.transitions
    ]
    gateway.operator_actions = [a for a in gateway.operator_actions if a.id != 1]
    gateway.events = [e for e in gateway.events if e.id != "evt_rev_review"]
    gateway.events = [
        replace(e, operator_action_id=None) if e.id == "evt_rev_ok" else e for e in gateway.events
    ]
    deliveries = [d for d in deliveries if d.webhook_id != "evt_rev_review"]

    assert violations_of(gateway, simulator, deliveries) == [
        "[state] pay_rev: gateway says failed, the provider holds SUCCESSFUL "
        "(expected one of ['successful'])"
    ]


def test_a_resolution_does_not_excuse_a_second_charge():
    gateway, simulator, deliveries = resolution_world()
    simulator.payments[-1] = replace(simulator.payments[-1], charges=2)
    simulator.payments.append(ProviderPayment("mtn_momo", "ref-twice-2", "SUCCESSFUL"))

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[charges] ref-twice: charged 2 times at mtn_momo",
        "[charges] ref-twice-2: mtn_momo charged a reference no gateway payment has (a second "
        "reference for some payment, or a charge never written ahead)",
    ]


def test_a_refund_resolved_succeeded_may_disagree_with_the_provider_but_pays_out_once():
    gateway, simulator, deliveries = resolution_world()
    # A person found re_lost's money did go back: succeeded, though MTN never took it.
    gateway.refunds[3] = replace(gateway.refunds[3], status="succeeded")
    gateway.payments[0] = replace(gateway.payments[0], amount_refunded_minor=25000)
    gateway.refund_transitions[-1] = replace(gateway.refund_transitions[-1], to_status="succeeded")
    gateway.operator_actions[2] = replace(gateway.operator_actions[2], to_status="succeeded")
    gateway.events = [
        replace(e, type="refund.succeeded") if e.id == "evt_re_lost_no" else e
        for e in gateway.events
    ]
    deliveries = [
        replace(d, event_type="refund.succeeded") if d.webhook_id == "evt_re_lost_no" else d
        for d in deliveries
    ]
    assert violations_of(gateway, simulator, deliveries) == []

    # The refunded total still has to follow, and a payout is still made at most once.
    gateway.payments[0] = replace(gateway.payments[0], amount_refunded_minor=20000)
    simulator.refunds[0] = replace(simulator.refunds[0], payouts=2)
    assert violations_of(gateway, simulator, deliveries) == [
        "[refunds] pay_ok: amount_refunded_minor is 20000, its succeeded refunds add up to 25000",
        "[refunds] rf-ok: paid out 2 times at mtn_momo",
    ]

    # Without the resolution (a machine moved it), "succeeded" needs the provider's word.
    gateway.payments[0] = replace(gateway.payments[0], amount_refunded_minor=25000)
    simulator.refunds[0] = replace(simulator.refunds[0], payouts=1)
    gateway.refund_transitions[-1] = replace(
        gateway.refund_transitions[-1], from_status="pending", actor="reconciler", operator_id=None
    )
    gateway.refund_transitions = [
        t for t in gateway.refund_transitions if not (t.id == 8 and t.refund_id == "re_lost")
    ]
    gateway.operator_actions = [a for a in gateway.operator_actions if a.id != 3]
    gateway.events = [
        replace(e, operator_action_id=None) if e.id == "evt_re_lost_no" else e
        for e in gateway.events
        if e.id != "evt_re_lost"
    ]
    deliveries = [d for d in deliveries if d.webhook_id != "evt_re_lost"]
    assert violations_of(gateway, simulator, deliveries) == [
        "[state] re_lost: gateway says succeeded, but the provider never accepted its reference"
    ]


def test_an_airtel_refund_a_person_resolved_failed_may_disagree_with_airtel():
    gateway, simulator, deliveries = resolution_world()
    # Airtel refunded pay_air; its answer was lost (needs_review), and a person, not finding
    # the money, resolved the refund failed.
    gateway.refunds[4] = replace(gateway.refunds[4], status="failed")
    gateway.payments[4] = replace(gateway.payments[4], amount_refunded_minor=0)
    gateway.refund_transitions[8] = RefundTransition(9, "re_air", "pending", "needs_review")
    gateway.refund_transitions.append(
        RefundTransition(11, "re_air", "needs_review", "failed", "operator", "op_2")
    )
    gateway.operator_actions.append(
        OperatorAction(5, "op_2", "refund.resolve", "refund", "re_air", "failed", NOTE)
    )
    gateway.events = [
        replace(e, type="refund.needs_review") if e.id == "evt_re_air" else e
        for e in gateway.events
    ]
    gateway.events.append(
        GatewayEvent("evt_re_air_no", "pay_air", "refund.failed", "delivered", "re_air", 5)
    )
    deliveries = [
        replace(d, event_type="refund.needs_review") if d.webhook_id == "evt_re_air" else d
        for d in deliveries
    ]
    deliveries.append(Delivery("evt_re_air_no", "pay_air", "refund.failed", refund_id="re_air"))
    assert violations_of(gateway, simulator, deliveries) == []

    # Without the resolution, a failed refund Airtel made is still caught.
    gateway.refund_transitions[8] = RefundTransition(9, "re_air", "pending", "failed")
    gateway.refund_transitions.pop()
    gateway.operator_actions.pop()
    gateway.events = [e for e in gateway.events if e.id != "evt_re_air_no"]
    gateway.events = [
        replace(e, type="refund.failed") if e.id == "evt_re_air" else e for e in gateway.events
    ]
    deliveries = [d for d in deliveries if d.webhook_id != "evt_re_air_no"]
    deliveries = [
        replace(d, event_type="refund.failed") if d.webhook_id == "evt_re_air" else d
        for d in deliveries
    ]
    assert violations_of(gateway, simulator, deliveries) == [
        "[state] pay_air: airtel_money refunded it once; 0 of its refunds are not failed "
        "(re_air failed), expected exactly 1"
    ]


def test_two_webhook_ids_for_one_machine_event_are_still_reported_beside_a_resolution():
    gateway, simulator, deliveries = resolution_world()
    deliveries.append(Delivery("evt_twice_forged", "pay_twice", "payment.succeeded"))

    found = violations_of(gateway, simulator, deliveries)

    assert found == [
        "[events] pay_twice: payment.succeeded delivered under 2 different webhook-ids "
        "['evt_twice_forged', 'evt_twice_ok']",
        "[events] pay_twice: storefront got webhook-id 'evt_twice_forged', which no event has",
    ]
