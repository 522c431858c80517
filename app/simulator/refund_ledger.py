"""Refunds the simulated providers took, and the MTN disbursement account that pays them.

Evidence for invariant checks, like the payment ledger: per refund reference, how many create
requests arrived and how many payouts were made, which must never exceed one. Each step that
moves money happens under one lock together with the checks that guard it: a refund is recorded
only if its reference is free, MTN's remaining refundable amount is computed and reserved in the
same step, and a payout checks and debits the balance at once. Concurrent requests can therefore
neither refund one reference twice nor refund a payment beyond its amount.

Like the payment ledger, no method awaits while holding the lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from app.simulator.ledger import PaymentKey, PaymentStatus, ProviderName

RefundKey = tuple[ProviderName, str]


@dataclass(frozen=True, kw_only=True)
class Refund:
    """One refund a provider took; replaced whole when it changes."""

    provider: ProviderName
    # MTN: the refund's X-Reference-Id. Airtel names a refund by nothing of its own, and refunds a
    # collection at most once, so the collection's airtel_money_id names it.
    reference: str
    # MTN: referenceIdToRefund as sent. Airtel: the refunded collection's transaction.id.
    payment_reference: str
    amount: str
    currency: str
    payee_msisdn: str | None = None  # the refunded payer; None when the payment is unknown
    payee_id_type: str = "MSISDN"
    external_id: str | None = None
    payer_message: str | None = None
    payee_note: str | None = None
    callback_url: str | None = None
    callback_method: Literal["POST", "PUT"] = "PUT"
    api_version: str | None = None  # MTN's "v1_0" or "v2_0"
    # Decided on arrival: the MTN reason this refund will fail with; None means it will try to pay.
    refusal: str | None = None
    status: PaymentStatus = PaymentStatus.PENDING
    reason: str | None = None
    transaction_id: str | None = None  # MTN financialTransactionId, once paid
    # What the status endpoint reports; differs from the request only when a test forces it.
    reported_amount: str | None = None
    created_at: float = field(default_factory=time.time)
    settled_at: float | None = None

    @property
    def key(self) -> RefundKey:
        return (self.provider, self.reference)

    @property
    def payment_key(self) -> PaymentKey:
        return (self.provider, self.payment_reference)

    @property
    def shown_amount(self) -> str:
        return self.reported_amount if self.reported_amount is not None else self.amount

    @property
    def holds_money(self) -> bool:
        """Counts against what is left to refund: paid, or pending and meant to pay."""
        return self.refusal is None and self.status is not PaymentStatus.FAILED


class RefundLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refunds: dict[RefundKey, Refund] = {}
        self._create_requests: Counter[RefundKey] = Counter()
        self._payouts: Counter[RefundKey] = Counter()
        self._last_create_status: dict[RefundKey, int] = {}
        # Only currencies whose balance moved or was set; the others are at the opening balance.
        self._balances: dict[str, Decimal] = {}

    # --- create requests -----------------------------------------------------------------------

    def count_create_request(self, key: RefundKey) -> None:
        with self._lock:
            self._create_requests[key] += 1

    def note_create_answer(self, key: RefundKey, http_status: int) -> None:
        with self._lock:
            self._last_create_status[key] = http_status

    # --- recording and paying ------------------------------------------------------------------

    def add(self, refund: Refund, decide: Callable[[Decimal], str | None]) -> Refund | None:
        """Record a pending refund; None (and nothing recorded) if its reference is taken.

        ``decide`` gets what the payment's other refunds already hold and returns the reason the
        refund will fail with, or None; it runs under the lock, so two refunds of one payment
        never both see the same remainder.
        """
        with self._lock:
            if refund.key in self._refunds:
                return None
            held = sum(
                (
                    Decimal(other.amount)
                    for other in self._refunds.values()
                    if other.payment_key == refund.payment_key and other.holds_money
                ),
                Decimal(0),
            )
            recorded = replace(refund, refusal=decide(held))
            self._refunds[refund.key] = recorded
            return recorded

    def add_paid(self, refund: Refund) -> Refund | None:
        """Record a refund paid at once (Airtel's); None if its reference is taken."""
        with self._lock:
            if refund.key in self._refunds:
                return None
            paid = replace(refund, status=PaymentStatus.SUCCESSFUL, settled_at=time.time())
            self._refunds[refund.key] = paid
            self._payouts[refund.key] += 1
            return paid

    def pay_out(
        self, key: RefundKey, *, opening: Decimal, short_reason: str, transaction_id: str
    ) -> Refund | None:
        """Settle a pending MTN refund: fail it as decided, or pay it from the balance.

        None when it is no longer pending (reset meanwhile, or a test forced a status first).
        """
        with self._lock:
            current = self._refunds.get(key)
            if current is None or current.status is not PaymentStatus.PENDING:
                return None
            if current.refusal is not None:
                return self._store(current, status=PaymentStatus.FAILED, reason=current.refusal)
            balance = self._balances.get(current.currency, opening)
            amount = Decimal(current.amount)
            if amount > balance:
                return self._store(current, status=PaymentStatus.FAILED, reason=short_reason)
            self._pay(current, opening)
            return self._store(
                current, status=PaymentStatus.SUCCESSFUL, transaction_id=transaction_id
            )

    def force(
        self,
        key: RefundKey,
        *,
        status: PaymentStatus,
        reason: str | None,
        reported_amount: str | None,
        opening: Decimal,
        transaction_id: str,
    ) -> Refund:
        """A test's word: set what the provider reports.

        Forcing SUCCESSFUL on a refund that has not paid pays it now, even beyond the balance;
        forcing another status never takes back money that moved, so ``payouts`` stays the truth.
        """
        with self._lock:
            current = self._refunds[key]
            if status is PaymentStatus.SUCCESSFUL and self._payouts[key] == 0:
                self._pay(current, opening)
            return self._store(
                current,
                status=status,
                reason=reason if status is PaymentStatus.FAILED else None,
                transaction_id=(current.transaction_id or transaction_id)
                if status is PaymentStatus.SUCCESSFUL
                else current.transaction_id,
                reported_amount=reported_amount,
            )

    def _pay(self, refund: Refund, opening: Decimal) -> None:
        balance = self._balances.get(refund.currency, opening)
        self._balances[refund.currency] = balance - Decimal(refund.amount)
        self._payouts[refund.key] += 1

    def _store(self, current: Refund, **changes: Any) -> Refund:
        final = changes.get("status", current.status) is not PaymentStatus.PENDING
        updated = replace(current, settled_at=time.time() if final else None, **changes)
        self._refunds[current.key] = updated
        return updated

    # --- the disbursement balance --------------------------------------------------------------

    def balance(self, currency: str, opening: Decimal) -> Decimal:
        with self._lock:
            return self._balances.get(currency, opening)

    def set_balance(self, currency: str, amount: Decimal) -> None:
        with self._lock:
            self._balances[currency] = amount

    def balances(self, currencies: Iterable[str], opening: Decimal) -> dict[str, str]:
        with self._lock:
            known = set(currencies) | self._balances.keys()
            return {code: str(self._balances.get(code, opening)) for code in sorted(known)}

    # --- reading -------------------------------------------------------------------------------

    def get(self, key: RefundKey) -> Refund | None:
        with self._lock:
            return self._refunds.get(key)

    def find(self, reference: str) -> list[Refund]:
        with self._lock:
            return [r for r in self._refunds.values() if r.reference == reference]

    def refunds(self, provider: ProviderName | None = None) -> list[Refund]:
        with self._lock:
            return [r for r in self._refunds.values() if provider in (None, r.provider)]

    def refunded_by_payment(self) -> dict[PaymentKey, tuple[Decimal, list[str]]]:
        """Per refunded payment: the total of its successful refunds, and every refund's
        reference (failed and pending ones included)."""
        totals: dict[PaymentKey, tuple[Decimal, list[str]]] = {}
        with self._lock:
            for refund in self._refunds.values():
                total, references = totals.get(refund.payment_key, (Decimal(0), []))
                if refund.status is PaymentStatus.SUCCESSFUL:
                    total += Decimal(refund.amount)
                totals[refund.payment_key] = (total, [*references, refund.reference])
        return totals

    def snapshot(self, provider: ProviderName | None = None) -> dict[str, Any]:
        with self._lock:
            refunds = [
                self._describe(r) for r in self._refunds.values() if provider in (None, r.provider)
            ]
            unaccepted = [
                {
                    "provider": key[0],
                    "reference": key[1],
                    "create_requests": count,
                    "last_http_status": self._last_create_status.get(key),
                }
                for key, count in self._create_requests.items()
                if key not in self._refunds and provider in (None, key[0])
            ]
        return {"refunds": refunds, "unaccepted": unaccepted}

    def describe(self, refund: Refund) -> dict[str, Any]:
        with self._lock:
            return self._describe(self._refunds.get(refund.key, refund))

    def _describe(self, r: Refund) -> dict[str, Any]:
        return {
            "provider": r.provider,
            "reference": r.reference,
            "payment_reference": r.payment_reference,
            "amount": r.amount,
            "currency": r.currency,
            "payee_msisdn": r.payee_msisdn,
            "external_id": r.external_id,
            "status": r.status.value,
            "reason": r.reason,
            "transaction_id": r.transaction_id,
            "api_version": r.api_version,
            "callback_url": r.callback_url,
            "create_requests": self._create_requests.get(r.key, 0),
            "last_create_status": self._last_create_status.get(r.key),
            "payouts": self._payouts.get(r.key, 0),
            "reported_amount": r.reported_amount,
            "created_at": r.created_at,
            "settled_at": r.settled_at,
        }

    def reset(self) -> None:
        with self._lock:
            self._refunds.clear()
            self._create_requests.clear()
            self._payouts.clear()
            self._last_create_status.clear()
            self._balances.clear()
