"""From a storefront's request to a payment the gateway is willing to make.

Pure checks, in the order a developer would fix them: phone number, provider, currency, amount.
Each failure is a 422 with a stable code and the field at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.errors import field_error
from app.money import AmountError, major_units, parse_amount
from app.payments.domain import Provider
from app.payments.schemas import CreatePaymentRequest
from app.phone import PhoneNumberError, parse_uganda_mobile

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, kw_only=True)
class NewPayment:
    order_id: str
    amount_minor: int
    currency: str
    msisdn: str
    provider: Provider
    description: str
    metadata: dict[str, Any]


def provider_currency(settings: Settings, provider: Provider) -> str:
    if provider is Provider.MTN_MOMO:
        return settings.mtn_momo_currency
    return settings.airtel_money_currency


def validate_new_payment(body: CreatePaymentRequest, settings: Settings) -> NewPayment:
    try:
        mobile = parse_uganda_mobile(
            body.phone_number,
            overrides=settings.prefix_overrides,
            allow_mtn_sandbox=settings.mtn_sandbox and body.provider is not Provider.AIRTEL_MONEY,
        )
    except PhoneNumberError as exc:
        raise field_error("invalid_phone_number", "phone_number", str(exc)) from None

    if mobile.network is None:
        raise field_error(
            "unsupported_network",
            "phone_number",
            "this number is not on MTN or Airtel, so it cannot pay with mobile money here",
        )
    provider = body.provider or mobile.network
    if provider is not mobile.network:
        raise field_error(
            "provider_mismatch",
            "provider",
            f"the number is on {mobile.network.value}, not {provider.value}",
        )
    if not settings.provider_configured(provider):
        raise field_error(
            "provider_not_configured",
            "provider",
            f"{provider.value} is not configured on this gateway",
        )

    accepted_currency = provider_currency(settings, provider)
    if body.currency != accepted_currency:
        raise field_error(
            "unsupported_currency",
            "currency",
            f"{provider.value} payments here are in {accepted_currency}",
        )

    try:
        amount_minor = parse_amount(body.amount, body.currency)
    except AmountError as exc:
        raise field_error("invalid_amount", "amount", str(exc)) from None
    amount = major_units(amount_minor, body.currency)
    if amount < settings.min_amount or amount > settings.max_amount:
        raise field_error(
            "amount_out_of_range",
            "amount",
            f"amount must be between {settings.min_amount} and {settings.max_amount} "
            f"{body.currency}",
        )

    description = body.description if body.description is not None else f"Order {body.order_id}"
    if _CONTROL_CHARACTERS.search(description):
        raise field_error(
            "validation_error", "description", "description must not contain control characters"
        )
    return NewPayment(
        order_id=body.order_id,
        amount_minor=amount_minor,
        currency=body.currency,
        msisdn=mobile.msisdn,
        provider=provider,
        description=description.strip() or f"Order {body.order_id}",
        metadata=body.metadata,
    )
