"""Amounts as integers in minor units, with ISO 4217 exponents.

Money never travels as a float. The API speaks decimal strings, the database stores integers
in the currency's minor unit, and each provider adapter formats for its own wire at the edge.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 minor units. UGX has none (some old datasets say 2; the current list says 0).
# The region's currencies and the ones its providers settle in, so a provider for a neighbouring
# network needs no change here.
CURRENCY_EXPONENTS: dict[str, int] = {
    "UGX": 0,
    "KES": 2,
    "TZS": 2,
    "RWF": 0,
    "CDF": 2,
    "SSP": 2,
    "ZMW": 2,
    "USD": 2,
    "EUR": 2,
}
# What a zero-decimal currency counts in, so that a refusal can say "a whole number of
# shillings" and the developer sees at once why "12.50" was refused.
_WHOLE_UNITS: dict[str, str] = {"UGX": "shillings"}


class AmountError(ValueError):
    """The amount is not a valid quantity of the currency."""


def currency_exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise AmountError(f"currency {currency!r} is not supported") from None


def amount_hint(currency: str | None) -> str:
    """How an amount of ``currency`` is written, for messages: "a whole number of shillings
    such as 50000". A currency the gateway does not know gets the general decimal form."""
    if currency is not None and CURRENCY_EXPONENTS.get(currency) == 0:
        return f"a whole number of {_WHOLE_UNITS.get(currency, currency)} such as 50000"
    return "a plain decimal number such as 50000 or 12.50"


def _plain_decimal(text: str) -> bool:
    return (
        bool(text)
        and all(ch in "0123456789." for ch in text)
        and text.count(".") <= 1
        and not text.startswith(".")
        and not text.endswith(".")
    )


def parse_amount(value: str | int, currency: str) -> int:
    """Turn an API amount ("50000", 50000, "12.50") into integer minor units.

    Refuses NaN, infinities, exponents, signs other than none, and more decimals than the
    currency has. Each message says how the amount should be written in ``currency``.
    """
    exponent = currency_exponent(currency)
    hint = amount_hint(currency)
    if isinstance(value, bool):  # bool is an int subclass: never an amount
        raise AmountError(f"amount must be {hint}")
    text = value.strip() if isinstance(value, str) else str(value)
    if text.startswith("-") and _plain_decimal(text[1:]):
        raise AmountError(f"amount must be greater than zero: {hint}")
    if not _plain_decimal(text):
        raise AmountError(f"amount must be {hint}")
    try:
        decimal = Decimal(text)
    except InvalidOperation:
        raise AmountError(f"amount must be {hint}") from None
    fraction = text.partition(".")[2]
    if len(fraction.rstrip("0")) > exponent:
        if exponent == 0:
            raise AmountError(f"{currency} has no decimals: {hint}")
        raise AmountError(f"{currency} allows at most {exponent} decimal places: {hint}")
    minor = int(decimal.scaleb(exponent))
    if minor <= 0:
        raise AmountError(f"amount must be greater than zero: {hint}")
    return minor


def format_amount(minor: int, currency: str) -> str:
    """Integer minor units back to the API's decimal string ("50000", "12.50")."""
    exponent = currency_exponent(currency)
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole}.{frac:0{exponent}d}"


def major_units(minor: int, currency: str) -> Decimal:
    """Integer minor units as a Decimal in major units (for limits and provider wires)."""
    return Decimal(minor).scaleb(-currency_exponent(currency))
