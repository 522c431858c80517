"""Finding the merchant behind an API key, without a database round trip on every request."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.merchants.service import hash_api_key, merchant_for_api_key


@dataclass(frozen=True)
class AuthenticatedMerchant:
    id: str
    name: str


class ApiKeyCache:
    """Remembers keys that matched a merchant for ``ttl`` seconds (hashed, never the key).

    Only hits are kept: a new key works at once, and an unknown key is looked up every time.
    A merchant removed from the database stops authenticating within ``ttl``.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl: float = 60.0,
        max_entries: int = 10_000,
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[AuthenticatedMerchant, float]] = OrderedDict()

    async def merchant_for(self, api_key: str) -> AuthenticatedMerchant | None:
        key_hash = hash_api_key(api_key)
        now = time.monotonic()
        entry = self._entries.get(key_hash)
        if entry is not None and entry[1] > now:
            return entry[0]
        async with self._sessions() as session:
            merchant = await merchant_for_api_key(session, api_key)
        if merchant is None:
            self._entries.pop(key_hash, None)
            return None
        found = AuthenticatedMerchant(id=merchant.id, name=merchant.name)
        self._entries[key_hash] = (found, now + self._ttl)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return found
