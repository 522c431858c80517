"""Providers that implement the PaymentProvider and RefundProvider interfaces in memory, for
service tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from app.providers.base import (
    InitiationOutcome,
    InitiationResult,
    PaymentRequest,
    ProviderPaymentStatus,
    RefundRequest,
    RefundResult,
    StatusResult,
)
from app.providers.errors import ProviderUnavailable
from app.vocabulary import Provider


@dataclass
class FakeProvider:
    name: Provider
    initiation: InitiationResult = field(
        default_factory=lambda: InitiationResult(outcome=InitiationOutcome.ACCEPTED)
    )
    status: StatusResult | None = None  # None: answers PENDING with the request's amount
    unavailable: bool = False
    requests: list[PaymentRequest] = field(default_factory=list)
    status_calls: list[str] = field(default_factory=list)
    # Set to hold request_payment until the test releases it.
    gate: asyncio.Event | None = None

    async def request_payment(self, request: PaymentRequest) -> InitiationResult:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        return self.initiation

    async def get_status(self, reference: str) -> StatusResult:
        self.status_calls.append(reference)
        if self.unavailable:
            raise ProviderUnavailable("fake provider is down")
        if self.status is not None:
            return self.status
        return StatusResult(status=ProviderPaymentStatus.PENDING)

    async def aclose(self) -> None:
        return None


@dataclass
class FakeRefundProvider:
    """A provider's refund operation in memory: answers ``result`` to every refund and
    ``status`` (default PENDING) to every status read."""

    name: Provider
    result: RefundResult = field(default_factory=RefundResult.accepted)
    status: StatusResult | None = None
    unavailable: bool = False
    requests: list[RefundRequest] = field(default_factory=list)
    status_calls: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def request_refund(self, request: RefundRequest) -> RefundResult:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        return self.result

    async def get_refund_status(self, reference: str) -> StatusResult:
        self.status_calls.append(reference)
        if self.unavailable:
            raise ProviderUnavailable("fake provider is down")
        if self.status is not None:
            return self.status
        return StatusResult(status=ProviderPaymentStatus.PENDING)

    async def aclose(self) -> None:
        return None
