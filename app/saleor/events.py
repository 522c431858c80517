"""The Saleor webhooks the app subscribes to: their names, paths and subscription queries.

Each query asks for ``__typename``, so a body signed for one event cannot be replayed to another
event's URL, and for ``recipient { id }``, which must be the installed app's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Saleor truncates a reply's or report's message beyond this.
MESSAGE_LIMIT = 512
# Where a gateway payment made for Saleor keeps the Saleor transaction's id (its metadata).
TRANSACTION_ID_KEY = "saleor_transaction_id"

_SOURCE = "sourceObject { __typename ... on Checkout { id } ... on Order { id number } }"
_ACTION = "action { amount currency actionType }"
_TRANSACTION = "transaction { id pspReference }"


class SaleorEvent(StrEnum):
    PAYMENT_GATEWAY_INITIALIZE_SESSION = "PAYMENT_GATEWAY_INITIALIZE_SESSION"
    TRANSACTION_INITIALIZE_SESSION = "TRANSACTION_INITIALIZE_SESSION"
    TRANSACTION_PROCESS_SESSION = "TRANSACTION_PROCESS_SESSION"
    TRANSACTION_CHARGE_REQUESTED = "TRANSACTION_CHARGE_REQUESTED"
    TRANSACTION_REFUND_REQUESTED = "TRANSACTION_REFUND_REQUESTED"
    TRANSACTION_CANCELATION_REQUESTED = "TRANSACTION_CANCELATION_REQUESTED"

    @property
    def slug(self) -> str:
        """The event's path segment: ``transaction-initialize-session``."""
        return self.value.lower().replace("_", "-")

    @property
    def spec(self) -> EventSpec:
        return _SPECS[self]

    @classmethod
    def from_slug(cls, slug: str) -> SaleorEvent | None:
        for event in cls:
            if event.slug == slug:
                return event
        return None


@dataclass(frozen=True)
class EventSpec:
    typename: str  # the subscription's type, e.g. TransactionInitializeSession
    fields: str  # what the query asks for

    def query(self) -> str:
        return (
            f"subscription {self.typename} {{ event {{ __typename ... on {self.typename} "
            f"{{ issuedAt recipient {{ id }} {self.fields} }} }} }}"
        )


_SPECS: dict[SaleorEvent, EventSpec] = {
    SaleorEvent.PAYMENT_GATEWAY_INITIALIZE_SESSION: EventSpec(
        "PaymentGatewayInitializeSession", f"data amount {_SOURCE}"
    ),
    SaleorEvent.TRANSACTION_INITIALIZE_SESSION: EventSpec(
        "TransactionInitializeSession",
        f"idempotencyKey data merchantReference {_ACTION} {_TRANSACTION} {_SOURCE}",
    ),
    SaleorEvent.TRANSACTION_PROCESS_SESSION: EventSpec(
        "TransactionProcessSession", f"data merchantReference {_ACTION} {_TRANSACTION} {_SOURCE}"
    ),
    SaleorEvent.TRANSACTION_CHARGE_REQUESTED: EventSpec(
        "TransactionChargeRequested", f"{_ACTION} {_TRANSACTION}"
    ),
    SaleorEvent.TRANSACTION_REFUND_REQUESTED: EventSpec(
        "TransactionRefundRequested", f"{_ACTION} {_TRANSACTION} grantedRefund {{ id }}"
    ),
    SaleorEvent.TRANSACTION_CANCELATION_REQUESTED: EventSpec(
        "TransactionCancelationRequested", f"{_ACTION} {_TRANSACTION}"
    ),
}
