"""What the app answers each Saleor webhook, checked against Saleor's own reply schemas."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from app.merchants.admin import disable_merchant
from app.saleor.events import SaleorEvent
from app.simulator.saleor import global_id
from tests.e2e.stack import eventually
from tests.saleor.conftest import SaleorStack, check_reply

PAYER = "0772123456"


async def count(stack: SaleorStack, table: str) -> int:
    async with stack.stack.runtime.engine.connect() as connection:
        sql = text(f"SELECT count(*) FROM {table}")  # noqa: S608 (a table name of the test's)
        return int((await connection.execute(sql)).scalar() or 0)


async def payment_row(stack: SaleorStack, payment_id: str) -> dict[str, Any]:
    """The payment as stored (it is the Saleor merchant's, not the API client's)."""
    payment = await stack.stack.runtime.payments.get_payment(
        await saleor_merchant(stack), payment_id
    )
    return {
        "status": payment.status,
        "description": payment.description,
        "metadata": payment.payment_metadata,
        "provider_reference": payment.provider_reference,
    }


async def saleor_merchant(stack: SaleorStack) -> str:
    async with stack.stack.runtime.engine.connect() as connection:
        sql = text("SELECT merchant_id FROM saleor_installations")
        return str((await connection.execute(sql)).scalar())


def initialize_payload(stack: SaleorStack, **changes: Any) -> dict[str, Any]:
    transaction_id = global_id("TransactionItem")
    payload = stack.saleor.event_body(
        SaleorEvent.TRANSACTION_INITIALIZE_SESSION,
        idempotencyKey="idem-" + transaction_id[-12:],
        data={"phone_number": PAYER},
        action={"amount": 15000, "currency": "UGX", "actionType": "CHARGE"},
        transaction={"id": transaction_id, "pspReference": ""},
        sourceObject={"__typename": "Order", "id": global_id("Order"), "number": "1042"},
    )
    payload.update(changes)
    return payload


async def initialize(stack: SaleorStack, payload: dict[str, Any]) -> dict[str, Any]:
    response = await stack.saleor.send(
        stack.http, SaleorEvent.TRANSACTION_INITIALIZE_SESSION, payload
    )
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    check_reply("TransactionInitializeSession", reply)
    return reply


async def test_a_new_checkout_waits_for_the_phone_and_names_the_payment(
    installed_quiet: SaleorStack,
) -> None:
    reply = await initialize(installed_quiet, initialize_payload(installed_quiet))
    assert reply["result"] == "CHARGE_ACTION_REQUIRED"
    assert reply["amount"] == "15000"
    assert reply["data"]["status"] == "pending"
    assert reply["data"]["phone_number"] == "2567*****456"
    payment = await payment_row(installed_quiet, reply["pspReference"])
    assert payment["description"] == "Order 1042"
    assert payment["metadata"]["saleor_transaction_id"]


async def test_the_same_initialize_twice_makes_one_payment(installed_quiet: SaleorStack) -> None:
    payload = initialize_payload(installed_quiet)
    first = await initialize(installed_quiet, payload)
    again = await initialize(installed_quiet, payload)
    assert again["pspReference"] == first["pspReference"]
    assert await count(installed_quiet, "payments") == 1
    payment = await payment_row(installed_quiet, first["pspReference"])
    at_mtn = await installed_quiet.stack.sim(
        f"/_simulator/payments/{payment['provider_reference']}"
    )
    assert at_mtn["create_requests"] == 1  # one request-to-pay: the payer is asked once


async def test_a_bad_phone_number_is_a_charge_failure_with_nothing_made(
    installed_quiet: SaleorStack,
) -> None:
    reply = await initialize(
        installed_quiet, initialize_payload(installed_quiet, data={"phone_number": "12345"})
    )
    assert reply["result"] == "CHARGE_FAILURE"
    assert "phone" in reply["message"].lower()
    assert await count(installed_quiet, "payments") == 0


async def test_missing_data_asks_for_the_phone_number(installed_quiet: SaleorStack) -> None:
    reply = await initialize(installed_quiet, initialize_payload(installed_quiet, data=None))
    assert reply["result"] == "CHARGE_FAILURE"
    assert "phone_number" in reply["message"]


async def test_a_currency_no_provider_takes_is_a_charge_failure(
    installed_quiet: SaleorStack,
) -> None:
    action = {"amount": 15, "currency": "USD", "actionType": "CHARGE"}
    reply = await initialize(installed_quiet, initialize_payload(installed_quiet, action=action))
    assert reply["result"] == "CHARGE_FAILURE"
    assert await count(installed_quiet, "payments") == 0


async def test_decimals_in_ugx_are_refused(installed_quiet: SaleorStack) -> None:
    action = {"amount": 150.5, "currency": "UGX", "actionType": "CHARGE"}
    reply = await initialize(installed_quiet, initialize_payload(installed_quiet, action=action))
    assert reply["result"] == "CHARGE_FAILURE"
    assert "decimals" in reply["message"]


async def test_an_authorization_flow_is_refused_with_the_fix(installed_quiet: SaleorStack) -> None:
    action = {"amount": 15000, "currency": "UGX", "actionType": "AUTHORIZATION"}
    reply = await initialize(installed_quiet, initialize_payload(installed_quiet, action=action))
    assert reply["result"] == "AUTHORIZATION_FAILURE"
    assert "CHARGE" in reply["message"]
    assert await count(installed_quiet, "payments") == 0


async def test_charge_and_cancel_requests_are_failures_with_a_reason(
    installed_quiet: SaleorStack,
) -> None:
    for event, schema, result in (
        (SaleorEvent.TRANSACTION_CHARGE_REQUESTED, "TransactionChargeRequested", "CHARGE_FAILURE"),
        (
            SaleorEvent.TRANSACTION_CANCELATION_REQUESTED,
            "TransactionCancelationRequested",
            "CANCEL_FAILURE",
        ),
    ):
        payload = installed_quiet.saleor.event_body(
            event,
            action={"amount": 100, "currency": "UGX", "actionType": "CHARGE"},
            transaction={"id": global_id("TransactionItem"), "pspReference": "pay_x"},
        )
        response = await installed_quiet.saleor.send(installed_quiet.http, event, payload)
        assert response.status_code == 200, response.text
        check_reply(schema, response.json())
        assert response.json()["result"] == result
        assert response.json()["message"]


async def test_process_session_for_an_unknown_payment_is_a_failure(
    installed_quiet: SaleorStack,
) -> None:
    payload = installed_quiet.saleor.event_body(
        SaleorEvent.TRANSACTION_PROCESS_SESSION,
        data=None,
        action={"amount": 100, "currency": "UGX", "actionType": "CHARGE"},
        transaction={"id": global_id("TransactionItem"), "pspReference": "pay_unknown"},
    )
    response = await installed_quiet.saleor.send(
        installed_quiet.http, SaleorEvent.TRANSACTION_PROCESS_SESSION, payload
    )
    check_reply("TransactionProcessSession", response.json())
    assert response.json()["result"] == "CHARGE_FAILURE"


async def paid_transaction(stack: SaleorStack, amount: int = 15000) -> tuple[str, str]:
    payload = initialize_payload(
        stack, action={"amount": amount, "currency": "UGX", "actionType": "CHARGE"}
    )
    reply = await initialize(stack, payload)
    payment_id = reply["pspReference"]

    async def successful() -> bool:
        return (await payment_row(stack, payment_id))["status"] == "successful"

    await eventually(successful, timeout=20, what=f"{payment_id} to succeed")
    return payload["transaction"]["id"], reply["pspReference"]


async def refund(stack: SaleorStack, payload: dict[str, Any]) -> dict[str, Any]:
    response = await stack.saleor.send(
        stack.http, SaleorEvent.TRANSACTION_REFUND_REQUESTED, payload
    )
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    check_reply("TransactionRefundRequested", reply)
    return reply


async def test_a_refund_over_the_payment_is_a_refund_failure(installed_quiet: SaleorStack) -> None:
    transaction_id, payment_id = await paid_transaction(installed_quiet)
    payload = installed_quiet.saleor.event_body(
        SaleorEvent.TRANSACTION_REFUND_REQUESTED,
        action={"amount": 99999, "currency": "UGX", "actionType": "REFUND"},
        transaction={"id": transaction_id, "pspReference": payment_id},
    )
    reply = await refund(installed_quiet, payload)
    assert reply["result"] == "REFUND_FAILURE"
    assert "refund" in reply["message"].lower()
    assert await count(installed_quiet, "refunds") == 0


async def test_the_same_refund_request_twice_refunds_once(installed_quiet: SaleorStack) -> None:
    transaction_id, payment_id = await paid_transaction(installed_quiet)
    payload = installed_quiet.saleor.event_body(
        SaleorEvent.TRANSACTION_REFUND_REQUESTED,
        action={"amount": 5000, "currency": "UGX", "actionType": "REFUND"},
        transaction={"id": transaction_id, "pspReference": payment_id},
    )
    first = await refund(installed_quiet, payload)
    again = await refund(installed_quiet, json.loads(json.dumps(payload)))
    assert first["pspReference"] == again["pspReference"]
    assert await count(installed_quiet, "refunds") == 1

    async def settled() -> bool:
        refund = await installed_quiet.stack.runtime.refunds.get_refund(
            await saleor_merchant(installed_quiet), first["pspReference"]
        )
        return bool(refund.status == "succeeded")

    await eventually(settled, timeout=20, what="the refund to succeed")


async def test_a_disabled_merchant_takes_no_saleor_payment(installed_quiet: SaleorStack) -> None:
    await disable_merchant(
        installed_quiet.stack.runtime.sessions, await saleor_merchant(installed_quiet)
    )
    reply = await initialize(installed_quiet, initialize_payload(installed_quiet))
    assert reply["result"] == "CHARGE_FAILURE"
    assert "switched off" in reply["message"]
    assert await count(installed_quiet, "payments") == 0
