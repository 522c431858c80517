"""The JSON each provider puts on the wire for a payment or a refund: status answers and
callback bodies.

Pure functions of a ledger ``Payment`` or ``Refund``, so a route and a callback can never disagree
about what one looks like.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Literal

from app.simulator.ledger import Payment, PaymentStatus
from app.simulator.refund_ledger import Refund

ReasonFormat = Literal["string", "object"]

# Texts for the old object form of MTN's `reason`; MTN's own wording where it is known.
_MTN_REASON_MESSAGES = {
    "APPROVAL_REJECTED": "Approval rejected",
    "EXPIRED": "Expired",
    "INTERNAL_PROCESSING_ERROR": "An internal error occurred while processing.",
    "PAYER_NOT_FOUND": "Payer not found",
    "PAYEE_NOT_ALLOWED_TO_RECEIVE": "Payee not allowed to receive",
    "COULD_NOT_PERFORM_TRANSACTION": "Could not perform transaction",
    "NOT_ENOUGH_FUNDS": "Not enough funds",
    "PAYER_LIMIT_REACHED": "Payer limit reached",
    "PAYEE_NOT_FOUND": "Payee not found",
    "NOT_ALLOWED": "Authorization failed. User does not have permission.",
}


def mtn_reason(reason: str, reason_format: ReasonFormat) -> str | dict[str, str]:
    if reason_format == "string":
        return reason
    message = _MTN_REASON_MESSAGES.get(reason, reason.replace("_", " ").capitalize())
    return {"code": reason, "message": message}


def mtn_status_body(payment: Payment, reason_format: ReasonFormat) -> dict[str, Any]:
    """GET /requesttopay/{ref}, and — identical, as MTN says — the callback body.

    There is no ``referenceId``: MTN puts it in neither, which is why callers carry it in the
    callback URL.
    """
    body: dict[str, Any] = {"amount": payment.shown_amount, "currency": payment.shown_currency}
    if payment.status is PaymentStatus.SUCCESSFUL and payment.transaction_id:
        body["financialTransactionId"] = payment.transaction_id
    if payment.external_id is not None:
        body["externalId"] = payment.external_id
    body["payer"] = {"partyIdType": payment.party_id_type, "partyId": payment.msisdn}
    if payment.payer_message is not None:
        body["payerMessage"] = payment.payer_message
    if payment.payee_note is not None:
        body["payeeNote"] = payment.payee_note
    body["status"] = payment.status.value
    if payment.status is PaymentStatus.FAILED:
        reason = (
            payment.resolution and payment.resolution.mtn_reason
        ) or "INTERNAL_PROCESSING_ERROR"
        body["reason"] = mtn_reason(reason, reason_format)
    return body


def mtn_refund_body(refund: Refund, reason_format: ReasonFormat) -> dict[str, Any]:
    """GET /disbursement/v1_0/refund/{ref}, and the refund's callback body.

    ``financialTransactionId`` appears once the money moved, as on a request-to-pay. ``payee`` is
    the refunded payer; a refund of a payment MTN does not know has no payee to show, so it has
    none rather than an invented one.
    """
    body: dict[str, Any] = {"amount": refund.shown_amount, "currency": refund.currency}
    if refund.status is PaymentStatus.SUCCESSFUL and refund.transaction_id:
        body["financialTransactionId"] = refund.transaction_id
    if refund.external_id is not None:
        body["externalId"] = refund.external_id
    if refund.payee_msisdn is not None:
        body["payee"] = {"partyIdType": refund.payee_id_type, "partyId": refund.payee_msisdn}
    if refund.payer_message is not None:
        body["payerMessage"] = refund.payer_message
    if refund.payee_note is not None:
        body["payeeNote"] = refund.payee_note
    body["status"] = refund.status.value
    if refund.status is PaymentStatus.FAILED:
        body["reason"] = mtn_reason(refund.reason or "INTERNAL_PROCESSING_ERROR", reason_format)
    return body


def airtel_envelope(
    *, code: str, message: str, result_code: str, response_code: str, success: bool
) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "result_code": result_code,
        "response_code": response_code,
        "success": success,
    }


def airtel_enquiry_body(payment: Payment) -> dict[str, Any]:
    """GET /standard/v1/payments/{id}: decided by ``data.transaction.status``, never by codes."""
    resolution = payment.resolution
    transaction: dict[str, Any] = {}
    status: str
    if payment.status is PaymentStatus.PENDING or resolution is None:
        status = payment.scenario.airtel_pending_status
        response_code = "DP00800001000" if status == "TA" else "DP00800001006"
        message = "Transaction ambiguous" if status == "TA" else "Transaction in progress"
    else:
        status = resolution.airtel_status
        response_code = resolution.airtel_response_code
        message = resolution.airtel_message
        # Airtel's receipt is disclosed on success only (refunds key on it).
        if status == "TS" and payment.transaction_id:
            transaction["airtel_money_id"] = payment.transaction_id
    transaction.update({"id": payment.reference, "message": message, "status": status})
    return {
        "data": {"transaction": transaction},
        "status": airtel_envelope(
            code="200",
            message="SUCCESS",
            result_code="ESB000010",
            response_code=response_code,
            success=True,
        ),
    }


def airtel_callback_transaction(payment: Payment) -> dict[str, Any]:
    """The ``transaction`` member of Airtel's callback: documented with TS and TF only."""
    resolution = payment.resolution
    if payment.status is PaymentStatus.SUCCESSFUL:
        amount = payment.shown_amount
        message = (
            f"Paid {payment.shown_currency} {amount} to MOMO GATEWAY SIMULATOR Charge "
            f"{payment.shown_currency} 0, Trans ID {payment.transaction_id}."
        )
        status_code = "TS"
    else:
        message = resolution.airtel_message if resolution else "Transaction in progress"
        status_code = "TF" if payment.status is PaymentStatus.FAILED else "TIP"
    return {
        "id": payment.reference,
        "message": message,
        "status_code": status_code,
        "airtel_money_id": payment.transaction_id or "",
    }


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def airtel_callback_hash(secret: str, transaction_json: str) -> str:
    digest = hmac.new(secret.encode(), transaction_json.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def airtel_callback_body(payment: Payment, secret: str | None) -> bytes:
    """The exact bytes Airtel posts.

    The ``transaction`` member is written compactly and hashed as written, so a receiver that
    hashes the raw member as received and one that re-encodes it compactly both find a match.
    """
    transaction_json = compact_json(airtel_callback_transaction(payment))
    if secret is None:
        return f'{{"transaction":{transaction_json}}}'.encode()
    digest = airtel_callback_hash(secret, transaction_json)
    return f'{{"transaction":{transaction_json},"hash":"{digest}"}}'.encode()
