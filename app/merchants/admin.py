"""What operators do to merchants: list them, change where events go, rotate a leaked API key
or webhook secret, switch a merchant off and on. The CLI and the console both call these.

    ValueError
    ├── InvalidCallbackUrl    (app.merchants.service)
    └── InvalidGracePeriod    grace not between 0 and 30 days
    LookupError
    └── UnknownMerchant       (app.merchants.service)

Every change writes an operator audit entry in its own transaction. A rotation keeps the
previous key (or secret) working until ``now + grace``: one previous slot, so rotating again
ends the earlier previous key's grace at once. Grace 0 stops the old one immediately.

Keys are cached per process for a few seconds (``app.merchants.auth.ApiKeyCache``): pass the
process's cache as ``keys`` to apply a change to it at once; other processes notice within
its TTL (5 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.events.signing import generate_webhook_secret
from app.merchants.auth import ApiKeyCache
from app.merchants.models import Merchant
from app.merchants.service import (
    InvalidCallbackUrl,
    NewMerchantCredentials,
    UnknownMerchant,
    api_key_prefix,
    create_merchant,
    generate_api_key,
    hash_api_key,
    validate_callback_url,
)
from app.operators.audit import record_action
from app.operators.models import Operator

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "MAX_GRACE_SECONDS",
    "InvalidCallbackUrl",
    "InvalidGracePeriod",
    "MerchantSummary",
    "RotatedApiKey",
    "RotatedWebhookSecret",
    "UnknownMerchant",
    "create_audited_merchant",
    "disable_merchant",
    "enable_merchant",
    "get_merchant",
    "list_merchants",
    "rotate_api_key",
    "rotate_webhook_secret",
    "update_callback_url",
]

DEFAULT_GRACE_SECONDS = 24 * 3600
MAX_GRACE_SECONDS = 30 * 24 * 3600


class InvalidGracePeriod(ValueError):
    pass


@dataclass(frozen=True)
class MerchantSummary:
    """What an operator may see of a merchant: never its API key or webhook secret."""

    id: str
    name: str
    callback_url: str
    created_at: datetime
    disabled_at: datetime | None
    sms_receipts: bool
    api_key_prefix: str
    # Until when the key / secret in use before the last rotation still works; None when none.
    previous_key_expires_at: datetime | None
    previous_secret_expires_at: datetime | None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "callback_url": self.callback_url,
            "created_at": _iso(self.created_at),
            "disabled": self.disabled,
            "disabled_at": _iso(self.disabled_at),
            "sms_receipts": self.sms_receipts,
            "api_key_prefix": self.api_key_prefix,
            "previous_key_expires_at": _iso(self.previous_key_expires_at),
            "previous_secret_expires_at": _iso(self.previous_secret_expires_at),
        }


class RotatedApiKey(TypedDict):
    """``rotate-key``'s answer, JSON-ready; the key is shown this once."""

    id: str
    api_key: str
    previous_key_expires_at: str | None  # ISO 8601 UTC ("…Z"); None: the old key stopped


class RotatedWebhookSecret(TypedDict):
    """``rotate-secret``'s answer, JSON-ready."""

    id: str
    webhook_secret: str
    previous_secret_expires_at: str | None


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def _summary(merchant: Merchant, now: datetime) -> MerchantSummary:
    def while_valid(at: datetime | None) -> datetime | None:
        return at if at is not None and at > now else None

    return MerchantSummary(
        id=merchant.id,
        name=merchant.name,
        callback_url=merchant.callback_url,
        created_at=merchant.created_at,
        disabled_at=merchant.disabled_at,
        sms_receipts=merchant.sms_receipts,
        api_key_prefix=merchant.api_key_prefix,
        previous_key_expires_at=while_valid(merchant.previous_key_expires_at),
        previous_secret_expires_at=while_valid(merchant.previous_secret_expires_at),
    )


def _check_grace(grace_seconds: int) -> int:
    if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, int):
        raise InvalidGracePeriod("grace period must be a whole number of seconds")
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise InvalidGracePeriod(
            f"grace period must be between 0 and {MAX_GRACE_SECONDS} seconds (30 days), "
            f"not {grace_seconds}"
        )
    return grace_seconds


