"""A storefront that accepts every event: answers 200 to any request, counts what it got.

Raw asyncio rather than a framework, so the events the worker delivers cost the machine as little
as possible besides the worker's own side. ``GET /healthz`` doubles as the readiness probe and
``GET /count`` reports how many requests arrived.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvloop


class _Sink(asyncio.Protocol):
    received = 0

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have write().
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self._buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            total = head_end + 4 + length
            if len(self._buffer) < total:
                return
            self._buffer = self._buffer[total:]
            request_line = head.split("\r\n", 1)[0]
            if request_line.startswith("GET /count"):
                body = str(_Sink.received).encode()
            else:
                if not request_line.startswith("GET /healthz"):
                    _Sink.received += 1
                body = b"{}"
            self._transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Sink, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
