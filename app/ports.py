"""Listening sockets, and a failure to get one that names the port and the flag that moves it."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Sequence
from typing import NamedTuple


class PortUnavailable(OSError):
    """``host:port`` cannot be bound: taken by another process, not a local address, or
    privileged. An OSError still, so code that catches those keeps working."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        self.host = host
        self.port = port
        self.in_use = cause.errno == errno.EADDRINUSE
        self.reason = _reason(cause)
        message = f"cannot listen on {host}:{port}: {self.reason}"
        if cause.errno is None:
            super().__init__(message)
        else:
            super().__init__(cause.errno, message)

    def explain(self, role: str, flag: str) -> str:
        """One line for the operator: which port, what wanted it, and how to pick another."""
        if self.in_use:
            return (
                f"port {self.port} ({role}) is already in use on {self.host}: "
                f"choose another with {flag}"
            )
        # Not a taken port: a host that is not local, or a privileged port.
        return (
            f"cannot listen on {self.host}:{self.port} ({role}): {self.reason}: "
            f"check --host and {flag}"
        )


def _reason(cause: OSError) -> str:
    # Name-resolution errors carry negative numbers that os.strerror does not know.
    if cause.errno is not None and cause.errno > 0:
        text = os.strerror(cause.errno)
    else:
        text = cause.strerror or str(cause) or type(cause).__name__
    return text[:1].lower() + text[1:]


def bind_listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), or PortUnavailable.

    SO_REUSEADDR as uvicorn sets it, so a port left in TIME_WAIT by a server that just stopped
    is free again, and a port another process listens on is not.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every keep-alive response stalls ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortUnavailable(host, port, exc) from exc
    return sock


def ensure_bindable(host: str, port: int) -> None:
    """Fail now, before a server spends its start-up on a port it cannot have.

    A check, not a reservation: uvicorn binds again itself, so a port taken in between still
    fails there, with uvicorn's own message (which names the address).
    """
    bind_listening_socket(host, port).close()


class Listener(NamedTuple):
    """A port a command listens on, as the operator knows it."""

    port: int
    role: str  # what listens there: "API", "simulator"
    flag: str  # the option that sets the port: "--port"


def check_listeners(host: str, listeners: Sequence[Listener]) -> str | None:
    """Why one of ``listeners`` cannot have its port, in one line; None when all can."""
    claimed: dict[int, str] = {}
    for listener in listeners:
        if listener.port and listener.port in claimed:
            return (
                f"{claimed[listener.port]} and {listener.flag} both ask for port "
                f"{listener.port}: give each its own"
            )
        claimed[listener.port] = listener.flag
        try:
            ensure_bindable(host, listener.port)
        except PortUnavailable as exc:
            return exc.explain(listener.role, listener.flag)
    return None


def explain_unavailable(exc: PortUnavailable, listeners: Sequence[Listener]) -> str:
    """``exc`` in one line, naming the flag of the listener whose port it is."""
    for listener in listeners:
        if listener.port == exc.port:
            return exc.explain(listener.role, listener.flag)
    return exc.strerror or str(exc)
