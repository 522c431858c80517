"""The receipt's text: a merchant's template with ``{amount}``, ``{merchant}``, ``{order}`` and
``{ref}``, checked when it is set so that it always fits one plain SMS.

One SMS is 160 characters of the GSM 03.38 basic set; a single character outside it (an emoji,
a curly quote) turns the whole message into UCS-2, where one SMS holds only 70. So a template
is refused unless it keeps to that set and, filled with long values, stays within 160.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from app.money import currency_exponent, major_units

DEFAULT_TEMPLATE = "Payment of {amount} to {merchant} received. Order {order}. Ref {ref}"
SMS_MAX_CHARACTERS = 160
PLACEHOLDERS = ("amount", "merchant", "order", "ref")

# GSM 03.38 basic character set (without the escape to its extension table, whose characters,
# such as { } [ ] ~ and €, each cost two).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

# The longest values a receipt is expected to carry, for the length check when a template is set.
_LONGEST_AMOUNT = "UGX 5,000,000"
_LONG_ORDER = "O" * 20
_LONG_REF = "R" * 24
# What a merchant is shown as an example of its receipt.
EXAMPLE_AMOUNT = "UGX 50,000"
EXAMPLE_ORDER = "ORD-1001"
EXAMPLE_REF = "MP210603.1234.L06941"


class InvalidSmsTemplate(ValueError):
    """The template cannot be used; the message says why."""


@dataclass(frozen=True)
class ReceiptValues:
    amount: str
    merchant: str
    order: str
    ref: str


def display_amount(minor: int, currency: str) -> str:
    """``5000000, "UGX"`` → ``"UGX 5,000,000"``; decimals as the currency has them."""
    exponent = currency_exponent(currency)
    return f"{currency} {major_units(minor, currency):,.{exponent}f}"


def _parts(template: str) -> list[tuple[str, str | None]]:
    """(literal text, placeholder or None) pairs. Rendering walks these itself instead of
    calling ``str.format``, so a template can never reach attributes (``{merchant.__class__}``)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise InvalidSmsTemplate(
            "unbalanced { or } in the template: placeholders are written {amount}"
        ) from None
    parts: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            written = "{" + field + (f"!{conversion}" if conversion else "")
            written += (f":{spec}" if spec else "") + "}"
            allowed = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            raise InvalidSmsTemplate(f"unknown placeholder {written}: use {allowed}")
        parts.append((literal, field))
    return parts


def fill(template: str, values: ReceiptValues) -> str:
    by_name = {
        "amount": values.amount,
        "merchant": values.merchant,
        "order": values.order,
        "ref": values.ref,
    }
    parts = _parts(template)
    return "".join(literal + (by_name[field] if field else "") for literal, field in parts)


def validate_template(template: str, merchant_name: str) -> str:
    """The template, if it has only known placeholders, only GSM-7 basic characters outside
    them, and fits one SMS once filled with the longest expected values."""
    if not template.strip():
        raise InvalidSmsTemplate("the template is empty")
    parts = _parts(template)
    outside = sorted({ch for literal, _ in parts for ch in literal if ch not in GSM7_BASIC})
    if outside:
        shown = " ".join(repr(ch) for ch in outside[:5])
        raise InvalidSmsTemplate(
            f"the template has characters outside the GSM-7 basic set ({shown}), which would "
            f"make one SMS hold 70 characters instead of {SMS_MAX_CHARACTERS}"
        )
    longest = fill(template, ReceiptValues(_LONGEST_AMOUNT, merchant_name, _LONG_ORDER, _LONG_REF))
    if len(longest) > SMS_MAX_CHARACTERS:
        raise InvalidSmsTemplate(
            f"the template is {len(longest)} characters once filled with a large amount, a "
            f"20-character order id and a 24-character ref; one SMS holds {SMS_MAX_CHARACTERS}"
        )
    return template


def example(template: str, merchant_name: str) -> str:
    return fill(template, ReceiptValues(EXAMPLE_AMOUNT, merchant_name, EXAMPLE_ORDER, EXAMPLE_REF))


def render(template: str | None, values: ReceiptValues) -> str:
    """The message to send: a longer order id than the check assumed is cut, not split over
    two SMS."""
    return fill(template or DEFAULT_TEMPLATE, values)[:SMS_MAX_CHARACTERS]
