"""Outbound HTTP for provider adapters: one pooled client per provider, one retry policy.

Retrying is safe here because every provider call is idempotent on the wire: a request-to-pay
re-sends the same reference (MTN ``X-Reference-Id``, Airtel ``transaction.id``), so a retry of a
request that already landed is answered "duplicate", never charged twice.

Which answers are worth retrying is the adapter's call (``is_transient``): MTN reports business
refusals as HTTP 500 with a ``code``, Airtel wraps final answers in 5xx bodies too.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from httpx_aiohttp import HttpxAiohttpClient
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
)

from app.config import Settings
from app.metrics import PROVIDER_REQUESTS
from app.providers.errors import ProviderRejected, ProviderUnavailable
from app.vocabulary import Provider

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)
DEFAULT_MAX_CONNECTIONS = 256

HttpBackend = Literal["aiohttp", "httpx"]

# Failures where the request either never left or its answer was lost: the same request (same
# reference) may be sent again.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)

RETRYABLE_STATUSES = frozenset({408, 429})

TransientCheck = Callable[[httpx.Response], bool]
WaitStrategy = Callable[[RetryCallState], float]
Sleep = Callable[[float], Awaitable[None]]


def build_client(
    base_url: str,
    *,
    backend: HttpBackend = "httpx",
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
) -> httpx.AsyncClient:
    """The one client a provider adapter uses for the life of the process.

    Building one costs an SSL context (~15-25 ms of CPU), so never build one per payment.
    ``backend="aiohttp"`` keeps httpx's API (auth, timeouts, the exceptions ``send_with_retries``
    retries on) and lets aiohttp move the bytes; ``transport`` (tests) wins over both.
    """
    # Every open connection may be kept: with fewer keep-alive slots than connections, a busy
    # process closes and reopens provider connections (TLS included) on every burst.
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30,
    )
    client_class = HttpxAiohttpClient if backend == "aiohttp" else httpx.AsyncClient
    return client_class(
        base_url=base_url,
        timeout=timeout,
        limits=limits,
        transport=transport,
        follow_redirects=False,
    )


def client_for(settings: Settings, base_url: str) -> httpx.AsyncClient:
    """``build_client`` with the operator's HTTP backend and pool size."""
    return build_client(
        base_url,
        backend=settings.provider_http_backend,
        max_connections=settings.provider_max_connections,
    )


def is_transient_status(response: httpx.Response) -> bool:
    """408, 429 and 5xx: the provider may answer differently in a moment."""
    return response.status_code in RETRYABLE_STATUSES or response.status_code >= 500


def response_json(response: httpx.Response) -> Any:
    """The decoded JSON body, or None when there is none (202s, HTML error pages)."""
    try:
        return response.json()
    except ValueError:
        return None


def retry_after_seconds(response: httpx.Response, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), if present."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def exponential_jitter(*, first: float, cap: float = 10.0) -> WaitStrategy:
    """``first``, ``2·first``, ``4·first`` … (capped), each plus up to ``first`` of jitter, so
    processes that failed together do not retry together."""

    def wait(state: RetryCallState) -> float:
        base = min(cap, first * 2.0 ** (state.attempt_number - 1))
        return base + random.uniform(0, first)  # noqa: S311 (jitter, not a secret)

    return wait


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a provider call is retried.

    ``backoff`` and ``sleep`` are swappable so tests run without waiting; ``zero_wait()`` is the
    policy tests use.
    """

    attempts: int = 3
    backoff: WaitStrategy = field(default_factory=lambda: exponential_jitter(first=0.6))
    # A provider asking for a longer pause than this will not be ready within one API request:
    # give up and leave the payment to the reconciler rather than hold the caller.
    max_retry_after: float = 30.0
    sleep: Sleep = asyncio.sleep

    @classmethod
    def zero_wait(cls, *, attempts: int = 3, sleep: Sleep | None = None) -> RetryPolicy:
        async def no_sleep(_: float) -> None:
            return None

        return cls(attempts=attempts, backoff=lambda _: 0.0, sleep=sleep or no_sleep)

    def wait(self, state: RetryCallState) -> float:
        backoff = self.backoff(state)
        hinted = _hinted_wait(state)
        if hinted is None:
            return backoff
        return max(backoff, min(hinted, self.max_retry_after))

    def should_stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.attempts:
            return True
        hinted = _hinted_wait(state)
        return hinted is not None and hinted > self.max_retry_after


def _hinted_wait(state: RetryCallState) -> float | None:
    outcome = state.outcome
    if outcome is None or outcome.failed:
        return None
    response = outcome.result()
    if not isinstance(response, httpx.Response) or response.status_code not in (429, 503):
        return None
    return retry_after_seconds(response)


@dataclass(frozen=True, slots=True)
class Reply:
    """The provider's final, non-transient answer and how many attempts it took.

    ``attempts > 1`` means an earlier attempt may have reached the provider, so an answer that
    says nothing about the request itself (a credentials refusal) cannot prove it was not taken.
    """

    response: httpx.Response
    attempts: int


async def send_with_retries(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    policy: RetryPolicy,
    provider: Provider,
    operation: str,
    auth: httpx.Auth | None = None,
    is_transient: TransientCheck = is_transient_status,
) -> Reply:
    """Send ``request`` (the very same request every attempt) until a non-transient answer.

    Raises ``ProviderUnavailable`` when every attempt failed transiently. ``operation`` names the
    call in logs (``"mtn.token"``); URLs are not logged because some carry a phone number. The
    metrics label the call by ``provider`` and the name after the dot (``"token"``).
    """
    attempts = 0

    async def attempt() -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if auth is None:
            return await client.send(request)
        return await client.send(request, auth=auth)

    def log_retry(state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        if outcome.failed:
            reason = type(outcome.exception()).__name__
        else:
            reason = f"HTTP {outcome.result().status_code}"
        logger.warning(
            "%s: attempt %d failed (%s), retrying",
            operation,
            state.attempt_number,
            reason,
        )

    def last_outcome(state: RetryCallState) -> httpx.Response:
        # Out of attempts: hand back the last answer, or re-raise the last transport error.
        if state.outcome is None:
            raise RuntimeError(f"{operation}: retried without an outcome")
        response: httpx.Response = state.outcome.result()
        return response

    retrying = AsyncRetrying(
        stop=policy.should_stop,
        wait=policy.wait,
        retry=retry_if_exception_type(RETRYABLE_ERRORS) | retry_if_result(is_transient),
        sleep=policy.sleep,
        before_sleep=log_retry,
        retry_error_callback=last_outcome,
    )
    started = time.perf_counter()
    operation_label = operation.rpartition(".")[2]

    def observe(outcome: str) -> None:
        PROVIDER_REQUESTS.labels(provider.value, operation_label, outcome).observe(
            time.perf_counter() - started
        )

    try:
        response: httpx.Response = await retrying(attempt)
    except httpx.TransportError as exc:
        observe("unreachable")
        raise ProviderUnavailable(
            f"{operation}: no answer after {attempts} attempt(s) ({type(exc).__name__})"
        ) from exc
    except ProviderRejected as exc:
        observe("rejected")
        if attempts > 1:
            # Credentials refused on a retry say nothing about the earlier attempt that may
            # have landed: the outcome is unknown, not refused.
            raise ProviderUnavailable(f"{operation}: {exc} on attempt {attempts}") from exc
        raise
    if is_transient(response):
        observe("unavailable")
        raise ProviderUnavailable(
            f"{operation}: HTTP {response.status_code} after {attempts} attempt(s)"
        )
    observe(f"{response.status_code // 100}xx")
    return Reply(response=response, attempts=attempts)
