"""Airtel Money collections (USSD push) and refunds: everything the gateway knows of Airtel is in
this folder, named by ``SPEC``."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from app.providers.airtel_money.adapter import AirtelMoneyCollection
from app.providers.airtel_money.callback import parse_airtel_callback
from app.providers.airtel_money.callback_hash import verify_airtel_hash
from app.providers.airtel_money.openapi import AIRTEL_CALLBACK_EXAMPLES, AIRTEL_CALLBACK_SCHEMA
from app.providers.airtel_money.refunds import AirtelMoneyRefunds
from app.providers.airtel_money.settings import AirtelMoneySettings
from app.providers.spec import CallbackRoute, ProviderSpec, RefundSupport
from app.vocabulary import CallbackRejection, Provider

logger = logging.getLogger(__name__)


def _check_hash(
    settings: AirtelMoneySettings, raw_body: bytes, _headers: Mapping[str, str]
) -> CallbackRejection | None:
    # With callback authentication on in Airtel's portal, every callback carries a hash.
    if settings.webhook_secret is None:
        return None
    variant = verify_airtel_hash(raw_body, settings.webhook_secret.get_secret_value().encode())
    if variant is None:
        return CallbackRejection.BAD_SIGNATURE
    logger.info("Airtel callback hash matched over %s", variant)
    return None


def _refunds_configured(settings: AirtelMoneySettings) -> bool:
    # Refunds use the collection credentials.
    return settings.configured


# The full amount, once, by the payment's airtel_money_id; the reply is the only answer there is.
REFUNDS = RefundSupport(
    build=AirtelMoneyRefunds.from_settings,
    configured=_refunds_configured,
    partial=False,
    status_readable=False,
    needs_transaction_id=True,
)

SPEC = ProviderSpec(
    name=Provider.AIRTEL_MONEY,
    title="Airtel Money",
    settings=AirtelMoneySettings,
    build=AirtelMoneyCollection.from_settings,
    carrier_names=("airtel",),
    callback_routes=(
        CallbackRoute(
            path="/airtel-money/",
            operation="airtel_callback",
            summary="Airtel Money callback",
            description="Airtel posts to the one URL registered in its portal; "
            "`transaction.id` is ours.",
        ),
    ),
    parse_callback=parse_airtel_callback,
    check_signature=_check_hash,
    callback_schema=AIRTEL_CALLBACK_SCHEMA,
    callback_examples=AIRTEL_CALLBACK_EXAMPLES,
    refunds=REFUNDS,
)

__all__ = ["SPEC", "AirtelMoneyCollection", "AirtelMoneyRefunds", "AirtelMoneySettings"]
