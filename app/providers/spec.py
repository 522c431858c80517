"""What the gateway needs to know about a provider, in one value: ``ProviderSpec``.

A provider is one folder under ``app/providers/`` that defines its settings block, its adapter,
its callback format and checks, and one ``ProviderSpec`` naming them; ``registry.register(spec)``
makes the gateway use it everywhere (payment validation, callback routes and checks, the
reconciler, metrics, the OpenAPI document). Nothing outside the folder names a provider.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from app.config import ProviderSettings, Settings
from app.providers.base import PaymentProvider, RefundProvider
from app.vocabulary import CallbackHint, CallbackRejection, Provider

if TYPE_CHECKING:
    from app.providers.http import RetryPolicy
    from app.providers.tokens import TokenCache

S = TypeVar("S", bound=ProviderSettings)

Schema = dict[str, Any]

# Where every provider's callback routes are, below the API's root.
CALLBACK_PREFIX = "/api/webhooks"


class AdapterFactory(Protocol):
    def __call__(
        self, settings: Settings, *, token_cache: TokenCache, retry_policy: RetryPolicy | None
    ) -> PaymentProvider: ...


class RefundAdapterFactory(Protocol):
    """Builds a provider's refund adapter; raises ``ProviderNotConfigured`` when the credentials
    refunds need are not set."""

    def __call__(
        self, settings: Settings, *, token_cache: TokenCache, retry_policy: RetryPolicy | None
    ) -> RefundProvider: ...


@dataclass(frozen=True, kw_only=True)
class CallbackRoute:
    """One route a provider's callbacks arrive at, below ``/api/webhooks``; PUT and POST."""

    path: str  # e.g. "/mtn-momo/{reference}/{token}": a per-payment URL names both
    operation: str  # OpenAPI operation id stem: "{operation}_put", "{operation}_post"
    summary: str
    description: str

    @property
    def per_payment(self) -> bool:
        return "{reference}" in self.path


def _no_test_numbers(_settings: Any) -> re.Pattern[str] | None:
    return None


def _no_per_payment_url(_settings: Any, _secret: bytes, _reference: str) -> str | None:
    return None


@dataclass(frozen=True, kw_only=True)
class RefundSupport(Generic[S]):
    """How a provider gives money back: what its refunds allow and where their callbacks come.

    A refund is the provider's second operation: its adapter (``build``) is separate from the
    collection one because it may need its own credentials (MTN's Disbursement product).
    """

    build: RefundAdapterFactory
    # Whether the credentials refunds need are set; without them refunds are refused cleanly.
    configured: Callable[[S], bool]
    # Partial amounts and several refunds of one payment (MTN yes; Airtel: the full amount, once).
    partial: bool
    # A pending refund's status can be read again later (MTN's GET); without it a refund whose
    # answer was lost waits for a person (needs_review) rather than being sent again.
    status_readable: bool
    # The refund names the payment by the provider's transaction id (Airtel's airtel_money_id).
    needs_transaction_id: bool = False
    # Per-refund callback routes ({reference}/{token}), and the URL sent with each refund.
    callback_routes: tuple[CallbackRoute, ...] = ()
    refund_callback_url: Callable[[S, bytes, str], str | None] = _no_per_payment_url


@dataclass(frozen=True, kw_only=True)
class ProviderSpec(Generic[S]):
    name: Provider
    title: str  # for people: "MTN MoMo"
    settings: type[S]
    build: AdapterFactory

    # --- which numbers it serves (Ugandan mobile numbers, 2567XXXXXXXX) ------------------------
    carrier_names: tuple[str, ...] = ()  # libphonenumber carrier names, lower-case prefixes
    number_prefixes: tuple[str, ...] = ()  # ranges the carrier data gets wrong or lacks
    # Numbers a test environment takes as they are (MTN's sandbox payers), or None.
    test_numbers: Callable[[S], re.Pattern[str] | None] = _no_test_numbers

    # --- callbacks ---------------------------------------------------------------------------
    callback_routes: tuple[CallbackRoute, ...]
    parse_callback: Callable[[bytes], CallbackHint]
    # The provider's own authentication (a signature, a hash) of (its settings, the raw body,
    # lower-case headers), after the IP allowlist: None when it passes or none is asked for.
    check_signature: Callable[[S, bytes, Mapping[str, str]], CallbackRejection | None]
    # The callback URL sent with one payment (a per-payment route), or None: the provider
    # calls the one URL registered with it.
    payment_callback_url: Callable[[S, bytes, str], str | None] = _no_per_payment_url
    # Its callbacks may name only the storefront's order (the original guide's MTN bodies).
    callback_may_name_only_the_order: bool = False
    callback_schema: Schema = field(default_factory=dict)  # OpenAPI, titled
    callback_examples: Schema = field(default_factory=dict)

    # --- refunds: None when the provider cannot give money back through the gateway ------------
    refunds: RefundSupport[S] | None = None

    def settings_from(self, settings: Settings) -> S:
        return settings.provider_settings(self.settings)
