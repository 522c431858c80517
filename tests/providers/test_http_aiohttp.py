"""The aiohttp backend over real sockets: what ``send_with_retries`` sees must not depend on
which library moves the bytes (same request re-sent, transport failures retried, then
``ProviderUnavailable``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from app.providers.errors import ProviderUnavailable
from app.providers.http import RetryPolicy, build_client, send_with_retries
from app.vocabulary import Provider

# attempt number → raw HTTP reply; b"" closes the connection, None never answers
Answer = Callable[[int], bytes | None]


@dataclass
class RawServer:
    """A provider stand-in that records each request's bytes and answers per attempt."""

    answer: Answer
    bodies: list[bytes] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.bodies.append(await reader.readexactly(length))
                reply = self.answer(len(self.bodies))
                if reply is None:
                    await reader.read()  # never answers: wait until the client gives up
                    return
                if not reply:
                    return  # drop the connection without a word
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def reply(status: int, body: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
        "Content-Type: application/json\r\n\r\n"
    ).encode() + body


async def listen(raw: RawServer) -> asyncio.Server:
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    raw.url = f"http://127.0.0.1:{port}"
    return server


async def post_with_retries(url: str, *, read_timeout: float = 5.0) -> tuple[int, int]:
    timeout = httpx.Timeout(connect=2.0, read=read_timeout, write=2.0, pool=2.0)
    async with build_client(url, backend="aiohttp", timeout=timeout) as client:
        request = client.build_request("POST", "/pay", json={"id": "ref-1"})
        result = await send_with_retries(
            client,
            request,
            policy=RetryPolicy.zero_wait(),
            provider=Provider.MTN_MOMO,
            operation="mtn.request_to_pay",
        )
        return result.response.status_code, result.attempts


async def test_a_5xx_is_retried_with_the_same_body_until_accepted() -> None:
    raw = RawServer(lambda attempt: reply(503) if attempt < 3 else reply(202))
    server = await listen(raw)
    try:
        assert await post_with_retries(raw.url) == (202, 3)
    finally:
        server.close()
    assert raw.bodies == [b'{"id":"ref-1"}'] * 3


async def test_a_provider_that_never_answers_is_unavailable_after_every_attempt() -> None:
    raw = RawServer(lambda attempt: None)
    server = await listen(raw)
    try:
        with pytest.raises(ProviderUnavailable, match="3 attempt"):
            await post_with_retries(raw.url, read_timeout=0.2)
    finally:
        server.close()
    assert raw.bodies == [b'{"id":"ref-1"}'] * 3  # each attempt re-sent the same request


async def test_a_closed_port_is_unavailable_not_an_unexpected_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ProviderUnavailable):
        await post_with_retries(f"http://127.0.0.1:{port}")


async def test_a_connection_dropped_mid_answer_is_retried() -> None:
    # First attempt: the server reads the request and closes without answering.
    raw = RawServer(lambda attempt: b"" if attempt == 1 else reply(202))
    server = await listen(raw)
    try:
        assert await post_with_retries(raw.url) == (202, 2)
    finally:
        server.close()
