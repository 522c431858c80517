"""Outcomes reach Saleor through the outbox: every attempt recorded, Saleor's refusals retried
then given up on, a repeat that Saleor already has counted as delivered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from app.db import utcnow
from app.events import repository
from app.events.models import OutboxEvent
from app.payments.domain import EventType
from app.saleor.reporting import report_for
from tests.e2e.stack import eventually
from tests.saleor.conftest import SaleorStack
from tests.saleor.test_replies import initialize, initialize_payload, payment_row


async def final_event(stack: SaleorStack, payment_id: str) -> str:
    async def written() -> bool:
        return (await payment_row(stack, payment_id))["status"] != "pending"

    await eventually(written, timeout=20, what=f"{payment_id} to settle")
    async with stack.stack.runtime.engine.connect() as connection:
        sql = text("SELECT id FROM events WHERE payment_id = :p")
        return str((await connection.execute(sql, {"p": payment_id})).scalar())


async def event_state(stack: SaleorStack, event_id: str) -> dict[str, Any]:
    async with stack.stack.runtime.engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT delivery_status, attempt_count FROM events WHERE id = :e"),
                {"e": event_id},
            )
        ).one()
        errors = (
            await connection.execute(
                text("SELECT error FROM event_delivery_attempts WHERE event_id = :e ORDER BY id"),
                {"e": event_id},
            )
        ).scalars()
        return {"status": row[0], "attempts": row[1], "errors": list(errors)}


async def due_now(stack: SaleorStack, event_id: str) -> None:
    """Skip the retry's wait: the event is due now."""
    async with stack.stack.runtime.sessions.begin() as session:
        await repository.queue_redelivery(session, event_id, at=utcnow())


async def paid(stack: SaleorStack) -> str:
    reply = await initialize(stack, initialize_payload(stack))
    return str(reply["pspReference"])


async def test_a_refused_report_is_recorded_retried_and_then_counted_once(
    installed_quiet: SaleorStack,
) -> None:
    payment_id = await paid(installed_quiet)
    event_id = await final_event(installed_quiet, payment_id)
    delivery = installed_quiet.stack.runtime.delivery
    issued_token = installed_quiet.saleor.app_token
    installed_quiet.saleor.app_token = "revoked"  # Saleor now refuses the app's token

    first = await delivery.deliver(event_id)
    assert first.sent
    assert not first.delivered
    state = await event_state(installed_quiet, event_id)
    assert (state["status"], state["attempts"]) == ("pending", 1)
    assert "Invalid token" in state["errors"][0]
    assert installed_quiet.saleor.reports == []

    installed_quiet.saleor.app_token = issued_token
    await due_now(installed_quiet, event_id)
    assert (await delivery.deliver(event_id)).delivered
    assert len(installed_quiet.saleor.reported(payment_id, "CHARGE_SUCCESS")) == 1

    # Sent again (an operator's redelivery): Saleor answers alreadyProcessed, which is fine.
    await due_now(installed_quiet, event_id)
    assert (await delivery.deliver(event_id)).delivered
    assert len(installed_quiet.saleor.reported(payment_id, "CHARGE_SUCCESS")) == 1
    state = await event_state(installed_quiet, event_id)
    assert (state["status"], state["attempts"]) == ("delivered", 3)


async def test_a_report_saleor_keeps_refusing_is_given_up_after_the_last_attempt(
    installed_quiet: SaleorStack,
) -> None:
    payment_id = await paid(installed_quiet)
    event_id = await final_event(installed_quiet, payment_id)
    installed_quiet.saleor.app_token = "revoked"
    delivery = installed_quiet.stack.runtime.delivery
    await delivery.deliver(event_id)
    await due_now(installed_quiet, event_id)
    await delivery.deliver(event_id)  # event_max_attempts=2 in this stack
    state = await event_state(installed_quiet, event_id)
    assert (state["status"], state["attempts"]) == ("failed", 2)


def test_needs_review_is_not_reported() -> None:
    # The transaction stays waiting until a person resolves the payment.
    data = {"id": "pay_1", "amount": "5000", "metadata": {"saleor_transaction_id": "VHJ="}}
    event = OutboxEvent(type=EventType.PAYMENT_NEEDS_REVIEW.value, payload={"data": data})
    assert report_for(event, "VHJ=") is None
    succeeded = OutboxEvent(type=EventType.PAYMENT_SUCCEEDED.value, payload={"data": data})
    report = report_for(succeeded, "VHJ=")
    assert report is not None
    assert (report.type, report.amount, report.psp_reference) == ("CHARGE_SUCCESS", "5000", "pay_1")
