"""Uganda mobile numbers: parse every format a shopper types, normalise, find the network.

Numbers are stored and sent as ``2567XXXXXXXX`` (12 digits). The network comes from
libphonenumber's carrier data (``phonenumbers``), corrected by an override table because Ugandan
ranges get reassigned faster than that data follows (MTN took over 079 after Africell left).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, carrier

from app.payments.domain import Provider

UGANDA_COUNTRY_CODE = 256

# Ranges whose carrier data lags reality. Longest matching prefix wins; settings add more.
DEFAULT_PREFIX_OVERRIDES: Mapping[str, Provider] = {
    "25679": Provider.MTN_MOMO,  # 0798/0799 still tagged Africell, which left in 2021
}

_CARRIER_PROVIDERS: Mapping[str, Provider] = {
    "mtn": Provider.MTN_MOMO,
    "airtel": Provider.AIRTEL_MONEY,
}

# MTN's sandbox payer numbers (46733123450 … 46733123463 and neighbours): only in the sandbox.
MTN_SANDBOX_NUMBER = re.compile(r"46733123\d{3}")

_SEPARATORS = re.compile(r"[\s\-().]")


class PhoneNumberError(ValueError):
    """Not a Ugandan mobile number."""


@dataclass(frozen=True)
class UgandaMobile:
    msisdn: str  # 2567XXXXXXXX, or an MTN sandbox number as given
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
    *,
    overrides: Mapping[str, Provider] | None = None,
    allow_mtn_sandbox: bool = False,
) -> UgandaMobile:
    if not isinstance(raw, str) or len(raw) > 32:
        raise PhoneNumberError("phone number must be a string such as 0772123456")
    compact = _SEPARATORS.sub("", raw.strip())
    if allow_mtn_sandbox and MTN_SANDBOX_NUMBER.fullmatch(compact):
        return UgandaMobile(msisdn=compact, network=Provider.MTN_MOMO)

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
    return UgandaMobile(msisdn=digits, network=detect_network(parsed, digits, overrides))


def detect_network(
    parsed: phonenumbers.PhoneNumber, digits: str, overrides: Mapping[str, Provider] | None
) -> Provider | None:
    table = {**DEFAULT_PREFIX_OVERRIDES, **(overrides or {})}
    for length in range(len(digits), 3, -1):
        provider = table.get(digits[:length])
        if provider is not None:
            return provider
    name = carrier.name_for_number(parsed, "en").strip().lower()
    for carrier_name, provider in _CARRIER_PROVIDERS.items():
        if name.startswith(carrier_name):
            return provider
    return None
