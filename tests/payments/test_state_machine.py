"""The one state machine: exactly one winner, one audit row, one event."""

from __future__ import annotations

import asyncio

import pytest

from app.payments.decision import Change
from app.payments.domain import ALLOWED_TRANSITIONS, Actor, PaymentStatus
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import FailureCode
from tests.conftest import count_rows
from tests.payments.test_create_payment import VALID


async def pending_payment(client, auth) -> str:
    response = await client.post("/v1/payments", json=VALID, headers=auth)
    assert response.json()["status"] == "pending"
    return response.json()["id"]


async def test_twenty_concurrent_transitions_have_exactly_one_winner(client, auth, runtime):
    payment_id = await pending_payment(client, auth)
    targets = [PaymentStatus.SUCCESSFUL, PaymentStatus.FAILED, PaymentStatus.EXPIRED] * 7
    changes = [
        Change(to_status=target, actor=Actor.CALLBACK, failure_code=FailureCode.PROVIDER_ERROR)
        for target in targets[:20]
    ]

    results = await asyncio.gather(
        *(runtime.payments.transition(payment_id, change) for change in changes)
    )

    won = [result is not None for result in results]
    assert won.count(True) == 1
    winner = changes[won.index(True)].to_status
    current = await client.get(f"/v1/payments/{payment_id}", headers=auth)
    assert current.json()["status"] == winner.value
    assert (
        await count_rows(
            runtime,
            "payment_transitions",
            "payment_id = :p AND from_status = 'pending'",
            p=payment_id,
        )
        == 1
    )
    assert await count_rows(runtime, "events", "payment_id = :p", p=payment_id) == 1


async def test_terminal_states_absorb_repeats(client, auth, runtime):
    payment_id = await pending_payment(client, auth)
    success = Change(to_status=PaymentStatus.SUCCESSFUL, actor=Actor.RECONCILER)
    assert await runtime.payments.transition(payment_id, success) is not None
    assert await runtime.payments.transition(payment_id, success) is None
    failure = Change(to_status=PaymentStatus.FAILED, actor=Actor.CALLBACK)
    assert await runtime.payments.transition(payment_id, failure) is None
    assert await count_rows(runtime, "events", "payment_id = :p", p=payment_id) == 1
    assert await count_rows(runtime, "payment_transitions", "payment_id = :p", p=payment_id) == 2


async def test_event_payload_is_the_payment_after_the_change(client, auth, runtime):
    payment_id = await pending_payment(client, auth)
    await runtime.payments.transition(
        payment_id,
        Change(
            to_status=PaymentStatus.SUCCESSFUL,
            actor=Actor.CALLBACK,
            provider_transaction_id="mtn-42",
        ),
    )
    from sqlalchemy import select

    from app.events.models import OutboxEvent

    async with runtime.sessions() as session:
        event = (await session.scalars(select(OutboxEvent))).one()
    assert event.type == "payment.succeeded"
    assert event.payload["id"] == event.id
    assert event.payload["data"]["status"] == "successful"
    assert event.payload["data"]["provider_transaction_id"] == "mtn-42"


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_needs_review_is_final_and_pending_reaches_every_terminal(status):
    if status is PaymentStatus.PENDING:
        assert ALLOWED_TRANSITIONS[status] == {s for s in PaymentStatus if s.is_terminal}
    elif status is PaymentStatus.NEEDS_REVIEW:
        assert ALLOWED_TRANSITIONS[status] == frozenset()
    else:
        assert ALLOWED_TRANSITIONS[status] == {PaymentStatus.NEEDS_REVIEW}


async def test_an_illegal_transition_is_refused(client, auth, runtime):
    payment_id = await pending_payment(client, auth)
    with pytest.raises(ValueError, match="not a transition"):
        await runtime.payments.transition(
            payment_id,
            Change(to_status=PaymentStatus.PENDING, actor=Actor.API),
        )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # Another writer recorded success first; the provider's failure contradicts it.
        (ProviderPaymentStatus.FAILED, "needs_review"),
        # The same success again: nothing to do, and the row as it is comes back.
        (ProviderPaymentStatus.SUCCESSFUL, "successful"),
    ],
)
async def test_an_answer_applied_to_an_outdated_row_is_judged_on_the_current_one(
    client, auth, merchant, runtime, answer, expected
):
    payment_id = await pending_payment(client, auth)
    outdated = await runtime.payments.get_payment(merchant.id, payment_id)
    settled = Change(to_status=PaymentStatus.SUCCESSFUL, actor=Actor.CALLBACK)
    assert await runtime.payments.transition(payment_id, settled) is not None

    updated = await runtime.payments.apply_status(
        outdated, StatusResult(status=answer), Actor.RECONCILER
    )

    assert updated.status == expected
    current = await client.get(f"/v1/payments/{payment_id}", headers=auth)
    assert current.json()["status"] == expected
