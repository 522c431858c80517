"""Sandbox API users (MTN provisioning) and the access tokens the simulator has issued.

An MTN token belongs to the product whose token endpoint issued it (Collection or Disbursement):
each product sits behind its own subscription key and token endpoint, so a token from one is
refused by the other, and a client that mixes them up finds out here rather than in production.
A provisioned sandbox user is not tied to a product: MTN's provisioning API has one path for all
of them, and integrations run one API user with two subscription keys.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass

from app.simulator.config import MtnProduct
from app.simulator.ledger import ProviderName


@dataclass
class ApiUser:
    provider_callback_host: str
    api_key: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    provider: ProviderName
    expires_at: float  # time.monotonic()
    api_user: str | None = None
    product: MtnProduct | None = None  # MTN only


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class Credentials:
    """API user ids are UUIDs, compared without regard to case as UUIDs are."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, ApiUser] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._issued: Counter[ProviderName] = Counter()

    # --- MTN sandbox API users -----------------------------------------------------------------

    def provision_user(self, user_id: str, provider_callback_host: str) -> bool:
        with self._lock:
            if user_id.lower() in self._users:
                return False
            self._users[user_id.lower()] = ApiUser(provider_callback_host=provider_callback_host)
            return True

    def new_api_key(self, user_id: str) -> str | None:
        """A fresh key for the user; like MTN, a key is shown once and the old one stops working."""
        with self._lock:
            user = self._users.get(user_id.lower())
            if user is None:
                return None
            user.api_key = secrets.token_hex(16)
            return user.api_key

    def user(self, user_id: str) -> ApiUser | None:
        with self._lock:
            return self._users.get(user_id.lower())

    def provisioned_key_matches(self, user_id: str, api_key: str) -> bool:
        with self._lock:
            user = self._users.get(user_id.lower())
            return bool(user and user.api_key and same_secret(api_key, user.api_key))

    # --- access tokens -------------------------------------------------------------------------

    def issue(
        self,
        provider: ProviderName,
        lifetime: float,
        api_user: str | None = None,
        product: MtnProduct | None = None,
    ) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = IssuedToken(
                provider, time.monotonic() + lifetime, api_user, product
            )
            self._issued[provider] += 1
        return token

    def check(
        self, provider: ProviderName, token: str, product: MtnProduct | None = None
    ) -> IssuedToken | None:
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None or issued.provider != provider or issued.product != product:
                return None
            if issued.expires_at <= time.monotonic():
                del self._tokens[token]
                return None
            return issued

    def revoke(self, provider: ProviderName | None = None) -> int:
        with self._lock:
            doomed = [t for t, i in self._tokens.items() if provider in (None, i.provider)]
            for token in doomed:
                del self._tokens[token]
            return len(doomed)

    def issued_counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "mtn_momo": self._issued["mtn_momo"],
                "airtel_money": self._issued["airtel_money"],
            }

    def reset_counts(self) -> None:
        with self._lock:
            self._issued.clear()
