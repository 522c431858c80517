"""Airtel Money Open API JSON and response codes, with pure conversions to domain types.

No HTTP and no logging here: the adapter decides what to send and what an answer means for the
payment; the wire tests hold these conversions to the shapes Airtel documents.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from app.money import AmountError, major_units
from app.providers.base import PaymentRequest, ProviderPaymentStatus, StatusResult
from app.vocabulary import FailureCode


def _text_or_none(value: object) -> object:
    # Airtel's own samples are sloppy ("id": false, numeric codes): a stray type in a field we
    # only read must not throw away the codes that decide the answer.
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) else None


def _flag_or_none(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


LenientText = Annotated[str | None, BeforeValidator(_text_or_none)]
LenientFlag = Annotated[bool | None, BeforeValidator(_flag_or_none)]


class _AirtelModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AirtelToken(_AirtelModel):
    access_token: str = Field(min_length=1)
    expires_in: int | float | str | None = None  # "180" in Airtel's own samples
    token_type: str | None = None


class AirtelSubscriber(_AirtelModel):
    country: str
    currency: str
    msisdn: str  # national number, no 256 ("Do not send country code in msisdn")


class AirtelPushTransaction(_AirtelModel):
    amount: int
    country: str
    currency: str
    id: str


class AirtelPaymentRequest(_AirtelModel):
    reference: str
    subscriber: AirtelSubscriber
    transaction: AirtelPushTransaction


class AirtelStatus(_AirtelModel):
    code: LenientText = None
    message: LenientText = None
    result_code: LenientText = None  # ESB…, deprecated in favour of response_code
    response_code: LenientText = None  # DP…
    success: LenientFlag = None


class AirtelTransaction(_AirtelModel):
    id: LenientText = None
    status: LenientText = None  # SUCCESS on a push; TS/TF/TA/TIP/TE on an enquiry
    message: LenientText = None
    airtel_money_id: LenientText = None


class AirtelData(_AirtelModel):
    transaction: AirtelTransaction | None = None


class AirtelEnvelope(_AirtelModel):
    data: AirtelData | None = None
    status: AirtelStatus | None = None


class AirtelCodeKind(StrEnum):
    SUCCESS = "success"
    PENDING = "pending"  # enquire later; never push again
    FAILED = "failed"
    NOT_FOUND = "not_found"
    DUPLICATE = "duplicate"  # our transaction.id already exists: an earlier push landed


@dataclass(frozen=True)
class AirtelCode:
    meaning: str
    kind: AirtelCodeKind
    failure_code: FailureCode | None = None
    # A mistake on our side (headers, country, signature): an operator must look.
    configuration: bool = False


def _success(meaning: str) -> AirtelCode:
    return AirtelCode(meaning, AirtelCodeKind.SUCCESS)


def _pending(meaning: str) -> AirtelCode:
    return AirtelCode(meaning, AirtelCodeKind.PENDING)


def _failed(meaning: str, code: FailureCode, *, configuration: bool = False) -> AirtelCode:
    return AirtelCode(meaning, AirtelCodeKind.FAILED, code, configuration)


def _not_found(meaning: str) -> AirtelCode:
    return AirtelCode(meaning, AirtelCodeKind.NOT_FOUND, FailureCode.NOT_FOUND_AT_PROVIDER)


# Collection response codes (DP008000010xx) as Airtel Uganda documents them, then the legacy
# ESB result codes and the gateway's ROUTER codes (from microvault's errors.go).
AIRTEL_CODES: dict[str, AirtelCode] = {
    "DP00800001000": _pending("Ambiguous: still processing, enquire"),
    "DP00800001001": _success("Success"),
    "DP00800001002": _failed("Incorrect PIN", FailureCode.INCORRECT_PIN),
    "DP00800001003": _failed("Exceeds withdrawal amount limit", FailureCode.LIMIT_EXCEEDED),
    "DP00800001004": _failed("Invalid amount (below the minimum)", FailureCode.INVALID_AMOUNT),
    "DP00800001005": _failed(
        "Transaction ID is invalid (user didn't enter the PIN)", FailureCode.PAYER_TIMEOUT
    ),
    "DP00800001006": _pending("In process: check later"),
    "DP00800001007": _failed("Not enough balance", FailureCode.INSUFFICIENT_FUNDS),
    "DP00800001008": _failed("Refused", FailureCode.REJECTED_BY_PAYER),
    "DP00800001009": _failed("Do not honor", FailureCode.NOT_ALLOWED),
    "DP00800001010": _failed(
        "Transaction not permitted to payee (churned, barred or unregistered)",
        FailureCode.NOT_ALLOWED,
    ),
    "DP00800001024": _failed("Transaction timed out", FailureCode.PAYER_TIMEOUT),
    "DP00800001025": _not_found("Transaction not found"),
    "DP00800001026": _failed(
        "Forbidden: x-signature and payload did not match",
        FailureCode.INVALID_REQUEST,
        configuration=True,
    ),
    "DP00800001029": _failed("Transaction expired", FailureCode.PAYER_TIMEOUT),
    "ESB000001": _pending("Processing (legacy code)"),
    "ESB000004": _pending("Processing (legacy code)"),
    "ESB000008": _pending("Processing (legacy code)"),
    "ESB000010": _success("Success (legacy code)"),
    "ESB000014": _pending("Processing (legacy code)"),
    "ESB000033": _failed("Invalid MSISDN", FailureCode.PAYER_NOT_FOUND),
    "ESB000034": _failed("Invalid country", FailureCode.INVALID_REQUEST, configuration=True),
    "ESB000035": _failed("Invalid currency", FailureCode.INVALID_REQUEST, configuration=True),
    "ESB000036": _failed("Invalid request", FailureCode.INVALID_REQUEST),
    "ESB000041": AirtelCode("External transaction ID already exists", AirtelCodeKind.DUPLICATE),
    "ESB000045": _not_found("No transaction found"),
    "ROUTER001": _failed("Wallet not configured", FailureCode.NOT_ALLOWED, configuration=True),
    "ROUTER003": _failed("Missing header", FailureCode.INVALID_REQUEST, configuration=True),
    "ROUTER005": _failed("Country route missing", FailureCode.INVALID_REQUEST, configuration=True),
    "ROUTER006": _failed("Country route invalid", FailureCode.INVALID_REQUEST, configuration=True),
    "ROUTER007": _failed("Country route denied", FailureCode.NOT_ALLOWED, configuration=True),
    "ROUTER112": _failed("Bad currency", FailureCode.INVALID_REQUEST, configuration=True),
    "ROUTER114": _failed("PIN validation failed", FailureCode.INCORRECT_PIN),
    "ROUTER115": _failed("Wrong PIN", FailureCode.INCORRECT_PIN),
    "ROUTER116": _failed("Encrypted PIN invalid", FailureCode.INCORRECT_PIN),
    "ROUTER117": _pending("Timed out: enquire"),
    "ROUTER119": _failed("Missing currency", FailureCode.INVALID_REQUEST, configuration=True),
}

# The normal answer to a push: the prompt is on the payer's phone, the result comes later.
IN_PROCESS = "DP00800001006"

# "Transaction timed out" in answer to the push itself does not say the prompt expired on the
# payer's phone: it may be Airtel's own backend timing out while the push goes ahead (microvault
# treats it as pending). Failing the payment then could fail money that moves; the enquiry
# settles it instead. In an enquiry's TF it does mean payer_timeout.
AMBIGUOUS_AT_PUSH = frozenset({"DP00800001024"})

KNOWN_ENQUIRY_STATUSES = frozenset({"TS", "TF", "TE", "TA", "TIP"})

_DP_CODE = re.compile(r"\bDP\d{11}\b")


@dataclass(frozen=True)
class AirtelAnswer:
    """The one code that decides an Airtel answer, and the text that came with it."""

    code: str
    entry: AirtelCode
    message: str

    def describe(self) -> str:
        return f"{self.code}: {self.message or self.entry.meaning}"[:255]


def parse_envelope(payload: Any) -> AirtelEnvelope | None:
    if not isinstance(payload, dict):
        return None
    try:
        return AirtelEnvelope.model_validate(payload)
    except ValidationError:
        return None


def decisive_code(envelope: AirtelEnvelope | None) -> AirtelAnswer | None:
    """The known code in ``status``, if any.

    The duplicate answer pairs ``ESB000041`` with ``DP00800001000`` ("ambiguous"), so the
    duplicate is looked for first; otherwise the current ``response_code`` wins over the
    deprecated ``result_code``.
    """
    if envelope is None or envelope.status is None:
        return None
    status = envelope.status
    fields = (status.response_code, status.result_code, status.code)
    known = [code.strip() for code in fields if code and code.strip() in AIRTEL_CODES]
    if not known:
        return None
    duplicate = [code for code in known if AIRTEL_CODES[code].kind is AirtelCodeKind.DUPLICATE]
    code = duplicate[0] if duplicate else known[0]
    return AirtelAnswer(code, AIRTEL_CODES[code], status.message or "")


def national_msisdn(msisdn: str) -> str | None:
    """Airtel's 9-digit national number from ``2567XXXXXXXX`` (or ``07…``, ``7…``)."""
    digits = "".join(ch for ch in msisdn if ch.isdigit())
    if len(digits) == 12 and digits.startswith("256"):
        digits = digits[3:]
    elif len(digits) == 10 and digits.startswith("0"):
        digits = digits[1:]
    return digits if len(digits) == 9 else None