def _actor(actor: str | None, operator: Operator | None) -> str:
    if actor is not None:
        return actor
    return operator.email if operator is not None else "cli"


def _url_for_audit(url: str) -> str:
    # The query string is left out: some storefronts put a token there.
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


async def _locked(session: AsyncSession, merchant_id: str) -> Merchant:
    merchant = await session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise UnknownMerchant(merchant_id)
    return merchant


async def list_merchants(sessions: async_sessionmaker[AsyncSession]) -> list[MerchantSummary]:
    """Every merchant, oldest first, disabled ones included."""
    now = utcnow()
    async with sessions() as session:
        merchants = (await session.scalars(select(Merchant).order_by(Merchant.created_at))).all()
        return [_summary(merchant, now) for merchant in merchants]


async def get_merchant(
    sessions: async_sessionmaker[AsyncSession], merchant_id: str
) -> MerchantSummary:
    async with sessions() as session:
        merchant = await session.get(Merchant, merchant_id)
        if merchant is None:
            raise UnknownMerchant(merchant_id)
        return _summary(merchant, utcnow())


async def create_audited_merchant(
    sessions: async_sessionmaker[AsyncSession],
    *,
    name: str,
    callback_url: str,
    actor: str | None = None,
    source: str = "cli",
    operator: Operator | None = None,
) -> NewMerchantCredentials:
    """``app.merchants.service.create_merchant``, audited ("merchant.create"): the merchant and
    its audit entry are written in one transaction, so neither exists without the other.
    ValueError for an empty name, InvalidCallbackUrl."""

    async def audit(session: AsyncSession, merchant: Merchant) -> None:
        await record_action(
            session,
            operator=operator,
            actor=_actor(actor, operator),
            action="merchant.create",
            target_type="merchant",
            target_id=merchant.id,
            source=source,
            detail={
                "name": merchant.name,
                "callback_url": _url_for_audit(merchant.callback_url),
                "key_prefix": merchant.api_key_prefix,
            },
        )

    return await create_merchant(sessions, name=name, callback_url=callback_url, also=audit)


async def update_callback_url(
    sessions: async_sessionmaker[AsyncSession],
    merchant_id: str,
    url: str,
    *,
    actor: str | None = None,
    source: str = "cli",
    operator: Operator | None = None,
) -> MerchantSummary:
    """Send the merchant's events to ``url`` from now on (InvalidCallbackUrl, UnknownMerchant)."""
    new_url = validate_callback_url(url)
    async with sessions.begin() as session:
        merchant = await _locked(session, merchant_id)
        previous = merchant.callback_url
        merchant.callback_url = new_url
        await record_action(
            session,
            operator=operator,
            actor=_actor(actor, operator),
            action="merchant.update_callback_url",
            target_type="merchant",
            target_id=merchant.id,
            source=source,
            detail={"from": _url_for_audit(previous), "to": _url_for_audit(new_url)},
        )
        return _summary(merchant, utcnow())


async def rotate_api_key(
    sessions: async_sessionmaker[AsyncSession],
    merchant_id: str,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    *,
    actor: str | None = None,
    source: str = "cli",
    operator: Operator | None = None,
    keys: ApiKeyCache | None = None,
) -> RotatedApiKey:
    """A new API key for the merchant (shown once); the current one keeps working for
    ``grace_seconds`` (0: stops at once). InvalidGracePeriod, UnknownMerchant."""
    grace = _check_grace(grace_seconds)
    api_key = generate_api_key()
    now = utcnow()
    async with sessions.begin() as session:
        merchant = await _locked(session, merchant_id)
        cut_short = (
            merchant.previous_key_expires_at is not None and merchant.previous_key_expires_at > now
        )
        replaced_prefix = merchant.api_key_prefix
        if grace > 0:
            merchant.previous_api_key_hash = merchant.api_key_hash
            merchant.previous_key_expires_at = now + timedelta(seconds=grace)
        else:
            merchant.previous_api_key_hash = None
            merchant.previous_key_expires_at = None
        merchant.api_key_hash = hash_api_key(api_key)
        merchant.api_key_prefix = api_key_prefix(api_key)
        expires_at = _iso(merchant.previous_key_expires_at)
        await record_action(
            session,
            operator=operator,
            actor=_actor(actor, operator),
            action="merchant.rotate_key",
            target_type="merchant",
            target_id=merchant.id,
            source=source,
            detail={
                "grace_seconds": grace,
                "previous_key_expires_at": expires_at,
                "replaced_key_prefix": replaced_prefix,
                "new_key_prefix": merchant.api_key_prefix,
                "earlier_previous_key_ended": cut_short,
            },
        )
    if keys is not None:
        keys.invalidate_merchant(merchant_id)
    return {"id": merchant_id, "api_key": api_key, "previous_key_expires_at": expires_at}


