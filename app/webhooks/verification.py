"""Where a callback came from: the client address behind trusted proxies, and the allowlist.

Each check is a pure function of what arrived and never raises on hostile input. The signature
checks belong to each provider (its folder); the callback service runs them all in order.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- client address ------------------------------------------------------------------------------

_PORT = re.compile(r"[0-9]{1,5}")


def parse_ip(text: str) -> IPAddress | None:
    """One address as a peer or proxy writes it, or None if it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:443``. An IPv4-mapped IPv6 address (``::ffff:1.2.3.4``, what a dual-stack
    listener reports for an IPv4 client) becomes the IPv4 address, so allowlists written in IPv4
    match it.
    """
    host = text.strip()
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return None
        port = host[end + 1 :]
        if port and not (port.startswith(":") and _PORT.fullmatch(port[1:])):
            return None
        host = host[1:end]
    elif host.count(":") == 1:
        # Exactly one colon can only be IPv4 with a port; bare IPv6 always has at least two.
        host, _, port = host.partition(":")
        if not _PORT.fullmatch(port):
            return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in_any(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    # Addresses are normalised to IPv4, but an operator may still list a mapped range such as
    # ::ffff:10.0.0.0/104; test the mapped form against IPv6 networks so that entry works too.
    forms: tuple[IPAddress, ...] = (address,)
    if isinstance(address, ipaddress.IPv4Address):
        forms = (address, ipaddress.IPv6Address(f"::ffff:{address}"))
    return any(form.version == net.version and form in net for form in forms for net in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]
) -> IPAddress | None:
    """The address a callback came from, or None when it cannot be known.

    ``peer`` is the direct TCP peer (``request.client.host``). Only when that peer is one of our
    ``trusted_proxies`` is ``X-Forwarded-For`` read, and then from the right: each proxy appends
    the address it received the request from, so the entries right of the first untrusted one
    were written by our proxies and everything left of it may have been written by the client.
    The answer is the right-most entry that is not a trusted proxy; when every entry is one, the
    request started inside our own network and the left-most entry is the answer. Several
    ``X-Forwarded-For`` header lines must be joined with ``,`` in order before calling.

    A malformed entry (``unknown``, a hostname, garbage) gives None. The walk only reaches it
    after passing trusted proxies, so either one of our proxies wrote it or a proxy passed the
    client's header on without appending; the client is unknown either way. None is denied by
    any allowlist (:func:`ip_allowed`), whereas returning the last proxy would wrongly pass an
    allowlist that happens to include our own network. Empty list elements (``a, , b``) carry
    nothing and are skipped, as HTTP list syntax allows.
    """
    address = parse_ip(peer) if peer else None
    if address is None or not trusted_proxies or not _in_any(address, trusted_proxies):
        return address
    for entry in reversed((forwarded_for or "").split(",")):
        if not entry.strip():
            continue
        hop = parse_ip(entry)
        if hop is None:
            return None
        address = hop
        if not _in_any(hop, trusted_proxies):
            break
    return address


def ip_allowed(ip: IPAddress | None, allowed: Sequence[IPNetwork]) -> bool:
    """Whether ``ip`` is in the allowlist; an empty allowlist means the check is off."""
    if not allowed:
        return True
    return ip is not None and _in_any(ip, allowed)
