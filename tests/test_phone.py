"""Uganda numbers as the original guide's "Test Phone Number Validation" section lists them."""

from __future__ import annotations

import pytest

from app.payments.domain import Provider
from app.phone import PhoneNumberError, mask, parse_uganda_mobile


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0700123456", "256700123456"),
        ("256700123456", "256700123456"),
        ("+256700123456", "256700123456"),
        ("0750-123-456", "256750123456"),
        ("0772 123 456", "256772123456"),
        (" +256 772 123 456 ", "256772123456"),
    ],
)
def test_guide_formats_normalise(raw, expected):
    assert parse_uganda_mobile(raw).msisdn == expected


@pytest.mark.parametrize(
    "raw",
    [
        "123",
        "",
        "0772",
        "07721234567",
        "+254712345678",
        "254712345678",
        "0772abc456",
        "+2560772123456",
        "0200123456",
        "46733123450",
        "2567721234567",
    ],
)
def test_not_a_ugandan_mobile_number(raw):
    with pytest.raises(PhoneNumberError):
        parse_uganda_mobile(raw)


@pytest.mark.parametrize(
    ("raw", "network"),
    [
        ("0772123456", Provider.MTN_MOMO),
        ("0782123456", Provider.MTN_MOMO),
        ("0762123456", Provider.MTN_MOMO),
        ("0798123456", Provider.MTN_MOMO),  # override: carrier data still says Africell
        ("0700123456", Provider.AIRTEL_MONEY),
        ("0740123456", Provider.AIRTEL_MONEY),
        ("0750123456", Provider.AIRTEL_MONEY),
        ("0710123456", None),  # UTL
    ],
)
def test_network_detection(raw, network):
    assert parse_uganda_mobile(raw).network is network


def test_override_table_wins_over_carrier_data():
    overrides = {"25670": Provider.MTN_MOMO}
    assert parse_uganda_mobile("0700123456", overrides=overrides).network is Provider.MTN_MOMO


def test_mtn_sandbox_numbers_only_when_allowed():
    assert parse_uganda_mobile("46733123450", allow_mtn_sandbox=True).msisdn == "46733123450"
    with pytest.raises(PhoneNumberError):
        parse_uganda_mobile("46733123450")


def test_mask_keeps_only_the_ends():
    assert mask("256772123456") == "2567*****456"
