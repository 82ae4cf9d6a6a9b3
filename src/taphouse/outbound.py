"""The one way out: every HTTP request the server makes on a user's behalf (TAP URL
uploads now, remote TAP services later) goes through :class:`Outbound`.

A URL from a user must not become a way into the data centre (SSRF). For each hop:

- only ``http`` and ``https``, no credentials in the URL;
- the host name is resolved **once**; every address it resolves to must be public, or
  allow-listed by the operator (``Settings.outbound_allow``: networks or host names).
  Refused: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
  (169.254/16 with the cloud metadata address, fe80::/10), 0.0.0.0/8, shared address
  space 100.64/10, multicast, reserved and documentation ranges, and IPv6 forms that
  carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, Teredo, NAT64);
- the connection goes to the address that was checked (no second lookup, so DNS
  rebinding cannot swap it), with the original name in ``Host`` and for TLS;
- a redirect is followed only to the same host (and is checked like the first hop), at
  most ``max_redirects`` times;
- the body is read up to ``max_bytes`` (more is refused, ``Content-Length`` or not),
  within ``timeout`` seconds in all; no compression is asked for (no zip bombs); at most
  ``concurrent`` requests run at once.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urljoin, urlsplit

from taphouse.errors import ServiceError
from taphouse.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_REDIRECTS = {301, 302, 303, 307, 308}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


#: Request headers that carry credentials: never sent on across origins by a redirect.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundError(ServiceError):
    """A server-side fetch refused or failed; the message says which URL and why."""

    status = 400
    #: True when the request failed to connect or the connection broke (refused, reset,
    #: closed without an answer): worth retrying later. Timeouts and refusals are not.
    retryable = False


class OutboundTooLarge(OutboundError):
    """The answer is longer than the byte limit of the fetch (callers that answer
    with it, like a URL upload, say 413)."""


@dataclass(frozen=True)
class Fetched:
    """The answer to an outbound request (after redirects)."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


@dataclass(frozen=True)
class OutboundPolicy:
    """What outbound requests may reach and how much they may cost.

    ``allow``: networks (``10.1.0.0/16``) or host names the operator allows although
    they are not public; ``hosts``: when not empty, the only host names that may be
    fetched at all.
    """

    allow: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    max_bytes: int = 200 * 1024 * 1024
    timeout: float = 30.0
    max_redirects: int = 5
    concurrent: int = 4
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, default=())
    names: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        networks, names = [], set()
        for item in self.allow:
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                names.add(item.strip().lower().rstrip("."))
        object.__setattr__(self, "networks", tuple(networks))
        object.__setattr__(self, "names", frozenset(names))


def system_resolver(host: str, port: int) -> list[str]:
    """Addresses of ``host`` from the system resolver (one lookup)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(ip: Address) -> bool:
    """Whether ``ip`` is a public unicast address, also when an IPv6 form embeds IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = (ip.ipv4_mapped or ip.sixtofour
                    or (ip.teredo[1] if ip.teredo else None)
                    or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None))
        if embedded is not None:
            return False  # an IPv4 address in disguise: never followed
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return False
    return ip.is_global


