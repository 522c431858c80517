"""Airtel Money refund JSON, and what its reply says on its own about the money.

No HTTP and no logging here: ``refunds.py`` sends the body and decides what an answer means for
the refund. Refunds share the collection envelope and code table (``wire.py``).
"""

from __future__ import annotations

from pydantic import BaseModel

from app.providers.airtel_money import wire

# ``data.transaction.status`` of a refund that went through. Refunds do not use the enquiry's
# TS/TF/TA/TIP/TE letters.
REFUNDED = "SUCCESS"


class AirtelRefundTransaction(BaseModel):
    airtel_money_id: str


class AirtelRefundRequest(BaseModel):
    """The whole refund: the collection, named by Airtel's id for it. There is no amount field
    because Airtel only refunds the full amount."""

    transaction: AirtelRefundTransaction


def refund_body(airtel_money_id: str) -> AirtelRefundRequest:
    return AirtelRefundRequest(transaction=AirtelRefundTransaction(airtel_money_id=airtel_money_id))


def reported_refunded(envelope: wire.AirtelEnvelope | None) -> wire.AirtelTransaction | None:
    """``data.transaction`` when it says ``SUCCESS`` (in any case), else None.

    Only the exact word counts: one library's fixture shows ``"Success."`` paired with "in
    process", which is not yet money back.
    """
    transaction = envelope.data.transaction if envelope and envelope.data else None
    if transaction is None or (transaction.status or "").strip().upper() != REFUNDED:
        return None
    return transaction


def success_confirmed(envelope: wire.AirtelEnvelope) -> bool:
    """Whether the ``status`` block backs a ``SUCCESS`` transaction.

    The decisive code (``wire.decisive_code``) must be a success code (``DP00800001001``, or the
    legacy ``ESB000010``), or, with no known code at all, ``success`` must be true. Airtel's own
    sample pairs SUCCESS and ESB000010 with ``"success": false``, so the flag alone cannot deny
    a success. A ``response_code`` saying anything else (``DP00800001006``, in process) wins over
    the legacy ESB000010 beside it, as it does for every other Airtel answer.
    """
    answer = wire.decisive_code(envelope)
    if answer is not None:
        return answer.entry.kind is wire.AirtelCodeKind.SUCCESS
    return envelope.status is not None and envelope.status.success is True
