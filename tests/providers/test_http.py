"""The shared client and retry policy: what is retried, how often, and how long it waits."""

from __future__ import annotations

import email.utils
from collections.abc import AsyncGenerator

import httpx
import pytest
import respx
from httpx_aiohttp import AiohttpTransport
from tenacity import RetryCallState

from app.providers.errors import ProviderRejected, ProviderUnavailable
from app.providers.http import (
    RetryPolicy,
    build_client,
    retry_after_seconds,
    send_with_retries,
)
from app.vocabulary import Provider
from tests.providers.conftest import RecordingSleep

URL = "https://provider.test"


async def send(
    policy: RetryPolicy, *, is_transient: object = None, auth: httpx.Auth | None = None
) -> tuple[int, int]:
    async with build_client(URL) as client:
        request = client.build_request("POST", "/pay", json={"id": "ref-1"})
        kwargs = {} if is_transient is None else {"is_transient": is_transient}
        reply = await send_with_retries(
            client,
            request,
            policy=policy,
            provider=Provider.MTN_MOMO,
            operation="mtn.request_to_pay",
            auth=auth,
            **kwargs,
        )
        return reply.response.status_code, reply.attempts


def test_client_has_explicit_timeouts_and_pool_limits() -> None:
    client = build_client(URL, max_connections=64)
    assert client.timeout == httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)
    pool = client._transport._pool
    assert pool._max_connections == 64
    assert pool._max_keepalive_connections == 64  # every connection may stay open
    assert str(client.base_url).rstrip("/") == URL


def test_the_aiohttp_backend_gets_the_same_pool_limit() -> None:
    client = build_client(URL, backend="aiohttp", max_connections=64)
    assert isinstance(client._transport, AiohttpTransport)
    assert client._transport.limits.max_connections == 64
    assert client.timeout == httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)


def test_default_backoff_starts_at_0_6_s_and_grows_with_jitter() -> None:
    policy = RetryPolicy()
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    waits = []
    for attempt in (1, 2):
        state.attempt_number = attempt
        waits.append(policy.wait(state))
    assert 0.6 <= waits[0] <= 1.2
    assert 1.2 <= waits[1] <= 1.8
    assert policy.attempts == 3


async def test_5xx_is_retried_with_the_same_request_until_success(
    api: respx.MockRouter, slept: RecordingSleep
) -> None:
    route = api.post(f"{URL}/pay").mock(
        side_effect=[httpx.Response(503), httpx.Response(500), httpx.Response(202)]
    )
    status, attempts = await send(RetryPolicy.zero_wait(sleep=slept))
    assert (status, attempts) == (202, 3)
    assert route.call_count == 3
    assert {call.request.content for call in route.calls} == {b'{"id":"ref-1"}'}
    assert slept.waits == [0.0, 0.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_other_4xx_are_never_retried(api: respx.MockRouter, status: int) -> None:
    route = api.post(f"{URL}/pay").respond(status)
    assert await send(RetryPolicy.zero_wait()) == (status, 1)
    assert route.call_count == 1


async def test_429_honours_retry_after(api: respx.MockRouter, slept: RecordingSleep) -> None:
    api.post(f"{URL}/pay").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)]
    )
    assert await send(RetryPolicy.zero_wait(sleep=slept)) == (200, 2)
    assert slept.waits == [7.0]


async def test_a_retry_after_beyond_the_cap_gives_up_instead_of_waiting(
    api: respx.MockRouter, slept: RecordingSleep
) -> None:
    route = api.post(f"{URL}/pay").respond(503, headers={"Retry-After": "120"})
    with pytest.raises(ProviderUnavailable, match="HTTP 503 after 1 attempt"):
        await send(RetryPolicy.zero_wait(sleep=slept))
    assert route.call_count == 1
    assert slept.waits == []


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.PoolTimeout("pool"),
        httpx.RemoteProtocolError("peer closed"),
    ],
)
async def test_network_failures_are_retried_then_reported_unavailable(
    api: respx.MockRouter, error: Exception
) -> None:
    route = api.post(f"{URL}/pay").mock(side_effect=error)
    with pytest.raises(ProviderUnavailable, match="no answer after 3 attempt"):
        await send(RetryPolicy.zero_wait())
    assert route.call_count == 3


async def test_other_transport_errors_are_unavailable_without_retry(
    api: respx.MockRouter,
) -> None:
    route = api.post(f"{URL}/pay").mock(side_effect=httpx.UnsupportedProtocol("gopher"))
    with pytest.raises(ProviderUnavailable, match="after 1 attempt"):
        await send(RetryPolicy.zero_wait())
    assert route.call_count == 1


async def test_transient_5xx_on_every_attempt_is_unavailable(api: respx.MockRouter) -> None:
    route = api.post(f"{URL}/pay").respond(502)
    with pytest.raises(ProviderUnavailable, match="HTTP 502 after 3 attempt"):
        await send(RetryPolicy.zero_wait())
    assert route.call_count == 3


async def test_the_adapter_decides_which_answers_are_transient(api: respx.MockRouter) -> None:
    route = api.post(f"{URL}/pay").respond(500, json={"code": "NOT_ALLOWED"})
    assert await send(RetryPolicy.zero_wait(), is_transient=lambda r: False) == (500, 1)
    assert route.call_count == 1


class _RefusingAuth(httpx.Auth):
    """Credentials refused while building the request, as a token fetch would."""

    def __init__(self, refuse_from_attempt: int) -> None:
        self.calls = 0
        self.refuse_from_attempt = refuse_from_attempt

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self.calls += 1
        if self.calls >= self.refuse_from_attempt:
            raise ProviderRejected("token refused")
        yield request


async def test_a_credentials_refusal_on_the_first_attempt_is_definitive(
    api: respx.MockRouter,
) -> None:
    api.post(f"{URL}/pay").respond(503)
    with pytest.raises(ProviderRejected):
        await send(RetryPolicy.zero_wait(), auth=_RefusingAuth(refuse_from_attempt=1))


async def test_a_credentials_refusal_after_an_uncertain_attempt_is_unknown(
    api: respx.MockRouter,
) -> None:
    api.post(f"{URL}/pay").respond(503)
    with pytest.raises(ProviderUnavailable, match="token refused on attempt 2"):
        await send(RetryPolicy.zero_wait(), auth=_RefusingAuth(refuse_from_attempt=2))


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 12, usegmt=True)
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": date}), now=now) == 12
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Response(429)) is None
