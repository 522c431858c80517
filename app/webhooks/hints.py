"""What a provider callback claims, in the gateway's terms.

A callback is a hint: it names a payment and says what the sender thinks happened. Nothing here
settles anything; the payment service re-reads the status from the provider.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class CallbackHint:
    reference: str | None = None  # our provider reference, when the body names it
    order_id: str | None = None  # MTN externalId (the original guide's bodies)
    claimed_status: str | None = None  # as sent; for the audit log only


class MalformedCallback(ValueError):
    """The body is not JSON, or not the JSON object this provider sends."""