async def rotate_webhook_secret(
    sessions: async_sessionmaker[AsyncSession],
    merchant_id: str,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    *,
    actor: str | None = None,
    source: str = "cli",
    operator: Operator | None = None,
) -> RotatedWebhookSecret:
    """A new webhook signing secret; for ``grace_seconds`` every delivery is signed with both
    the new and the old secret (0: with the new one only, at once). InvalidGracePeriod,
    UnknownMerchant."""
    grace = _check_grace(grace_seconds)
    secret = generate_webhook_secret()
    now = utcnow()
    async with sessions.begin() as session:
        merchant = await _locked(session, merchant_id)
        cut_short = (
            merchant.previous_secret_expires_at is not None
            and merchant.previous_secret_expires_at > now
        )
        if grace > 0:
            merchant.previous_webhook_secret = merchant.webhook_secret
            merchant.previous_secret_expires_at = now + timedelta(seconds=grace)
        else:
            merchant.previous_webhook_secret = None
            merchant.previous_secret_expires_at = None
        merchant.webhook_secret = secret
        expires_at = _iso(merchant.previous_secret_expires_at)
        await record_action(
            session,
            operator=operator,
            actor=_actor(actor, operator),
            action="merchant.rotate_secret",
            target_type="merchant",
            target_id=merchant.id,
            source=source,
            detail={
                "grace_seconds": grace,
                "previous_secret_expires_at": expires_at,
                "earlier_previous_secret_ended": cut_short,
            },
        )
    return {"id": merchant_id, "webhook_secret": secret, "previous_secret_expires_at": expires_at}


async def disable_merchant(
    sessions: async_sessionmaker[AsyncSession],
    merchant_id: str,
    *,
    actor: str | None = None,
    source: str = "cli",
    operator: Operator | None = None,
    keys: ApiKeyCache | None = None,
) -> MerchantSummary:
    """Switch a merchant off: its keys answer 401 merchant_disabled and its events wait (not
    sent, no attempt counted) until it is enabled; its payments still settle. Disabling twice
    keeps the first time. UnknownMerchant."""
    return await _switch(
        sessions,
        merchant_id,
        disabled=True,
        actor=actor,
        source=source,
        operator=operator,
        keys=keys,
    )


async def enable_merchant(
    sessions: async_sessionmaker[AsyncSession],
    merchant_id: str,
    *,
    actor: str | None = None,
    source: str = "cli",
    operator: Operator | None = None,
    keys: ApiKeyCache | None = None,
) -> MerchantSummary:
    """Switch a merchant back on: its keys work again and its waiting events go out with the
    next outbox sweep. UnknownMerchant."""
    return await _switch(
        sessions,
        merchant_id,
        disabled=False,
        actor=actor,
        source=source,
        operator=operator,
        keys=keys,
    )


async def _switch(
    sessions: async_sessionmaker[AsyncSession],
    merchant_id: str,
    *,
    disabled: bool,
    actor: str | None,
    source: str,
    operator: Operator | None,
    keys: ApiKeyCache | None,
) -> MerchantSummary:
    async with sessions.begin() as session:
        merchant = await _locked(session, merchant_id)
        was_disabled = merchant.disabled_at is not None
        if disabled and not was_disabled:
            merchant.disabled_at = utcnow()
        elif not disabled:
            merchant.disabled_at = None
        await record_action(
            session,
            operator=operator,
            actor=_actor(actor, operator),
            action="merchant.disable" if disabled else "merchant.enable",
            target_type="merchant",
            target_id=merchant.id,
            source=source,
            detail={"was_disabled": was_disabled},
        )
        summary = _summary(merchant, utcnow())
    if keys is not None:
        keys.invalidate_merchant(merchant_id)
    return summary
