"""The Saleor app end to end, over HTTP: a fake Saleor installs the gateway, a checkout pays
through the provider simulator, and Saleor hears the outcome exactly once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from app.saleor.events import SaleorEvent
from tests.e2e.stack import eventually
from tests.saleor.conftest import SaleorStack, check_reply

MTN_PAYER = "0772 123 456"
MTN_REFUSES = "256772000451"  # the simulator's "payer rejected" number


async def scalar(stack: SaleorStack, sql: str, **params: Any) -> Any:
    async with stack.stack.runtime.engine.connect() as connection:
        return (await connection.execute(text(sql), params)).scalar()


async def reported(stack: SaleorStack, psp_reference: str, type_: str) -> None:
    async def seen() -> bool:
        return bool(stack.saleor.reported(psp_reference, type_))

    await eventually(seen, timeout=30, what=f"Saleor to receive {type_} for {psp_reference}")


async def all_events_delivered(stack: SaleorStack, payment_id: str) -> None:
    async def delivered() -> bool:
        pending = await scalar(
            stack,
            "SELECT count(*) FROM events WHERE payment_id = :p AND delivery_status != 'delivered'",
            p=payment_id,
        )
        return pending == 0

    await eventually(delivered, timeout=30, what=f"{payment_id}'s events to be delivered")


async def test_install_then_a_paid_checkout_is_reported_once_as_charge_success(
    saleor_stack: SaleorStack,
) -> None:
    installed = await saleor_stack.install()
    assert installed.status_code == 200, installed.text

    gateway = await saleor_stack.saleor.send(
        saleor_stack.http,
        SaleorEvent.PAYMENT_GATEWAY_INITIALIZE_SESSION,
        saleor_stack.saleor.event_body(
            SaleorEvent.PAYMENT_GATEWAY_INITIALIZE_SESSION, data=None, amount=50000
        ),
    )
    assert gateway.status_code == 200, gateway.text
    check_reply("PaymentGatewayInitializeSession", gateway.json())
    assert {p["id"] for p in gateway.json()["data"]["providers"]} == {"mtn_momo", "airtel_money"}

    transaction_id, answer = await saleor_stack.saleor.initialize(
        saleor_stack.http, amount=50000.0, phone_number=MTN_PAYER
    )
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    check_reply("TransactionInitializeSession", reply)
    assert reply["result"] == "CHARGE_ACTION_REQUIRED"
    payment_id = reply["pspReference"]
    assert payment_id.startswith("pay_")
    assert reply["data"]["next_step"] == "approve_on_phone"
    assert "123456" not in str(reply)  # the payer's number is masked

    await reported(saleor_stack, payment_id, "CHARGE_SUCCESS")
    await all_events_delivered(saleor_stack, payment_id)
    [report] = [r for r in saleor_stack.saleor.reports if r.psp_reference == payment_id]
    assert (report.type, report.amount, report.transaction_id) == (
        "CHARGE_SUCCESS",
        "50000",
        transaction_id,
    )

    processed = await saleor_stack.saleor.send(
        saleor_stack.http,
        SaleorEvent.TRANSACTION_PROCESS_SESSION,
        saleor_stack.saleor.event_body(
            SaleorEvent.TRANSACTION_PROCESS_SESSION,
            data=None,
            action={"amount": 50000, "currency": "UGX", "actionType": "CHARGE"},
            transaction={"id": transaction_id, "pspReference": payment_id},
        ),
    )
    check_reply("TransactionProcessSession", processed.json())
    assert processed.json()["result"] == "CHARGE_SUCCESS"


async def test_a_refused_payment_is_reported_as_charge_failure(saleor_stack: SaleorStack) -> None:
    assert (await saleor_stack.install()).status_code == 200
    _, answer = await saleor_stack.saleor.initialize(
        saleor_stack.http, amount="20000", phone_number=MTN_REFUSES
    )
    check_reply("TransactionInitializeSession", answer.json())
    payment_id = answer.json()["pspReference"]

    await reported(saleor_stack, payment_id, "CHARGE_FAILURE")
    await all_events_delivered(saleor_stack, payment_id)
    assert not saleor_stack.saleor.reported(payment_id, "CHARGE_SUCCESS")
    assert len(saleor_stack.saleor.reported(payment_id, "CHARGE_FAILURE")) == 1


async def test_a_refund_requested_in_saleor_is_reported_as_refund_success(
    saleor_stack: SaleorStack,
) -> None:
    assert (await saleor_stack.install()).status_code == 200
    transaction_id, answer = await saleor_stack.saleor.initialize(
        saleor_stack.http, amount=30000, phone_number=MTN_PAYER
    )
    payment_id = answer.json()["pspReference"]
    await reported(saleor_stack, payment_id, "CHARGE_SUCCESS")

    refund = await saleor_stack.saleor.refund(
        saleor_stack.http, transaction_id=transaction_id, psp_reference=payment_id, amount=10000.0
    )
    assert refund.status_code == 200, refund.text
    check_reply("TransactionRefundRequested", refund.json())
    refund_id = refund.json()["pspReference"]
    assert refund_id.startswith("re_")

    await reported(saleor_stack, refund_id, "REFUND_SUCCESS")
    [report] = saleor_stack.saleor.reported(refund_id, "REFUND_SUCCESS")
    assert (report.amount, report.transaction_id) == ("10000", transaction_id)
    refunded = await scalar(
        saleor_stack, "SELECT amount_refunded_minor FROM payments WHERE id = :p", p=payment_id
    )
    assert refunded == 10000
