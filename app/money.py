"""Amounts as integers in minor units, with ISO 4217 exponents.

Money never travels as a float. The API speaks decimal strings, the database stores integers
in the currency's minor unit, and each provider adapter formats for its own wire at the edge.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 minor units. UGX has none (some old datasets say 2; the current list says 0).
CURRENCY_EXPONENTS: dict[str, int] = {"UGX": 0, "EUR": 2}


class AmountError(ValueError):
    """The amount is not a valid quantity of the currency."""


def currency_exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise AmountError(f"currency {currency!r} is not supported") from None


def parse_amount(value: str | int, currency: str) -> int:
    """Turn an API amount ("50000", 50000, "12.50") into integer minor units.

    Refuses NaN, infinities, exponents, signs other than none, and more decimals than the
    currency has.
    """
    exponent = currency_exponent(currency)
    if isinstance(value, bool):  # bool is an int subclass: never an amount
        raise AmountError("amount must be a decimal string or an integer")
    text = str(value).strip() if isinstance(value, str) else str(value)
    if not text or any(ch not in "0123456789." for ch in text) or text.count(".") > 1:
        raise AmountError("amount must be a plain decimal number such as 50000 or 12.50")
    if text.startswith(".") or text.endswith("."):
        raise AmountError("amount must be a plain decimal number such as 50000 or 12.50")
    try:
        decimal = Decimal(text)
    except InvalidOperation:
        raise AmountError("amount is not a number") from None
    fraction = text.partition(".")[2]
    if len(fraction.rstrip("0")) > exponent:
        if exponent == 0:
            raise AmountError(f"{currency} has no minor unit: send a whole number")
        raise AmountError(f"{currency} allows at most {exponent} decimal places")
    minor = int(decimal.scaleb(exponent))
    if minor <= 0:
        raise AmountError("amount must be greater than zero")
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
