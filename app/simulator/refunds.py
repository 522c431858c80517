"""How refunds are decided and settled: MTN's after a delay, Airtel's at once.

MTN documents no rule for partial, repeated or excessive refunds, so the simulator takes the
reading its provider notes recommend: partial refunds and several refunds of one payment are
allowed while their sum stays within the payment, and anything MTN could only judge after taking
the request ends as 202 then FAILED:

=============================================================  ============================
the refund                                                     ends
=============================================================  ============================
names no request-to-pay MTN took (``referenceIdToRefund``)      FAILED ``PAYEE_NOT_FOUND``
refunds a payment that is not SUCCESSFUL                        FAILED ``NOT_ALLOWED``
is in another currency than the payment, or is zero             FAILED ``NOT_ALLOWED``
exceeds the payment less its successful and pending refunds     FAILED ``NOT_ALLOWED``
exceeds the disbursement balance when it settles                FAILED ``NOT_ENOUGH_FUNDS`` [1]
anything else                                                   SUCCESSFUL, balance debited
=============================================================  ============================

[1] or ``INTERNAL_PROCESSING_ERROR`` (``mtn_short_balance_reason``), or a synchronous 500 with
that code (``mtn_short_balance_answer="refused"``): MTN's own sources disagree.

An unknown reference fails with ``PAYEE_NOT_FOUND`` rather than ``PAYER_NOT_FOUND``: a refund's
payer is the merchant's disbursement account, which exists; what cannot be found is who to pay,
the refund's payee. Only the original request-to-pay's X-Reference-Id is understood — the
reference the design and the integrations cited use — so a client sending the
``financialTransactionId`` instead finds out here.

Airtel refunds a successful collection in full, once, and answers with the outcome right away;
the collection is named by its ``airtel_money_id``, which Airtel discloses only once it is final.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from enum import StrEnum

from app.simulator.ledger import Payment, PaymentStatus
from app.simulator.refund_ledger import Refund, RefundKey
from app.simulator.state import Simulator, mint_mtn_transaction_id

PAYEE_NOT_FOUND = "PAYEE_NOT_FOUND"
NOT_ALLOWED = "NOT_ALLOWED"


def mtn_refusal(payment: Payment | None, refund: Refund, held: Decimal) -> str | None:
    """The reason an MTN refund will fail with, or None if it may pay out.

    ``held`` is what the payment's other successful and pending refunds already account for.
    The payment's amount is the one MTN reports for it.
    """
    if payment is None:
        return PAYEE_NOT_FOUND
    if payment.status is not PaymentStatus.SUCCESSFUL:
        return NOT_ALLOWED
    if refund.currency != payment.shown_currency:
        return NOT_ALLOWED
    amount = Decimal(refund.amount)
    if amount <= 0 or amount > Decimal(payment.shown_amount) - held:
        return NOT_ALLOWED
    return None


# --- MTN -----------------------------------------------------------------------------------------


def accept_mtn_refund(simulator: Simulator, refund: Refund) -> Refund | None:
    """Record the refund and start its timer; None if the X-Reference-Id is taken."""
    payment = simulator.ledger.get(refund.payment_key)
    recorded = simulator.refunds.add(refund, lambda held: mtn_refusal(payment, refund, held))
    if recorded is None:
        return None
    delay = simulator.config.refund_delay
    if delay == 0:
        # Settled before the create call answers: a status query right after sees it final.
        settle_mtn_refund(simulator, recorded.key)
    else:
        simulator.background.spawn(
            _settle_later(simulator, recorded.key, delay),
            name=f"refund mtn_momo {recorded.reference}",
        )
    return recorded


async def _settle_later(simulator: Simulator, key: RefundKey, delay: float) -> None:
    await asyncio.sleep(delay)
    settle_mtn_refund(simulator, key)


def settle_mtn_refund(simulator: Simulator, key: RefundKey) -> None:
    config = simulator.config
    settled = simulator.refunds.pay_out(
        key,
        opening=config.mtn_disbursement_opening_balance,
        short_reason=config.mtn_short_balance_reason,
        transaction_id=mint_mtn_transaction_id(),
    )
    if settled is not None and config.callbacks_enabled:
        schedule_refund_callback(simulator, settled)


def force_refund(
    simulator: Simulator,
    refund: Refund,
    *,
    status: PaymentStatus,
    reason: str | None,
    reported_amount: str | None,
) -> Refund:
    return simulator.refunds.force(
        refund.key,
        status=status,
        reason=reason,
        reported_amount=reported_amount,
        opening=simulator.config.mtn_disbursement_opening_balance,
        transaction_id=mint_mtn_transaction_id(),
    )


def schedule_refund_callback(simulator: Simulator, refund: Refund) -> None:
    if refund.provider != "mtn_momo" or not refund.callback_url:
        return
    simulator.background.spawn(
        _callback_after_delay(simulator, refund.key),
        name=f"refund callback {refund.provider} {refund.reference}",
    )


async def _callback_after_delay(simulator: Simulator, key: RefundKey) -> None:
    if simulator.config.callback_delay_seconds:
        await asyncio.sleep(simulator.config.callback_delay_seconds)
    refund = simulator.refunds.get(key)
    if refund is not None:
        await simulator.callbacks.deliver_refund(refund, simulator.config)


# --- Airtel --------------------------------------------------------------------------------------


class AirtelRefundOutcome(StrEnum):
    REFUNDED = "refunded"
    ALREADY_REFUNDED = "already_refunded"
    NOT_FOUND = "not_found"
    NOT_SUCCESSFUL = "not_successful"


def refund_airtel(simulator: Simulator, airtel_money_id: str) -> AirtelRefundOutcome:
    """Refund the collection in full, unless it is unknown, unpaid or already refunded."""
    payment = simulator.ledger.by_transaction_id("airtel_money", airtel_money_id)
    if payment is None:
        return AirtelRefundOutcome.NOT_FOUND
    if simulator.refunds.get(("airtel_money", airtel_money_id)) is not None:
        return AirtelRefundOutcome.ALREADY_REFUNDED
    if payment.status is not PaymentStatus.SUCCESSFUL:
        return AirtelRefundOutcome.NOT_SUCCESSFUL
    refund = Refund(
        provider="airtel_money",
        reference=airtel_money_id,
        payment_reference=payment.reference,
        amount=payment.shown_amount,
        currency=payment.shown_currency,
        payee_msisdn=payment.msisdn,
        external_id=payment.external_id,
    )
    if simulator.refunds.add_paid(refund) is None:
        return AirtelRefundOutcome.ALREADY_REFUNDED  # a concurrent request refunded it first
    return AirtelRefundOutcome.REFUNDED
