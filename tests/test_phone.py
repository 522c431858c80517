"""Uganda numbers as the original guide's "Test Phone Number Validation" section lists them."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.payments.validation import PaymentRules
from app.phone import PhoneNumberError, mask, parse_uganda_mobile
from app.vocabulary import Provider


def rules(**settings: object) -> PaymentRules:
    """The registered providers' number tables (MTN, Airtel), as the gateway builds them."""
    return PaymentRules.from_settings(Settings(_env_file=None, **settings))


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
    assert parse_uganda_mobile(raw, rules().networks).network == network


def test_nothing_is_detected_without_the_providers_tables():
    assert parse_uganda_mobile("0772123456").network is None


def test_the_operators_override_table_wins_over_carrier_data():
    networks = rules(network_prefix_overrides="25670=mtn_momo").networks
    assert parse_uganda_mobile("0700123456", networks).network == Provider.MTN_MOMO


def test_mtn_sandbox_numbers_only_in_the_sandbox_and_not_for_airtel():
    sandbox = rules(mtn_momo_target_env="sandbox")
    taken = parse_uganda_mobile("46733123450", test_numbers=sandbox.test_numbers(None))
    assert (taken.msisdn, taken.network) == ("46733123450", Provider.MTN_MOMO)
    for test_numbers in (
        sandbox.test_numbers(Provider.AIRTEL_MONEY),
        rules(mtn_momo_target_env="mtnuganda").test_numbers(None),
    ):
        with pytest.raises(PhoneNumberError):
            parse_uganda_mobile("46733123450", test_numbers=test_numbers)


def test_mask_keeps_only_the_ends():
    assert mask("256772123456") == "2567*****456"