class Outbound:
    """Makes outbound HTTP requests under an :class:`OutboundPolicy`.

    ``resolver`` (host, port) -> addresses; the system's by default (tests give their
    own to play DNS tricks).
    """

    def __init__(self, policy: OutboundPolicy, *, resolver: Resolver = system_resolver,
                 user_agent: str = "taphouse") -> None:
        self.policy = policy
        self.resolver = resolver
        self.user_agent = user_agent
        self._slots = threading.BoundedSemaphore(max(1, policy.concurrent))

    def fetch(self, url: str, *, method: str = "GET", body: bytes | None = None,
              headers: Mapping[str, str] | None = None,
              max_bytes: int | None = None) -> Fetched:
        """One request, redirects followed within the policy; raises
        :class:`OutboundError` for anything refused, failed, too big or too slow."""
        limit = self.policy.max_bytes if max_bytes is None else max_bytes
        deadline = time.monotonic() + self.policy.timeout
        if not self._slots.acquire(timeout=self.policy.timeout):
            raise OutboundError(f"cannot fetch {_show(url)}: too many outbound requests at"
                                " once; try again later")
        try:
            first_host = first_origin = None
            sent = dict(headers or {})
            for _hop in range(self.policy.max_redirects + 1):
                parts = self._check_url(url)
                host = (parts.hostname or "").lower().rstrip(".")
                origin = (parts.scheme, parts.port or _DEFAULT_PORTS[parts.scheme])
                if first_host is None:
                    first_host, first_origin = host, origin
                elif host != first_host:
                    raise OutboundError(f"{_show(url)}: a redirect to another host"
                                        f" ({first_host} -> {host}) is not followed")
                elif origin != first_origin:
                    # Another port or scheme is another service (or plain HTTP): the
                    # caller's credentials stay with the origin they were meant for.
                    sent = {k: v for k, v in sent.items()
                            if k.lower() not in _CREDENTIAL_HEADERS}
                response = self._request(parts, host, method, body, sent, limit, deadline)
                location = response.headers.get("location")
                if response.status in _REDIRECTS and location:
                    url = urljoin(url, location)
                    if response.status == 303 or (response.status in (301, 302)
                                                  and method == "POST"):
                        method, body = "GET", None
                    continue
                return Fetched(url=url, status=response.status, headers=response.headers,
                               body=response.body)
            raise OutboundError(f"{_show(url)}: more than {self.policy.max_redirects}"
                                " redirects")
        finally:
            self._slots.release()

    # --- one hop -----------------------------------------------------------------------
    def _check_url(self, url: str) -> SplitResult:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise OutboundError(f"{_show(url)}: only http and https URLs can be fetched")
        if not parts.hostname:
            raise OutboundError(f"{_show(url)}: no host in the URL")
        if parts.username is not None or parts.password is not None:
            raise OutboundError(f"{_show(url)}: credentials in a URL are not sent")
        host = parts.hostname.lower().rstrip(".")
        if self.policy.hosts and host not in {h.lower() for h in self.policy.hosts}:
            raise OutboundError(f"{_show(url)}: host {host!r} is not one of the hosts this"
                                " service fetches from")
        try:
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise OutboundError(f"{_show(url)}: bad port") from None
        return parts

    def _address(self, host: str, port: int) -> str:
        """The one checked address to connect to (every resolved one must pass)."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
            found = [str(literal)]
        except ValueError:
            try:
                found = self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise OutboundError(f"cannot resolve {host!r}: {exc}") from None
        if not found:
            raise OutboundError(f"cannot resolve {host!r}")
        for text in found:
            ip = ipaddress.ip_address(text.split("%")[0])
            if not (self._allowed(host, ip) or is_public(ip)):
                raise OutboundError(
                    f"{host!r} resolves to {ip}, a loopback, private, link-local or other"
                    " non-public address: not fetched (an operator can allow it with"
                    " TAPHOUSE_OUTBOUND_ALLOW)")
        return found[0].split("%")[0]

    def _allowed(self, host: str, ip: Address) -> bool:
        return host in self.policy.names or any(ip in net for net in self.policy.networks)

    def _request(self, parts: SplitResult, host: str, method: str, body: bytes | None,
                 headers: Mapping[str, str] | None, limit: int, deadline: float) -> _Answer:
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        address = self._address(host, port)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundError(f"{_show(parts.geturl())}: timed out")
        conn: http.client.HTTPConnection
        if https:
            conn = _PinnedHTTPS(address, host, port, timeout=remaining)
        else:
            conn = _PinnedHTTP(address, port, timeout=remaining)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        default_port = 443 if https else 80
        sent = {"Host": host if port == default_port else f"{host}:{port}",
                "User-Agent": self.user_agent, "Accept-Encoding": "identity",
                **dict(headers or {})}
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            declared = response.getheader("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise OutboundTooLarge(f"{_show(parts.geturl())}: {declared} bytes; the limit is"
                                    f" {limit}")
            data = _read(response, limit, deadline, parts.geturl())
            return _Answer(response.status,
                           {k.lower(): v for k, v in response.getheaders()}, data)
        except OutboundError:
            raise
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(
                exc).__name__
            error = OutboundError(f"cannot fetch {_show(parts.geturl())}: {reason}")
            error.retryable = isinstance(exc, ConnectionError)
            raise error from None
        finally:
            conn.close()


@dataclass
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _read(response: http.client.HTTPResponse, limit: int, deadline: float, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise OutboundError(f"cannot fetch {_show(url)}: timed out")
        chunk = response.read1(65536)
        if not chunk:
            missing = response.length  # bytes still due by Content-Length (None: unknown)
            if missing:
                error = OutboundError(f"cannot fetch {_show(url)}: the connection closed"
                                      f" after {size} bytes, {missing} bytes short")
                error.retryable = True
                raise error
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise OutboundTooLarge(f"{_show(url)}: more than {limit} bytes; the limit is"
                                   f" {limit}")
        chunks.append(chunk)


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to a fixed, already checked address."""


class _PinnedHTTPS(http.client.HTTPSConnection):
    """Connects to a fixed, already checked address; TLS names and verifies the host."""

    def __init__(self, address: str, host: str, port: int, *, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._server_name = host

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)  # type: ignore[attr-defined]


def _show(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "..."


def policy_from(settings: Settings) -> OutboundPolicy:
    """The policy for URL uploads from settings (``outbound_allow``, ``upload_url_hosts``,
    ``upload_max_bytes``, ``outbound_timeout``)."""
    return OutboundPolicy(allow=tuple(settings.outbound_allow),
                          hosts=tuple(settings.upload_url_hosts),
                          max_bytes=int(settings.upload_max_bytes),
                          timeout=float(settings.outbound_timeout))


__all__ = ["Outbound", "OutboundPolicy", "OutboundError", "Fetched", "is_public",
           "system_resolver", "policy_from"]
