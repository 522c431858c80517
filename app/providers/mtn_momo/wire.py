"""MTN MoMo Collection JSON, and pure conversions to and from the gateway's domain types.

No HTTP and no logging here: the adapter decides what to send and what an answer means for the
payment; the wire tests hold these conversions to the shapes MTN documents.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from app.money import AmountError, format_amount, parse_amount
from app.providers.base import PaymentRequest, ProviderPaymentStatus, StatusResult
from app.vocabulary import FailureCode


class _MtnModel(BaseModel):
    # Numbers where MTN documents strings (amount, ids) are read, not rejected.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        coerce_numbers_to_str=True,
    )


class MtnParty(_MtnModel):
    party_id_type: str = "MSISDN"
    party_id: str


class MtnRequestToPay(_MtnModel):
    amount: str
    currency: str
    external_id: str
    payer: MtnParty
    payer_message: str
    payee_note: str


class MtnErrorReason(_MtnModel):
    code: str | None = None
    message: str | None = None


class MtnRequestToPayStatus(_MtnModel):
    status: str
    amount: str | None = None
    currency: str | None = None
    financial_transaction_id: str | None = None
    external_id: str | None = None
    payer: MtnParty | None = None
    # Current MTN answers carry a plain string; the old swagger typed it as {code, message}.
    reason: str | MtnErrorReason | None = None


class MtnToken(BaseModel):
    model_config = ConfigDict(extra="ignore")

    access_token: str = Field(min_length=1)
    token_type: str | None = None
    expires_in: int | float | str | None = None


class MtnAccountHolderActive(_MtnModel):
    result: bool


class MtnBalance(_MtnModel):
    available_balance: str
    currency: str


# Every reason MTN documents, as the gateway's failure code. Reasons not listed are provider_error.
MTN_FAILURE_CODES: dict[str, FailureCode] = {
    "NOT_ENOUGH_FUNDS": FailureCode.INSUFFICIENT_FUNDS,
    "PAYER_NOT_FOUND": FailureCode.PAYER_NOT_FOUND,
    "APPROVAL_REJECTED": FailureCode.REJECTED_BY_PAYER,
    "TRANSACTION_CANCELED": FailureCode.REJECTED_BY_PAYER,
    "PAYMENT_NOT_APPROVED": FailureCode.REJECTED_BY_PAYER,
    "EXPIRED": FailureCode.PAYER_TIMEOUT,
    # The payer did not enter the PIN within MTN's 5-minute approval window.
    "COULD_NOT_PERFORM_TRANSACTION": FailureCode.PAYER_TIMEOUT,
    "PAYER_LIMIT_REACHED": FailureCode.LIMIT_EXCEEDED,
    "PAYEE_LIMIT_REACHED": FailureCode.LIMIT_EXCEEDED,
    "NOT_ALLOWED": FailureCode.NOT_ALLOWED,
    "PAYEE_NOT_ALLOWED_TO_RECEIVE": FailureCode.NOT_ALLOWED,
    "NOT_ALLOWED_TARGET_ENVIRONMENT": FailureCode.NOT_ALLOWED,
    "SENDER_ACCOUNT_NOT_ACTIVE": FailureCode.NOT_ALLOWED,
    "VALIDATION_ERROR": FailureCode.INVALID_REQUEST,
    "INVALID_CURRENCY": FailureCode.INVALID_REQUEST,
    "INVALID_CALLBACK_URL_HOST": FailureCode.INVALID_REQUEST,
    "RESOURCE_NOT_FOUND": FailureCode.NOT_FOUND_AT_PROVIDER,
    "TRANSACTION_NOT_FOUND": FailureCode.NOT_FOUND_AT_PROVIDER,
    # In a collection the payee is this merchant's own account: MTN not finding it says the
    # collection account is missing, which is a "not allowed" for this merchant rather than
    # "the provider has no record of this payment" (what not_found_at_provider promises).
    "PAYEE_NOT_FOUND": FailureCode.NOT_ALLOWED,
    "INTERNAL_PROCESSING_ERROR": FailureCode.PROVIDER_ERROR,
}

# At request-to-pay these arrive as HTTP 500 yet are final: the account or configuration is
# wrong, and sending again changes nothing. An operator must act, hence logged at ERROR.
MTN_CONFIGURATION_ERRORS = frozenset(
    {
        "NOT_ALLOWED",
        "NOT_ALLOWED_TARGET_ENVIRONMENT",
        "INVALID_CALLBACK_URL_HOST",
        "INVALID_CURRENCY",
    }
)

# HTTP 500s worth another attempt. INTERNAL_PROCESSING_ERROR used to be MTN's catch-all
# (often for lack of funds) but at initiation it does not prove the request was refused.
MTN_TRANSIENT_ERRORS = frozenset({"SERVICE_UNAVAILABLE", "INTERNAL_PROCESSING_ERROR"})

# Codes in a non-2xx answer that say the reference does not exist at MTN.
MTN_NOT_FOUND_CODES = frozenset({"RESOURCE_NOT_FOUND", "TRANSACTION_NOT_FOUND"})

MTN_DUPLICATE_REFERENCE = "RESOURCE_ALREADY_EXIST"

NOTE_MAX_LENGTH = 128
_NOTE_DISALLOWED = re.compile(r"[^A-Za-z0-9 \-_.,:/#()]")
_WHITESPACE = re.compile(r"\s+")


def failure_code_for(reason: str | None) -> FailureCode:
    if reason is None:
        return FailureCode.PROVIDER_ERROR
    return MTN_FAILURE_CODES.get(reason.strip().upper(), FailureCode.PROVIDER_ERROR)


def final_initiation_refusal(code: str | None) -> FailureCode | None:
    """The failure code when a 500 at request-to-pay is a definitive refusal, else None.

    Config errors and the payer/payee/limit reasons are final. Transient, not-found and unknown
    codes are not: the request may still be taken, so the payment stays pending.
    """
    if code is None:
        return None
    code = code.strip().upper()
    if code in MTN_TRANSIENT_ERRORS or code in MTN_NOT_FOUND_CODES:
        return None
    mapped = MTN_FAILURE_CODES.get(code)
    if mapped is None or mapped is FailureCode.PROVIDER_ERROR:
        return None
    return mapped


def sanitize_note(text: str | None, *, order_id: str, kind: str = "Payment") -> str:
    """A ``payerMessage``/``payeeNote`` MTN accepts.

    MTN answers 400 to some characters (``'``, ``&``) and to more than 128 characters; it also
    refuses an empty note, which becomes "{kind} {order_id}". Accents are folded to ASCII
    ("Café" → "Cafe") rather than dropped.
    """
    note = _clean_note(text or "")
    if not note:
        note = _clean_note(f"{kind} {order_id}") or kind
    return note


def _clean_note(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    kept = _NOTE_DISALLOWED.sub(" ", ascii_text)
    collapsed = _WHITESPACE.sub(" ", kept).strip()
    return collapsed[:NOTE_MAX_LENGTH].rstrip()


def request_to_pay_body(request: PaymentRequest) -> MtnRequestToPay:
    """Raises ``AmountError`` for a currency the gateway cannot format."""
    note = sanitize_note(request.description, order_id=request.order_id)
    return MtnRequestToPay(
        amount=format_amount(request.amount_minor, request.currency),
        currency=request.currency,
        external_id=request.order_id,
        payer=MtnParty(party_id_type="MSISDN", party_id=request.msisdn),
        payer_message=note,
        payee_note=note,
    )


def parse_error(payload: Any) -> MtnErrorReason | None:
    """``{"code": ..., "message": ...}`` from an error answer, when there is one."""
    if not isinstance(payload, dict):
        return None
    try:
        error = MtnErrorReason.model_validate(payload)
    except ValidationError:
        return None
    return error if error.code else None


def reason_code(reason: str | MtnErrorReason | None) -> str | None:
    if isinstance(reason, MtnErrorReason):
        return reason.code
    return reason or None


def describe_reason(reason: str | MtnErrorReason | None) -> str | None:
    if isinstance(reason, MtnErrorReason):
        if reason.code and reason.message:
            return f"{reason.code}: {reason.message}"
        return reason.code or reason.message
    return reason or None


def amount_minor(amount: str | None, currency: str | None) -> int | None:
    """MTN's amount string in minor units, or None when it cannot be read exactly."""
    if amount is None or currency is None:
        return None
    try:
        return parse_amount(amount, currency)
    except AmountError:
        return None


class StatusBody(Protocol):
    """What MTN's status bodies share: a request-to-pay's and a refund's alike."""

    @property
    def status(self) -> str: ...
    @property
    def amount(self) -> str | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def financial_transaction_id(self) -> str | None: ...
    @property
    def reason(self) -> str | MtnErrorReason | None: ...


def status_result(
    payload: StatusBody,
    raw: dict[str, Any],
    *,
    failure_code: Callable[[str | None], FailureCode] = failure_code_for,
) -> StatusResult:
    """A status body in the gateway's terms; ``failure_code`` reads a FAILED one's reason."""
    status = payload.status.strip().upper()
    common: dict[str, Any] = {
        "amount_minor": amount_minor(payload.amount, payload.currency),
        "currency": payload.currency,
        "provider_transaction_id": payload.financial_transaction_id or None,
        "raw": raw,
    }
    if status == "SUCCESSFUL":
        return StatusResult(status=ProviderPaymentStatus.SUCCESSFUL, **common)
    if status == "FAILED":
        return StatusResult(
            status=ProviderPaymentStatus.FAILED,
            failure_code=failure_code(reason_code(payload.reason)),
            failure_message=describe_reason(payload.reason) or "FAILED without a reason",
            **common,
        )
    # PENDING, and anything MTN may add later: never settle money on a status we do not know.
    return StatusResult(status=ProviderPaymentStatus.PENDING, **common)
