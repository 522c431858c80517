"""MTN MoMo: Collection (request-to-pay) and, for refunds, Disbursement. Everything the gateway
knows of MTN is in this folder, named by ``SPEC``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.callback_tokens import per_payment_url
from app.providers.mtn_momo.adapter import MtnMomoCollection
from app.providers.mtn_momo.callback import parse_mtn_callback
from app.providers.mtn_momo.openapi import MTN_CALLBACK_EXAMPLES, MTN_CALLBACK_SCHEMA
from app.providers.mtn_momo.refunds import MtnMomoDisbursement
from app.providers.mtn_momo.settings import MtnMomoSettings
from app.providers.mtn_momo.signature import verify_hex_signature
from app.providers.spec import CallbackRoute, ProviderSpec, RefundSupport
from app.vocabulary import CallbackRejection, Provider

# MTN's sandbox payer numbers (46733123450 … 46733123463 and neighbours): only in the sandbox.
SANDBOX_NUMBERS = re.compile(r"46733123\d{3}")


def _sandbox_numbers(settings: MtnMomoSettings) -> re.Pattern[str] | None:
    return SANDBOX_NUMBERS if settings.sandbox else None


def _check_signature(
    settings: MtnMomoSettings, raw_body: bytes, headers: Mapping[str, str]
) -> CallbackRejection | None:
    if settings.webhook_secret is None:
        return None
    signature = headers.get("x-signature")
    if signature is None:
        return CallbackRejection.MISSING_SIGNATURE
    key = settings.webhook_secret.get_secret_value().encode()
    if not verify_hex_signature(raw_body, signature, key):
        return CallbackRejection.BAD_SIGNATURE
    return None


def _payment_callback_url(settings: MtnMomoSettings, secret: bytes, reference: str) -> str | None:
    # MTN's callback names no reference: each request-to-pay gets its own URL, bound to it.
    if not settings.callback_url:
        return None
    return per_payment_url(settings.callback_url, secret, reference)


def _refund_callback_url(settings: MtnMomoSettings, secret: bytes, reference: str) -> str | None:
    # Refunds get their own URL below the callback base: /refunds/{reference}/{token}.
    if not settings.callback_url:
        return None
    base = (
        settings.callback_url
        if settings.callback_url.endswith("/")
        else settings.callback_url + "/"
    )
    return per_payment_url(base + "refunds/", secret, reference)


def _refunds_configured(settings: MtnMomoSettings) -> bool:
    return settings.refunds_configured


REFUNDS = RefundSupport(
    build=MtnMomoDisbursement.from_settings,
    configured=_refunds_configured,
    partial=True,
    status_readable=True,
    callback_routes=(
        CallbackRoute(
            path="/mtn-momo/refunds/{reference}/{token}",
            operation="mtn_refund_callback",
            summary="MTN MoMo per-refund callback",
            description="The `X-Callback-Url` given with each refund: the refund's reference "
            "and a token bound to it. MTN's refund status endpoint decides what happened.",
        ),
    ),
    refund_callback_url=_refund_callback_url,
)

SPEC = ProviderSpec(
    name=Provider.MTN_MOMO,
    title="MTN MoMo",
    settings=MtnMomoSettings,
    build=MtnMomoCollection.from_settings,
    carrier_names=("mtn",),
    # 0798/0799 are still tagged Africell in the carrier data; MTN took them over in 2021.
    number_prefixes=("25679",),
    test_numbers=_sandbox_numbers,
    callback_routes=(
        CallbackRoute(
            path="/mtn-momo/",
            operation="mtn_callback",
            summary="MTN MoMo callback",
            description="The original guide's MTN route: the body names the payment "
            "(`referenceId` or `externalId`); the provider's status endpoint decides what "
            "happened.",
        ),
        CallbackRoute(
            path="/mtn-momo/{reference}/{token}",
            operation="mtn_payment_callback",
            summary="MTN MoMo per-payment callback",
            description="The `X-Callback-Url` given with each request-to-pay: MTN's callback "
            "carries no reference id, so the URL does, with a token bound to it.",
        ),
    ),
    parse_callback=parse_mtn_callback,
    check_signature=_check_signature,
    payment_callback_url=_payment_callback_url,
    callback_may_name_only_the_order=True,
    callback_schema=MTN_CALLBACK_SCHEMA,
    callback_examples=MTN_CALLBACK_EXAMPLES,
    refunds=REFUNDS,
)

__all__ = ["SPEC", "MtnMomoCollection", "MtnMomoDisbursement", "MtnMomoSettings"]
