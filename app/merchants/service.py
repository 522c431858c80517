"""Creating merchants, finding the merchant behind an API key, and their SMS receipt settings.

Operators' changes to a merchant (rotation, disabling, a new callback URL) are in
``app.merchants.admin``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import new_id, utcnow
from app.events.signing import generate_webhook_secret
from app.merchants.models import Merchant
from app.sms.template import DEFAULT_TEMPLATE, InvalidSmsTemplate, example, validate_template

__all__ = [
    "API_KEY_PREFIX",
    "ApiKeyMatch",
    "InvalidCallbackUrl",
    "InvalidSmsTemplate",
    "NewMerchantCredentials",
    "SmsReceiptSettings",
    "UnknownMerchant",
    "api_key_prefix",
    "create_merchant",
    "generate_api_key",
    "hash_api_key",
    "match_api_key",
    "merchant_for_api_key",
    "update_sms_receipts",
    "validate_callback_url",
]

API_KEY_PREFIX = "mgw_"


class InvalidCallbackUrl(ValueError):
    pass


class UnknownMerchant(LookupError):
    pass


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def generate_api_key() -> str:
    """A new merchant API key: ``mgw_`` + 32 random bytes, URL-safe base64."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_prefix(api_key: str) -> str:
    """The start of a key, kept in clear so people can tell keys apart (``mgw_`` + 8)."""
    return api_key[:12]


def validate_callback_url(url: str) -> str:
    """The storefront's event URL: absolute http(s) with a host, no credentials in it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCallbackUrl("callback URL must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidCallbackUrl("callback URL must not carry credentials")
    if len(url) > 2048:
        raise InvalidCallbackUrl("callback URL is longer than 2048 characters")
    return url.strip()


@dataclass(frozen=True)
class NewMerchantCredentials:
    """Shown once, at creation: the API key is only stored hashed."""

    id: str
    name: str
    api_key: str
    webhook_secret: str
    callback_url: str


async def create_merchant(
    sessions: async_sessionmaker[AsyncSession],
    *,
    name: str,
    callback_url: str,
    also: Callable[[AsyncSession, Merchant], Awaitable[object]] | None = None,
) -> NewMerchantCredentials:
    """A new merchant and its credentials (shown once). ``also`` writes more in the same
    transaction (an operator's audit entry). ValueError for a bad name, InvalidCallbackUrl."""
    clean_name = name.strip()
    if not clean_name:
        raise ValueError("merchant name must not be empty")
    if len(clean_name) > 200:
        raise ValueError("merchant name is longer than 200 characters")
    url = validate_callback_url(callback_url)
    api_key = generate_api_key()
    merchant = Merchant(
        id=new_id("mer"),
        name=clean_name,
        api_key_hash=hash_api_key(api_key),
        api_key_prefix=api_key_prefix(api_key),
        callback_url=url,
        webhook_secret=generate_webhook_secret(),
    )
    async with sessions.begin() as session:
        session.add(merchant)
        if also is not None:
            await also(session, merchant)
    return NewMerchantCredentials(
        id=merchant.id,
        name=merchant.name,
        api_key=api_key,
        webhook_secret=merchant.webhook_secret,
        callback_url=url,
    )


@dataclass(frozen=True)
class ApiKeyMatch:
    """The merchant a key belongs to, and until when that key works: None for its current key,
    the end of the grace period for the key it had before a rotation."""

    merchant: Merchant
    key_expires_at: datetime | None


async def match_api_key(
    session: AsyncSession, api_key: str, *, now: datetime | None = None
) -> ApiKeyMatch | None:
    """The merchant whose current key is ``api_key``, or whose previous key it is while that
    key's grace lasts (``previous_key_expires_at`` later than ``now``, exactly). Disabled
    merchants match too: refusing them (merchant_disabled, not an unknown key) is the caller's."""
    key_hash = hash_api_key(api_key)
    found = (
        await session.scalars(
            select(Merchant)
            .where(
                or_(Merchant.api_key_hash == key_hash, Merchant.previous_api_key_hash == key_hash)
            )
            .limit(2)
        )
    ).all()
    current = next((merchant for merchant in found if merchant.api_key_hash == key_hash), None)
    if current is not None:
        return ApiKeyMatch(current, None)
    at = utcnow() if now is None else now
    for merchant in found:
        expires_at = merchant.previous_key_expires_at
        if expires_at is not None and expires_at > at:
            return ApiKeyMatch(merchant, expires_at)
    return None


async def merchant_for_api_key(
    session: AsyncSession, api_key: str, *, now: datetime | None = None
) -> Merchant | None:
    """The merchant behind ``api_key`` (see ``match_api_key``; disabled ones included)."""
    match = await match_api_key(session, api_key, now=now)
    return None if match is None else match.merchant


@dataclass(frozen=True)
class SmsReceiptSettings:
    merchant_id: str
    enabled: bool
    template: str  # the one in effect: the merchant's own or the default
    example: str  # the template filled with example values


async def update_sms_receipts(
    sessions: async_sessionmaker[AsyncSession],
    merchant_id: str,
    *,
    enabled: bool | None = None,
    template: str | None = None,
) -> SmsReceiptSettings:
    """Switch a merchant's SMS receipts on or off and/or set its template (None: unchanged).
    Switching on starts from now: payments that succeeded before get no receipt."""
    async with sessions.begin() as session:
        merchant = await session.get(Merchant, merchant_id, with_for_update=True)
        if merchant is None:
            raise UnknownMerchant(merchant_id)
        if template is not None:
            validate_template(template, merchant.name)
            merchant.sms_template = None if template == DEFAULT_TEMPLATE else template
        if enabled is not None:
            if enabled and not merchant.sms_receipts:
                merchant.sms_receipts_since = utcnow()
            merchant.sms_receipts = enabled
        effective = merchant.sms_template or DEFAULT_TEMPLATE
        return SmsReceiptSettings(
            merchant_id=merchant.id,
            enabled=merchant.sms_receipts,
            template=effective,
            example=example(effective, merchant.name),
        )
