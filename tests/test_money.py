from __future__ import annotations

import pytest

from app.money import AmountError, format_amount, parse_amount


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("50000", "UGX", 50000),
        (50000, "UGX", 50000),
        ("1000.00", "UGX", 1000),
        ("12.5", "EUR", 1250),
        ("12.50", "EUR", 1250),
        ("7", "EUR", 700),
    ],
)
def test_parse(value, currency, minor):
    assert parse_amount(value, currency) == minor


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("1000.5", "UGX"),
        ("12.345", "EUR"),
        ("0", "UGX"),
        ("-5", "UGX"),
        ("1e3", "UGX"),
        ("NaN", "UGX"),
        ("", "UGX"),
        (".5", "EUR"),
        ("5.", "EUR"),
        (True, "UGX"),
        ("1,000", "UGX"),
        ("100", "XYZ"),
    ],
)
def test_refused(value, currency):
    with pytest.raises(AmountError):
        parse_amount(value, currency)


def test_format_round_trips():
    assert format_amount(50000, "UGX") == "50000"
    assert format_amount(1250, "EUR") == "12.50"
    assert parse_amount(format_amount(1205, "EUR"), "EUR") == 1205
