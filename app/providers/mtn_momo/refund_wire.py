"""MTN MoMo Disbursement refund JSON, and pure conversions to and from the gateway's types.

No HTTP and no logging here, as in ``wire.py``, whose models and helpers this reuses. What differs
from a collection is who is who: in a refund the merchant's disbursement account pays and the
customer is the payee, so a few of MTN's reasons name the other party and map differently.
"""

from __future__ import annotations

from typing import Any

from app.money import format_amount
from app.providers.base import RefundRequest, StatusResult
from app.providers.mtn_momo.wire import (
    MTN_CONFIGURATION_ERRORS,
    MtnErrorReason,
    MtnParty,
    _MtnModel,
    failure_code_for,
    final_initiation_refusal,
    sanitize_note,
    status_result,
)
from app.vocabulary import FailureCode


class MtnRefund(_MtnModel):
    amount: str
    currency: str
    external_id: str
    payer_message: str
    payee_note: str
    reference_id_to_refund: str


class MtnRefundStatus(_MtnModel):
    status: str
    amount: str | None = None
    currency: str | None = None
    financial_transaction_id: str | None = None
    external_id: str | None = None
    # The customer being paid back; the sandbox shows a PARTY_CODE here rather than an MSISDN.
    payee: MtnParty | None = None
    payer_message: str | None = None
    payee_note: str | None = None
    # A plain string in current answers, {code, message} in MTN's spec: both are read.
    reason: str | MtnErrorReason | None = None


# Where a reason means something else in a refund than in a collection (``MTN_FAILURE_CODES``).
REFUND_FAILURE_OVERRIDES: dict[str, FailureCode] = {
    # The payee is the customer getting the money back: their wallet is not there.
    "PAYEE_NOT_FOUND": FailureCode.PAYER_NOT_FOUND,
    # The payer is this merchant's own disbursement account: missing means our account is not
    # set up to pay out, not that the customer is unknown.
    "PAYER_NOT_FOUND": FailureCode.NOT_ALLOWED,
}

# Refusals only an operator can fix: besides the configuration codes shared with collections,
# the disbursement wallet being short (it is ours, not the customer's) or missing.
REFUND_OPERATOR_ERRORS = MTN_CONFIGURATION_ERRORS | {"NOT_ENOUGH_FUNDS", "PAYER_NOT_FOUND"}

KNOWN_STATUSES = frozenset({"PENDING", "SUCCESSFUL", "FAILED"})


def _normalised(code: str | None) -> str | None:
    return code.strip().upper() if code else None


def refund_failure_code_for(reason: str | None) -> FailureCode:
    """The gateway's failure code for an MTN reason given to a refund."""
    override = REFUND_FAILURE_OVERRIDES.get(_normalised(reason) or "")
    return override or failure_code_for(reason)


def final_refund_refusal(code: str | None) -> FailureCode | None:
    """The failure code when an error answer to a refund is a definitive "no", else None.

    Which codes are final is the collection rule (``final_initiation_refusal``); only what they
    map to may differ.
    """
    if final_initiation_refusal(code) is None:
        return None
    return refund_failure_code_for(code)


def is_operator_error(code: str | None) -> bool:
    return _normalised(code) in REFUND_OPERATOR_ERRORS


def refund_body(request: RefundRequest) -> MtnRefund:
    """Raises ``AmountError`` for a currency the gateway cannot format."""
    # MTN answers 400 to an apostrophe or a long message: the reason is made to fit.
    note = sanitize_note(request.note, order_id=request.order_id, kind="Refund")
    return MtnRefund(
        amount=format_amount(request.amount_minor, request.currency),
        currency=request.currency,
        external_id=request.order_id,
        payer_message=note,
        payee_note=note,
        reference_id_to_refund=request.payment_reference,
    )


def is_known_status(payload: MtnRefundStatus) -> bool:
    return payload.status.strip().upper() in KNOWN_STATUSES


def refund_status_result(payload: MtnRefundStatus, raw: dict[str, Any]) -> StatusResult:
    """The refund status in the gateway's terms, its reasons read as a refund's."""
    return status_result(payload, raw, failure_code=refund_failure_code_for)
