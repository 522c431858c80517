"""The words every layer shares: providers, failure codes, what a callback claims and why one is
refused.

This module is on the ground floor: it imports nothing from the rest of the application, so
settings, phone numbers, provider adapters and services can all use it without importing upward.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class Provider(str):
    """A provider's name as stored on a payment and shown in the API, logs and metrics.

    The two built-in networks are constants (``Provider.MTN_MOMO``); a provider registered later
    (``app.providers.registry.register``) is simply its own name. Which names exist is the
    registry's business, not this type's: compare with ``==``, never ``is``.
    """

    __slots__ = ()

    MTN_MOMO: ClassVar[Provider]
    AIRTEL_MONEY: ClassVar[Provider]

    @property
    def value(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Provider({str.__repr__(self)})"


Provider.MTN_MOMO = Provider("mtn_momo")
Provider.AIRTEL_MONEY = Provider("airtel_money")


class FailureCode(StrEnum):
    """Stable failure codes the storefront can branch on. The provider's raw reason is kept
    separately in ``failure_message``."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    PAYER_NOT_FOUND = "payer_not_found"
    REJECTED_BY_PAYER = "rejected_by_payer"
    PAYER_TIMEOUT = "payer_timeout"
    INCORRECT_PIN = "incorrect_pin"
    LIMIT_EXCEEDED = "limit_exceeded"
    INVALID_AMOUNT = "invalid_amount"
    NOT_ALLOWED = "not_allowed"
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND_AT_PROVIDER = "not_found_at_provider"
    PROVIDER_ERROR = "provider_error"


# --- provider callbacks ----------------------------------------------------------------------
# A callback is a hint: it names a payment and says what the sender thinks happened. Nothing
# settles on it; the payment service re-reads the status from the provider.


@dataclass(frozen=True, kw_only=True)
class CallbackHint:
    reference: str | None = None  # our provider reference, when the body names it
    order_id: str | None = None  # the storefront's order, when the body names only that
    claimed_status: str | None = None  # as sent; for the audit log only


class MalformedCallback(ValueError):
    """The body is not JSON, or not the JSON object this provider sends."""


class CallbackRejection(StrEnum):
    """Why a callback was refused: the value is logged, ``status_code`` is answered."""

    IP_DENIED = "ip_denied"
    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"
    TOKEN_INVALID = "token_invalid"  # noqa: S105  (a reason code, not a token)

    @property
    def status_code(self) -> int:
        # A caller from a refused address gets 403: no credential it could add would help.
        # Everything else is failed authentication.
        return 403 if self is CallbackRejection.IP_DENIED else 401
