"""Finding the merchant behind an API key, without a database round trip on every request."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.errors import MerchantDisabled
from app.merchants.service import hash_api_key, match_api_key

# How long a process trusts what it last read about a key. Operators' changes made in another
# process (a disable, a rotation with no grace) take effect here within this many seconds.
DEFAULT_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class AuthenticatedMerchant:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class _Entry:
    merchant: AuthenticatedMerchant
    disabled: bool
    cached_until: float  # time.monotonic()
    # The end of a previous key's grace period (None for a current key), checked on every hit:
    # a cached entry never outlives the key it is about.
    key_expires_at: datetime | None


class ApiKeyCache:
    """Remembers, for ``ttl`` seconds (5 by default), which merchant a key belongs to and
    whether that merchant is disabled: hashed, never the key.

    Only hits are kept: a new key works at once, and an unknown key is looked up every time.
    A previous key (after a rotation) is served until the very second its grace period ends,
    never after, however long the entry had left. In this process ``invalidate_merchant``
    applies an operator's change at once; another process's cache notices a disable, a key
    rotated away with no grace, or a removed merchant within ``ttl`` (5 s).

    A key is looked up by one request at a time: when its entry expires under load, the
    requests in flight for it wait for that one lookup instead of each reading the database
    (at 256 in flight, 256 lookups every ``ttl``).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_entries: int = 10_000,
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lookups: dict[str, asyncio.Future[_Entry | None]] = {}

    async def merchant_for(self, api_key: str) -> AuthenticatedMerchant | None:
        """The merchant ``api_key`` belongs to, None for an unknown (or expired) key, and
        MerchantDisabled (401 merchant_disabled) for a disabled merchant's key."""
        entry = await self._entry_for(api_key)
        if entry is None:
            return None
        if entry.disabled:
            raise MerchantDisabled()
        return entry.merchant

    async def _entry_for(self, api_key: str) -> _Entry | None:
        key_hash = hash_api_key(api_key)
        now = time.monotonic()
        entry = self._entries.get(key_hash)
        if entry is not None and entry.cached_until > now and _key_still_valid(entry):
            return entry
        lookup = self._lookups.get(key_hash)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up(api_key, key_hash))
            self._lookups[key_hash] = lookup
            lookup.add_done_callback(lambda done: self._lookup_finished(key_hash, done))
        # Shielded: a request that goes away does not cancel the lookup the others wait for.
        return await asyncio.shield(lookup)

    def _lookup_finished(self, key_hash: str, lookup: asyncio.Future[_Entry | None]) -> None:
        self._lookups.pop(key_hash, None)
        if not lookup.cancelled():
            lookup.exception()  # its waiters raise it; marked as seen should they all be gone

    async def _look_up(self, api_key: str, key_hash: str) -> _Entry | None:
        async with self._sessions() as session:
            match = await match_api_key(session, api_key)
        if match is None:
            self._entries.pop(key_hash, None)
            return None
        merchant = match.merchant
        entry = _Entry(
            merchant=AuthenticatedMerchant(id=merchant.id, name=merchant.name),
            disabled=merchant.disabled_at is not None,
            cached_until=time.monotonic() + self._ttl,
            key_expires_at=match.key_expires_at,
        )
        self._entries[key_hash] = entry
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return entry

    def invalidate_merchant(self, merchant_id: str) -> int:
        """Forget every key of ``merchant_id`` (after a rotation, a disable or an enable in
        this process), so the next request reads the database. Returns how many were dropped."""
        stale = [key for key, entry in self._entries.items() if entry.merchant.id == merchant_id]
        for key in stale:
            del self._entries[key]
        return len(stale)


def _key_still_valid(entry: _Entry) -> bool:
    return entry.key_expires_at is None or entry.key_expires_at > utcnow()
