"""The client's IP address behind reverse proxies.

``X-Forwarded-For`` is a list each proxy appends its peer to, so only its right end was
written by proxies we run; anything to the left may be the client's own invention. The
client is the right-most address that is not one of our trusted proxies — provided the
request reached us through a trusted proxy at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies", "client_ip"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(text: str) -> _Address | None:
    """An address from a header entry: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class TrustedProxies:
    """Addresses and networks (``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"::1"``) of our proxies."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks: tuple[_Network, ...] = tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, addr: _Address) -> bool:
        return any(addr.version == n.version and addr in n for n in self.networks)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: TrustedProxies) -> str | None:
    """The client's address: ``peer`` (the TCP peer), or, when ``peer`` is a trusted proxy,
    the right-most untrusted address of ``X-Forwarded-For``. None when nothing is an IP."""
    addr = _parse(peer) if peer else None
    if addr is None or not forwarded_for or addr not in trusted:
        return str(addr) if addr is not None else None
    for entry in reversed(forwarded_for.split(",")):
        hop = _parse(entry)
        if hop is None:
            break  # garbage: do not look further left than the last hop we could read
        addr = hop
        if hop not in trusted:
            break
    return str(addr)
