"""From a storefront's request to a payment the gateway is willing to make.

Pure checks, in the order a developer would fix them: phone number, provider, currency, amount.
Each failure is a 422 with a stable code and the field at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.errors import field_error
from app.money import AmountError, major_units, parse_amount
from app.payments.schemas import CreatePaymentRequest
from app.phone import Networks, PhoneNumberError, parse_uganda_mobile
from app.providers import registry
from app.vocabulary import Provider

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


@dataclass(frozen=True, kw_only=True)
class ProviderRule:
    configured: bool
    currency: str
    test_numbers: re.Pattern[str] | None  # taken as they are (a sandbox's payers)


@dataclass(frozen=True, kw_only=True)
class PaymentRules:
    """What a new payment is checked against: the settings and the registered providers, read
    once when the process starts rather than on every request."""

    networks: Networks
    providers: Mapping[Provider, ProviderRule]
    min_amount: int
    max_amount: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PaymentRules:
        prefixes: dict[str, Provider] = {}
        carriers: dict[str, Provider] = {}
        providers: dict[Provider, ProviderRule] = {}
        for spec in registry.registered():
            prefixes.update(dict.fromkeys(spec.number_prefixes, spec.name))
            carriers.update(dict.fromkeys(spec.carrier_names, spec.name))
            block = spec.settings_from(settings)
            providers[spec.name] = ProviderRule(
                configured=block.configured,
                currency=block.currency,
                test_numbers=spec.test_numbers(block),
            )
        prefixes.update(settings.prefix_overrides)  # the operator's table wins
        return cls(
            networks=Networks(prefixes=prefixes, carriers=carriers),
            providers=providers,
            min_amount=settings.min_amount,
            max_amount=settings.max_amount,
        )

    def test_numbers(self, asked: Provider | None) -> list[tuple[re.Pattern[str], Provider]]:
        return [
            (rule.test_numbers, name)
            for name, rule in self.providers.items()
            if rule.test_numbers is not None and asked in (None, name)
        ]


def validate_new_payment(body: CreatePaymentRequest, rules: PaymentRules) -> NewPayment:
    asked = Provider(body.provider) if body.provider is not None else None
    try:
        mobile = parse_uganda_mobile(
            body.phone_number, rules.networks, test_numbers=rules.test_numbers(asked)
        )
    except PhoneNumberError as exc:
        raise field_error("invalid_phone_number", "phone_number", str(exc)) from None

    if mobile.network is None or mobile.network not in rules.providers:
        networks = " or ".join(spec.title for spec in registry.registered())
        raise field_error(
            "unsupported_network",
            "phone_number",
            f"this number is not on {networks}, so it cannot pay with mobile money here",
        )
    provider = asked or mobile.network
    if provider != mobile.network:
        raise field_error(
            "provider_mismatch",
            "provider",
            f"the number is on {mobile.network.value}, not {provider.value}",
        )
    rule = rules.providers[provider]
    if not rule.configured:
        raise field_error(
            "provider_not_configured",
            "provider",
            f"{provider.value} is not configured on this gateway",
        )

    if body.currency != rule.currency:
        raise field_error(
            "unsupported_currency",
            "currency",
            f"{provider.value} payments here are in {rule.currency}",
        )

    try:
        amount_minor = parse_amount(body.amount, body.currency)
    except AmountError as exc:
        raise field_error("invalid_amount", "amount", str(exc)) from None
    amount = major_units(amount_minor, body.currency)
    if amount < rules.min_amount or amount > rules.max_amount:
        raise field_error(
            "amount_out_of_range",
            "amount",
            f"amount must be between {rules.min_amount} and {rules.max_amount} {body.currency}",
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
