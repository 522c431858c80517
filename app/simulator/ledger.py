"""What the simulated providers have accepted, and how often they were asked.

The ledger is the simulator's evidence for invariant checks: for every reference it knows how
many times the create endpoint was hit (faulted and refused attempts included) and how many
charges were recorded — which must never exceed one.

Every method takes a plain ``threading.Lock`` and never awaits while holding it: the check for a
duplicate and the insert happen under one lock, so two concurrent creates with one reference
cannot both charge, and a test thread reading the ledger never sees a half-written payment.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from app.simulator.scenarios import Resolution, Scenario

ProviderName = Literal["mtn_momo", "airtel_money"]
PaymentKey = tuple[ProviderName, str]


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"


@dataclass(frozen=True, kw_only=True)
class Payment:
    """One accepted request-to-pay (MTN) or push (Airtel); replaced whole when it changes."""

    provider: ProviderName
    reference: str  # MTN X-Reference-Id, Airtel transaction.id
    amount: str
    currency: str
    msisdn: str
    scenario: Scenario
    external_id: str | None = None  # MTN externalId, Airtel reference
    party_id_type: str = "MSISDN"
    payer_message: str | None = None
    payee_note: str | None = None
    callback_url: str | None = None
    status: PaymentStatus = PaymentStatus.PENDING
    resolution: Resolution | None = None
    # MTN financialTransactionId / Airtel airtel_money_id, minted when the payment settles.
    transaction_id: str | None = None
    # What the status endpoints report; differs from the request only when a test forces it.
    reported_amount: str | None = None
    reported_currency: str | None = None
    created_at: float = field(default_factory=time.time)
    settled_at: float | None = None

    @property
    def key(self) -> PaymentKey:
        return (self.provider, self.reference)

    @property
    def shown_amount(self) -> str:
        return self.reported_amount if self.reported_amount is not None else self.amount

    @property
    def shown_currency(self) -> str:
        return self.reported_currency if self.reported_currency is not None else self.currency


@dataclass(frozen=True)
class Settlement:
    status: PaymentStatus
    resolution: Resolution | None
    transaction_id: str | None
    reported_amount: str | None = None
    reported_currency: str | None = None


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._payments: dict[PaymentKey, Payment] = {}
        self._create_requests: Counter[PaymentKey] = Counter()
        self._charges: Counter[PaymentKey] = Counter()
        self._last_create_status: dict[PaymentKey, int] = {}

    def count_create_request(self, key: PaymentKey) -> None:
        with self._lock:
            self._create_requests[key] += 1

    def note_create_answer(self, key: PaymentKey, http_status: int) -> None:
        with self._lock:
            self._last_create_status[key] = http_status

    def add(self, payment: Payment) -> bool:
        """Record a new charge; False (and nothing recorded) if the reference is already taken."""
        with self._lock:
            if payment.key in self._payments:
                return False
            self._payments[payment.key] = payment
            self._charges[payment.key] += 1
            return True

    def get(self, key: PaymentKey) -> Payment | None:
        with self._lock:
            return self._payments.get(key)

    def find(self, reference: str) -> list[Payment]:
        with self._lock:
            return [p for p in self._payments.values() if p.reference == reference]

    def by_transaction_id(self, provider: ProviderName, transaction_id: str) -> Payment | None:
        """The payment a provider's own id names (Airtel's airtel_money_id, MTN's
        financialTransactionId)."""
        with self._lock:
            for payment in self._payments.values():
                if payment.provider == provider and payment.transaction_id == transaction_id:
                    return payment
            return None

    def settle(self, key: PaymentKey, settlement: Settlement, *, only_if_pending: bool) -> Payment:
        """Apply a final (or forced) status; returns the payment as it now stands.

        ``only_if_pending`` is how the approval timer steps aside for a status a test forced first.
        """
        with self._lock:
            current = self._payments[key]
            if only_if_pending and current.status is not PaymentStatus.PENDING:
                return current
            updated = replace(
                current,
                status=settlement.status,
                resolution=settlement.resolution,
                transaction_id=settlement.transaction_id or current.transaction_id,
                reported_amount=settlement.reported_amount,
                reported_currency=settlement.reported_currency,
                settled_at=None if settlement.status is PaymentStatus.PENDING else time.time(),
            )
            self._payments[key] = updated
            return updated

    def payments(self, provider: ProviderName | None = None) -> list[Payment]:
        with self._lock:
            return [p for p in self._payments.values() if provider in (None, p.provider)]

    def snapshot(self, provider: ProviderName | None = None) -> dict[str, Any]:
        with self._lock:
            payments = [
                self._describe(p) for p in self._payments.values() if provider in (None, p.provider)
            ]
            unaccepted = [
                {
                    "provider": key[0],
                    "reference": key[1],
                    "create_requests": count,
                    "last_http_status": self._last_create_status.get(key),
                }
                for key, count in self._create_requests.items()
                if key not in self._payments and provider in (None, key[0])
            ]
        return {"payments": payments, "unaccepted": unaccepted}

    def describe(self, payment: Payment) -> dict[str, Any]:
        with self._lock:
            return self._describe(payment)

    def _describe(self, p: Payment) -> dict[str, Any]:
        resolution = p.resolution
        mtn = p.provider == "mtn_momo"
        airtel_status: str | None
        airtel_code: str | None
        if mtn or p.status is PaymentStatus.PENDING or resolution is None:
            airtel_status = None if mtn else p.scenario.airtel_pending_status
            airtel_code = None
        else:
            airtel_status, airtel_code = resolution.airtel_status, resolution.airtel_response_code
        return {
            "provider": p.provider,
            "reference": p.reference,
            "amount": p.amount,
            "currency": p.currency,
            "msisdn": p.msisdn,
            "external_id": p.external_id,
            "status": p.status.value,
            "reason": resolution.mtn_reason if mtn and resolution else None,
            "airtel_status": airtel_status,
            "airtel_response_code": airtel_code,
            "transaction_id": p.transaction_id,
            "scenario": p.scenario.name,
            "callback_url": p.callback_url,
            "create_requests": self._create_requests.get(p.key, 0),
            "last_create_status": self._last_create_status.get(p.key),
            "charges": self._charges.get(p.key, 0),
            "reported_amount": p.reported_amount,
            "reported_currency": p.reported_currency,
            "created_at": p.created_at,
            "settled_at": p.settled_at,
        }

    def reset(self) -> None:
        with self._lock:
            self._payments.clear()
            self._create_requests.clear()
            self._charges.clear()
            self._last_create_status.clear()
