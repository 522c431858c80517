"""Telling Saleor how a payment or refund ended: the outbox's events of a Saleor installation's
merchant become ``transactionEventReport`` calls instead of signed POSTs.

They keep the outbox's guarantees (claimed, every attempt recorded, retried on the storefront
schedule). Saleor de-duplicates reports on (pspReference, amount, type) and answers
``alreadyProcessed`` for a repeat, which counts as delivered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.models import OutboxEvent
from app.payments.domain import EventType
from app.payments.models import Payment
from app.saleor.client import EventReport, ReportOutcome, SaleorClient
from app.saleor.events import MESSAGE_LIMIT, TRANSACTION_ID_KEY
from app.saleor.installations import Installations
from app.saleor.models import SaleorInstallation
from app.saleor.tokens import UndecryptableToken

_REPORTED: dict[str, tuple[str, tuple[str, ...]]] = {
    # event type → (Saleor's event type, the actions Saleor may offer afterwards)
    EventType.PAYMENT_SUCCEEDED: ("CHARGE_SUCCESS", ("REFUND",)),
    EventType.PAYMENT_FAILED: ("CHARGE_FAILURE", ()),
    EventType.PAYMENT_EXPIRED: ("CHARGE_FAILURE", ()),
    EventType.REFUND_SUCCEEDED: ("REFUND_SUCCESS", ("REFUND",)),
    EventType.REFUND_FAILED: ("REFUND_FAILURE", ("REFUND",)),
}


def report_for(event: OutboxEvent, transaction_id: str) -> EventReport | None:
    """The report announcing ``event`` on Saleor's transaction ``transaction_id``; None for a
    ``needs_review``: the transaction stays waiting until a person resolves the payment."""
    mapped = _REPORTED.get(event.type)
    data = _data(event)
    if mapped is None or data is None:
        return None
    saleor_type, actions = mapped
    return EventReport(
        transaction_id=transaction_id,
        type=saleor_type,
        amount=str(data.get("amount")),
        psp_reference=str(data.get("id")),
        time=str(data.get("completed_at") or (event.payload or {}).get("created_at")),
        message=_message(event.type, data),
        available_actions=actions,
    )


def _data(event: OutboxEvent) -> dict[str, Any] | None:
    data = (event.payload or {}).get("data")
    return data if isinstance(data, dict) else None


def _transaction_id(data: dict[str, Any] | None) -> str | None:
    metadata = (data or {}).get("metadata")
    value = metadata.get(TRANSACTION_ID_KEY) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value else None


def _message(event_type: str, data: dict[str, Any]) -> str:
    if event_type in (EventType.PAYMENT_SUCCEEDED, EventType.REFUND_SUCCEEDED):
        reference = data.get("provider_transaction_id")
        return f"Confirmed by the provider{f' ({reference})' if reference else ''}."[:MESSAGE_LIMIT]
    why = data.get("failure_message") or data.get("failure_code") or event_type
    return f"{event_type}: {why}"[:MESSAGE_LIMIT]


class SaleorReporter:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        installations: Installations,
        client: SaleorClient,
    ) -> None:
        self._sessions = sessions
        self._installations = installations
        self._client = client

    async def deliver(self, installation: SaleorInstallation, event: OutboxEvent) -> ReportOutcome:
        transaction_id = _transaction_id(_data(event))
        if transaction_id is None and event.refund_id is not None:
            # A refund made in the console or the CLI carries no Saleor metadata of its own:
            # its payment's transaction is the one it belongs to.
            transaction_id = await self._payment_transaction(event.payment_id)
        report = report_for(event, transaction_id) if transaction_id else None
        if report is None:
            # Nothing Saleor needs to hear: a needs_review, or a payment that was made through
            # the REST API rather than a Saleor checkout.
            return ReportOutcome(None, None, skipped=True)
        try:
            token = self._installations.token(installation)
        except UndecryptableToken:
            return ReportOutcome(None, "the app token cannot be decrypted with this key")
        return await self._client.report(installation.saleor_api_url, token, report)

    async def _payment_transaction(self, payment_id: str) -> str | None:
        async with self._sessions() as session:
            payment = await session.get(Payment, payment_id)
        return _transaction_id({"metadata": payment.payment_metadata}) if payment else None
