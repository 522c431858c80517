"""Zed Money: a small fake mobile-money network that exists only in the test tree.

It shows what adding a provider takes: this one folder (settings block, adapter, callback
format and check, ``SPEC``) and one ``registry.register(SPEC)``. Nothing under ``app/`` names it.

Zed serves Ugandan numbers 0710… (``25671``), takes payments in Kenyan shillings, answers over
HTTP (``POST /v2/collect``, ``GET /v2/collect/{ref}``) and calls back one shared URL with
``{"ref", "state"}`` signed by ``X-Zed-Signature`` (hex HMAC-SHA256 of the body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from pydantic_settings import SettingsConfigDict

from app.config import ProviderSettings
from app.providers.spec import CallbackRoute, ProviderSpec
from app.vocabulary import CallbackHint, CallbackRejection, MalformedCallback, Provider
from tests.third_provider.adapter import ZedMoneyCollection

NAME = Provider("zed_money")


class ZedMoneySettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="ZED_MONEY_")

    api_url: str = "https://api.zed.example"
    merchant_token: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.merchant_token)


def parse_zed_callback(raw_body: bytes) -> CallbackHint:
    try:
        body = json.loads(raw_body)
    except ValueError:
        raise MalformedCallback("Zed callback is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
        raise MalformedCallback("Zed callback must name its ref")
    state = body.get("state")
    return CallbackHint(
        reference=body["ref"][:64], claimed_status=state if isinstance(state, str) else None
    )


def sign(secret: str, raw_body: bytes) -> str:
    return hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def check_zed_signature(
    settings: ZedMoneySettings, raw_body: bytes, headers: Mapping[str, str]
) -> CallbackRejection | None:
    if settings.webhook_secret is None:
        return None
    given = headers.get("x-zed-signature")
    if given is None:
        return CallbackRejection.MISSING_SIGNATURE
    expected = sign(settings.webhook_secret.get_secret_value(), raw_body)
    return None if hmac.compare_digest(expected, given) else CallbackRejection.BAD_SIGNATURE


def build(settings, *, token_cache, retry_policy):  # type: ignore[no-untyped-def]
    return ZedMoneyCollection.from_settings(
        settings.provider_settings(ZedMoneySettings), settings, retry_policy=retry_policy
    )


SPEC = ProviderSpec(
    name=NAME,
    title="Zed Money",
    settings=ZedMoneySettings,
    build=build,
    number_prefixes=("25671",),
    callback_routes=(
        CallbackRoute(
            path="/zed-money/",
            operation="zed_callback",
            summary="Zed Money callback",
            description="Zed posts `{ref, state}` to the one URL registered with it.",
        ),
    ),
    parse_callback=parse_zed_callback,
    check_signature=check_zed_signature,
    callback_schema={
        "title": "ZedCallback",
        "type": "object",
        "required": ["ref"],
        "properties": {"ref": {"type": "string"}, "state": {"type": "string"}},
    },
    callback_examples={"done": {"summary": "Paid", "value": {"ref": "…", "state": "DONE"}}},
)
