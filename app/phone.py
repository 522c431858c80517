"""Uganda mobile numbers: parse every format a shopper types, normalise, find the network.

Numbers are stored and sent as ``2567XXXXXXXX`` (12 digits). The network comes from
libphonenumber's carrier data (``phonenumbers``) and prefix tables, both given by the registered
providers (``Networks``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import PhoneNumberType, carrier

from app.vocabulary import Provider

UGANDA_COUNTRY_CODE = 256


@dataclass(frozen=True)
class Networks:
    """Which provider serves which numbers, as the registered providers say.

    ``prefixes`` (``"25679"`` → a provider; the longest matching prefix wins) come first, since
    Ugandan ranges get reassigned faster than the carrier data follows; then ``carriers``, the
    lower-case start of libphonenumber's carrier name (``"mtn"`` → a provider).
    """

    prefixes: Mapping[str, Provider] = field(default_factory=dict)
    carriers: Mapping[str, Provider] = field(default_factory=dict)


_SEPARATORS = re.compile(r"[\s\-().]")


class PhoneNumberError(ValueError):
    """Not a Ugandan mobile number."""


@dataclass(frozen=True)
class UgandaMobile:
    msisdn: str  # 2567XXXXXXXX, or a provider's test number as given
    network: Provider | None  # None: a valid number that no supported provider serves

    @property
    def national(self) -> str:
        """The 9 digits after 256, as Airtel wants them."""
        return self.msisdn[3:]


def mask(msisdn: str) -> str:
    """``256772123456`` → ``2567*****456``, for logs."""
    if len(msisdn) < 8:
        return "*" * len(msisdn)
    return msisdn[:4] + "*" * (len(msisdn) - 7) + msisdn[-3:]


def parse_uganda_mobile(
    raw: str,
    networks: Networks | None = None,
    *,
    test_numbers: Sequence[tuple[re.Pattern[str], Provider]] = (),
) -> UgandaMobile:
    """``test_numbers``: numbers a provider's test environment takes as they are (MTN's sandbox
    payers), each with that provider."""
    if not isinstance(raw, str) or len(raw) > 32:
        raise PhoneNumberError("phone number must be a string such as 0772123456")
    compact = _SEPARATORS.sub("", raw.strip())
    for pattern, provider in test_numbers:
        if pattern.fullmatch(compact):
            return UgandaMobile(msisdn=compact, network=provider)

    if compact.startswith("+"):
        digits = compact[1:]
        if not digits.startswith("256"):
            raise PhoneNumberError("only Ugandan (+256) mobile numbers are accepted")
    elif compact.startswith("256") and len(compact) == 12:
        digits = compact
    elif compact.startswith("0") and len(compact) == 10:
        digits = "256" + compact[1:]
    else:
        raise PhoneNumberError(
            "use a Ugandan mobile number such as 0772123456, 256772123456 or +256772123456"
        )
    if not digits.isdigit() or len(digits) != 12:
        raise PhoneNumberError("a Ugandan mobile number has 9 digits after 256")

    parsed = phonenumbers.parse("+" + digits)
    if parsed.country_code != UGANDA_COUNTRY_CODE or not phonenumbers.is_valid_number(parsed):
        raise PhoneNumberError("not a valid Ugandan phone number")
    if phonenumbers.number_type(parsed) not in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise PhoneNumberError("not a mobile number: mobile money needs a 07XX number")
    return UgandaMobile(
        msisdn=digits, network=detect_network(parsed, digits, networks or Networks())
    )


def detect_network(
    parsed: phonenumbers.PhoneNumber, digits: str, networks: Networks
) -> Provider | None:
    for length in range(len(digits), 3, -1):
        provider = networks.prefixes.get(digits[:length])
        if provider is not None:
            return provider
    name = carrier.name_for_number(parsed, "en").strip().lower()
    for carrier_name, provider in networks.carriers.items():
        if name.startswith(carrier_name):
            return provider
    return None
