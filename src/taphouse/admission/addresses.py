"""Client addresses: which proxies are believed, and the key a caller is budgeted under.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when the connection
comes from an address in ``Settings.trusted_proxies`` (default: none, so a client can
never choose its own address). :class:`ForwardedHeaders` applies that rule to every
request inside the application, whatever ASGI server runs it; the uvicorn options in
:mod:`taphouse.admission.connections` give uvicorn's own forwarded-header handling the
same list, never its default.

Addresses are keys for budgets and fairness only, never for access: an anonymous job is
reached by its unguessable id. IPv6 clients are keyed by their /64 network (one host
usually holds a whole /64), IPv4-mapped IPv6 addresses by the IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(host: str | None) -> IPAddress | None:
    """The IP address in ``host`` (brackets and an IPv6 zone allowed), or None."""
    if not host:
        return None
    text = host.strip().strip("[]").split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def address_key(host: str | None) -> str:
    """The budget key of a client address: the IPv4 address, the IPv6 /64 network, or
    the text itself (lower case) when it is not an IP address (e.g. a test client)."""
    addr = parse_address(host)
    if addr is None:
        return (host or "-").strip().lower() or "-"
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


#: Prefix lengths of the networks an address belongs to, widest first: IPv6 /32 (an
#: operator's allocation), /48 (a site), /64 (a host); IPv4 /16, /24, the address.
NETWORK_LEVELS = {4: (16, 24, 32), 6: (32, 48, 64)}


def address_path(host: str | None) -> tuple[str, str, str]:
    """The networks of a client address, widest first, for fair shares of a queue:
    (IPv6 /32, /48, /64) or (IPv4 /16, /24, address); the last is :func:`address_key`.
    A text that is not an IP address is its own network at every level."""
    addr = parse_address(host)
    if addr is None:
        key = address_key(host)
        return (key, key, key)
    wide, site, own = (str(ipaddress.ip_network((addr, bits), strict=False))
                       for bits in NETWORK_LEVELS[addr.version])
    return (wide, site, address_key(host))


def caller_key(identity: Any, host: str | None) -> str:
    """The key a caller is budgeted under: its account (``user:<user id>``, stable when
    names are re-used) when logged in, otherwise its address (:func:`address_key`)."""
    username = getattr(identity, "username", None)
    if username is not None:
        user_id = getattr(identity, "user_id", None)
        return f"user:{user_id if user_id is not None else username}"
    return "addr:" + address_key(host)


def is_loopback(host: str | None) -> bool:
    addr = parse_address(host)
    if addr is None:
        return (host or "").strip().lower() == "localhost"
    return addr.is_loopback


class TrustedProxies:
    """A set of proxy addresses and networks (``"10.0.0.5"``, ``"10.0.0.0/8"``,
    ``"::1"``) whose forwarded headers are believed.

    Raises
    ------
    ValueError
        An entry is neither an address nor a network.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks: list[IPNetwork] = []
        for entry in entries:
            text = entry.strip()
            if not text:
                continue
            try:
                self.networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"trusted proxy {text!r} is not an IP address or network"
                                 " (e.g. 10.0.0.5 or 10.0.0.0/8)") from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, host: object) -> bool:
        addr = parse_address(host if isinstance(host, str) else None)
        return addr is not None and any(addr in net for net in self.networks)

    def client_of(self, peer: str, forwarded_for: str) -> str:
        """The client address behind ``peer`` (a trusted proxy) given the
        ``X-Forwarded-For`` list: the right-most entry that is not itself a trusted
        proxy (entries left of it were written by the client and prove nothing)."""
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            host = _strip_port(hop)
            if host not in self:
                return host if parse_address(host) is not None else peer
        return _strip_port(hops[0]) if hops else peer


def _strip_port(hop: str) -> str:
    if hop.startswith("["):
        return hop[1:hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:  # IPv4 with a port
        return hop.split(":", 1)[0]
    return hop


#: Scope key set on requests that came through a trusted proxy.
VIA_PROXY = "taphouse.via_proxy"


def came_via_proxy(scope: Any) -> bool:
    """Whether the request reached us through a trusted proxy (its peer address is then
    the proxy's, so "loopback" proves nothing about the client)."""
    return bool(scope.get(VIA_PROXY))


class ForwardedHeaders:
    """ASGI middleware: for requests from a trusted proxy, take the client address from
    ``X-Forwarded-For`` and the scheme from ``X-Forwarded-Proto``; from anyone else,
    ignore both headers."""

    def __init__(self, app: Any, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted:
            client = scope.get("client")
            if client and client[0] in self.trusted:
                proto = forwarded = None
                for name, value in scope.get("headers", ()):
                    if name == b"x-forwarded-proto":
                        proto = value.decode("latin-1").strip().lower()
                    elif name == b"x-forwarded-for":
                        text = value.decode("latin-1")
                        forwarded = text if forwarded is None else forwarded + "," + text
                scope = dict(scope)
                scope[VIA_PROXY] = True
                if proto in ("http", "https"):
                    scope["scheme"] = proto if scope["type"] == "http" else \
                        proto.replace("http", "ws")
                if forwarded:
                    scope["client"] = (self.trusted.client_of(client[0], forwarded), 0)
        await self.app(scope, receive, send)


__all__ = ["VIA_PROXY", "ForwardedHeaders", "came_via_proxy", "TrustedProxies", "address_key", "address_path", "caller_key", "is_loopback",
           "parse_address"]