REFERENCE_MIN, REFERENCE_MAX = 4, 64


def sanitize_reference(order_id: str) -> str:
    """Airtel's ``reference``: alphanumeric, 4-64 characters."""
    ascii_text = unicodedata.normalize("NFKD", order_id).encode("ascii", "ignore").decode("ascii")
    cleaned = "".join(ch for ch in ascii_text if ch.isalnum())[:REFERENCE_MAX]
    return cleaned.ljust(REFERENCE_MIN, "0")


def whole_amount(amount_minor: int, currency: str) -> int:
    """The amount as Airtel's integer in major units. Raises ``AmountError`` for a fraction."""
    major = major_units(amount_minor, currency)
    if major != major.to_integral_value():
        raise AmountError(f"Airtel takes whole {currency} amounts, not {major}")
    return int(major.to_integral_value())


def payment_body(
    request: PaymentRequest, *, country: str, currency: str, msisdn: str
) -> AirtelPaymentRequest:
    return AirtelPaymentRequest(
        reference=sanitize_reference(request.order_id),
        subscriber=AirtelSubscriber(country=country, currency=currency, msisdn=msisdn),
        transaction=AirtelPushTransaction(
            amount=whole_amount(request.amount_minor, request.currency),
            country=country,
            currency=currency,
            id=request.reference,
        ),
    )


