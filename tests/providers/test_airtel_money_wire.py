"""Airtel's JSON and response codes mapped to the gateway's types: pure functions, no HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from app.money import AmountError
from app.providers.airtel_money import wire
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import FailureCode
from tests.providers.conftest import payment_request

F = FailureCode

# The collection code table from Airtel Uganda's error-code page (via the provider notes).
DP_TABLE = [
    ("DP00800001000", wire.AirtelCodeKind.PENDING, None),
    ("DP00800001001", wire.AirtelCodeKind.SUCCESS, None),
    ("DP00800001002", wire.AirtelCodeKind.FAILED, F.INCORRECT_PIN),
    ("DP00800001003", wire.AirtelCodeKind.FAILED, F.LIMIT_EXCEEDED),
    ("DP00800001004", wire.AirtelCodeKind.FAILED, F.INVALID_AMOUNT),
    ("DP00800001005", wire.AirtelCodeKind.FAILED, F.PAYER_TIMEOUT),
    ("DP00800001006", wire.AirtelCodeKind.PENDING, None),
    ("DP00800001007", wire.AirtelCodeKind.FAILED, F.INSUFFICIENT_FUNDS),
    ("DP00800001008", wire.AirtelCodeKind.FAILED, F.REJECTED_BY_PAYER),
    ("DP00800001009", wire.AirtelCodeKind.FAILED, F.NOT_ALLOWED),
    ("DP00800001010", wire.AirtelCodeKind.FAILED, F.NOT_ALLOWED),
    ("DP00800001024", wire.AirtelCodeKind.FAILED, F.PAYER_TIMEOUT),
    ("DP00800001025", wire.AirtelCodeKind.NOT_FOUND, F.NOT_FOUND_AT_PROVIDER),
    ("DP00800001026", wire.AirtelCodeKind.FAILED, F.INVALID_REQUEST),
    ("DP00800001029", wire.AirtelCodeKind.FAILED, F.PAYER_TIMEOUT),
]

ESB_TABLE = [
    ("ESB000010", wire.AirtelCodeKind.SUCCESS, None),
    ("ESB000033", wire.AirtelCodeKind.FAILED, F.PAYER_NOT_FOUND),
    ("ESB000034", wire.AirtelCodeKind.FAILED, F.INVALID_REQUEST),
    ("ESB000035", wire.AirtelCodeKind.FAILED, F.INVALID_REQUEST),
    ("ESB000036", wire.AirtelCodeKind.FAILED, F.INVALID_REQUEST),
    ("ESB000041", wire.AirtelCodeKind.DUPLICATE, None),
    ("ESB000045", wire.AirtelCodeKind.NOT_FOUND, F.NOT_FOUND_AT_PROVIDER),
]


@pytest.mark.parametrize(("code", "kind", "failure"), DP_TABLE + ESB_TABLE)
def test_the_code_table(code: str, kind: wire.AirtelCodeKind, failure: FailureCode | None) -> None:
    entry = wire.AIRTEL_CODES[code]
    assert (entry.kind, entry.failure_code) == (kind, failure)


def envelope(**status: Any) -> wire.AirtelEnvelope | None:
    return wire.parse_envelope({"status": status})


def test_the_duplicate_answer_is_read_as_duplicate_not_ambiguous() -> None:
    # Airtel's duplicate answer, verbatim from the Uganda Postman export.
    answer = wire.decisive_code(
        envelope(
            response_code="DP00800001000",
            code="500",
            success=False,
            result_code="ESB000041",
            message="External Transaction ID already exists.",
        )
    )
    assert answer is not None
    assert answer.entry.kind is wire.AirtelCodeKind.DUPLICATE
    assert answer.describe() == "ESB000041: External Transaction ID already exists."


def test_response_code_wins_over_the_deprecated_result_code() -> None:
    answer = wire.decisive_code(
        envelope(response_code="DP00800001006", result_code="ESB000010", success=True)
    )
    assert answer is not None
    assert answer.code == "DP00800001006"


def test_unknown_codes_decide_nothing() -> None:
    assert wire.decisive_code(envelope(response_code="DP99999", result_code="X")) is None
    assert wire.decisive_code(wire.parse_envelope({"unrelated": 1})) is None
    assert wire.parse_envelope(["not", "an", "object"]) is None


def enquiry(status: str | None, **extra: Any) -> StatusResult | None:
    # Shaped like Airtel's documented enquiry answer (Uganda Postman export).
    transaction: dict[str, Any] = {"id": "8334msn88", "message": "success"}
    if status is not None:
        transaction["status"] = status
    transaction.update(extra.pop("transaction", {}))
    raw = {
        "data": {"transaction": transaction},
        "status": {
            "code": "200",
            "message": "SUCCESS",
            "result_code": "ESB000010",
            "response_code": extra.pop("response_code", "DP00800001006"),
            "success": True,
        },
    }
    parsed = wire.parse_envelope(raw)
    assert parsed is not None
    return wire.enquiry_result(parsed, raw)


def test_ts_is_successful_with_the_airtel_money_id_and_no_amount() -> None:
    result = enquiry("TS", transaction={"airtel_money_id": "C3648.00993.538XX.XX67"})
    assert result is not None
    assert result.status is ProviderPaymentStatus.SUCCESSFUL
    assert result.provider_transaction_id == "C3648.00993.538XX.XX67"
    assert (result.amount_minor, result.currency) == (None, None)


@pytest.mark.parametrize("status", ["TA", "TIP", "tip", "SOMETHING_NEW"])
def test_ambiguous_in_progress_and_unknown_statuses_stay_pending(status: str) -> None:
    result = enquiry(status)
    assert result is not None
    assert result.status is ProviderPaymentStatus.PENDING


def test_te_is_a_payer_timeout() -> None:
    result = enquiry("TE")
    assert result is not None
    assert (result.status, result.failure_code) == (
        ProviderPaymentStatus.FAILED,
        F.PAYER_TIMEOUT,
    )


@pytest.mark.parametrize(
    ("code", "failure"),
    [(code, failure) for code, kind, failure in DP_TABLE if kind is wire.AirtelCodeKind.FAILED],
)
def test_tf_with_a_dp_code_maps_that_code(code: str, failure: FailureCode) -> None:
    result = enquiry("TF", response_code=code, transaction={"message": "Transaction failed"})
    assert result is not None
    assert (result.status, result.failure_code) == (ProviderPaymentStatus.FAILED, failure)
    assert result.failure_message == "TF: Transaction failed"


def test_tf_with_the_code_only_in_the_message_maps_it() -> None:
    result = enquiry("TF", transaction={"message": "DP00800001007 insufficient balance"})
    assert result is not None
    assert result.failure_code is F.INSUFFICIENT_FUNDS


def test_tf_without_a_specific_code_is_a_provider_error() -> None:
    result = enquiry("TF", transaction={"message": "Failed"})
    assert result is not None
    assert (result.status, result.failure_code) == (
        ProviderPaymentStatus.FAILED,
        F.PROVIDER_ERROR,
    )


@pytest.mark.parametrize("code", ["DP00800001025", "ESB000045"])
def test_not_found_codes_without_a_transaction_are_not_found(code: str) -> None:
    field = "response_code" if code.startswith("DP") else "result_code"
    raw = {"status": {field: code, "success": False, "message": "Transaction not found"}}
    parsed = wire.parse_envelope(raw)
    assert parsed is not None
    result = wire.enquiry_result(parsed, raw)
    assert result is not None
    assert result.status is ProviderPaymentStatus.NOT_FOUND


def test_an_answer_without_transaction_or_code_says_nothing() -> None:
    raw = {"status": {"success": False, "message": "?"}}
    parsed = wire.parse_envelope(raw)
    assert parsed is not None
    assert wire.enquiry_result(parsed, raw) is None


@pytest.mark.parametrize(
    ("msisdn", "national"),
    [
        ("256752604392", "752604392"),
        ("0752604392", "752604392"),
        ("752604392", "752604392"),
        ("+256 752 604 392", "752604392"),
        ("25675260439", None),
        ("254712345678", None),
    ],
)
def test_msisdn_is_sent_without_the_country_code(msisdn: str, national: str | None) -> None:
    assert wire.national_msisdn(msisdn) == national


@pytest.mark.parametrize(
    ("order_id", "reference"),
    [
        ("ORD-1001", "ORD1001"),
        ("A1", "A100"),
        ("--", "0000"),
        ("Café #7", "Cafe7"),
        ("x" * 80, "x" * 64),
    ],
)
def test_reference_is_alphanumeric_4_to_64(order_id: str, reference: str) -> None:
    assert wire.sanitize_reference(order_id) == reference


def test_amount_is_a_whole_number_in_major_units() -> None:
    assert wire.whole_amount(50000, "UGX") == 50000
    assert wire.whole_amount(1200, "EUR") == 12
    with pytest.raises(AmountError):
        wire.whole_amount(1250, "EUR")


def test_payment_body_matches_airtel_documented_shape() -> None:
    request = payment_request(reference="ref-123", order_id="ORD-1001", amount_minor=1000)
    body = wire.payment_body(request, country="UG", currency="UGX", msisdn="752604392")
    assert body.model_dump() == {
        "reference": "ORD1001",
        "subscriber": {"country": "UG", "currency": "UGX", "msisdn": "752604392"},
        "transaction": {"amount": 1000, "country": "UG", "currency": "UGX", "id": "ref-123"},
    }


def test_sloppy_types_in_an_answer_do_not_hide_its_code() -> None:
    # Airtel's payment sample carries "id": false; codes may come as numbers.
    parsed = wire.parse_envelope(
        {
            "data": {"transaction": {"id": False, "status": "SUCCESS"}},
            "status": {"code": 200, "response_code": "DP00800001006", "success": "true"},
        }
    )
    assert parsed is not None
    assert parsed.status is not None
    assert parsed.status.success is True
    assert parsed.status.code == "200"
    answer = wire.decisive_code(parsed)
    assert answer is not None
    assert answer.code == "DP00800001006"