def _failure_of_failed(transaction: AirtelTransaction, answer: AirtelAnswer | None) -> FailureCode:
    if answer is not None and answer.entry.kind is AirtelCodeKind.FAILED:
        return answer.entry.failure_code or FailureCode.PROVIDER_ERROR
    match = _DP_CODE.search(transaction.message or "")
    if match:
        entry = AIRTEL_CODES.get(match.group(0))
        if entry is not None and entry.kind is AirtelCodeKind.FAILED and entry.failure_code:
            return entry.failure_code
    return FailureCode.PROVIDER_ERROR


def enquiry_result(envelope: AirtelEnvelope, raw: dict[str, Any]) -> StatusResult | None:
    """The enquiry's meaning, decided by ``data.transaction.status`` (the sample pairs TS with
    DP…1006, so ``response_code`` alone would mislead). None when the answer has no transaction
    and no not-found code: such an answer says nothing about the payment.

    Airtel's enquiry reports no amount: ``amount_minor`` stays None.
    """
    answer = decisive_code(envelope)
    transaction = envelope.data.transaction if envelope.data else None
    status = (transaction.status or "").strip().upper() if transaction else ""
    if transaction is None or not status:
        if answer is not None and answer.entry.kind is AirtelCodeKind.NOT_FOUND:
            return StatusResult(
                status=ProviderPaymentStatus.NOT_FOUND,
                failure_code=FailureCode.NOT_FOUND_AT_PROVIDER,
                failure_message=answer.describe(),
                raw=raw,
            )
        return None
    if status == "TS":
        return StatusResult(
            status=ProviderPaymentStatus.SUCCESSFUL,
            provider_transaction_id=transaction.airtel_money_id or None,
            raw=raw,
        )
    if status == "TF":
        code = _failure_of_failed(transaction, answer)
        message = transaction.message or (answer.describe() if answer else None)
        return StatusResult(
            status=ProviderPaymentStatus.FAILED,
            failure_code=code,
            failure_message=f"TF: {message}"[:255] if message else "TF",
            provider_transaction_id=transaction.airtel_money_id or None,
            raw=raw,
        )
    if status == "TE":
        return StatusResult(
            status=ProviderPaymentStatus.FAILED,
            failure_code=FailureCode.PAYER_TIMEOUT,
            failure_message=f"TE: {transaction.message or 'transaction expired'}"[:255],
            raw=raw,
        )
    # TA (ambiguous), TIP (in progress), and anything undocumented: keep asking.
    return StatusResult(status=ProviderPaymentStatus.PENDING, raw=raw)
