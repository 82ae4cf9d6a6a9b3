"""Guards against cross-site use of a browser's credentials, and security headers.

The same endpoints serve browsers, VO desktop tools and scripts. A browser replays HTTP
Basic credentials it has cached for this site on requests that *another* site makes it
send (a form posted to us, an image, a ``fetch`` without CORS). The rules:

- ``/api`` and ``/auth``: a request with credentials that may change something (any
  method but GET, HEAD, OPTIONS) must show that a program, not a page elsewhere, sent
  it: a JSON body
  (``Content-Type: application/json``), an ``X-Taphouse`` header, or a bearer token (a
  browser sets none of these on a cross-site request without asking us first, and we
  grant no cross-origin requests). An OAuth2 form login at ``POST /auth/token`` carries
  its name and password in the body, not in a header a browser replays, and sets
  nothing a browser replays (no cookies): it stays allowed.
- everywhere (``/tap`` and ``/ws/.../tap`` included): a request carrying HTTP Basic
  credentials (the kind a browser caches and replays) whose ``Origin`` is not this
  service's own (``Settings.public_url``), or whose ``Sec-Fetch-Site`` is neither
  ``same-origin`` nor ``none``, is refused (403). TAP clients (pyvo, TOPCAT, STILTS)
  send neither header, so their form and multipart POSTs, which DALI requires, are
  unaffected; a bearer token is never replayed by a browser, so it is not checked (the
  web page works whatever name the server is reached by).

Every response gets ``X-Content-Type-Options: nosniff``, a ``Content-Security-Policy``
with ``frame-ancestors`` (``'none'`` unless configured) and ``Referrer-Policy``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The header the taphouse client sends on every request (any value).
CLIENT_HEADER = "x-taphouse"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower case, default ports left out."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def cross_site_problem(method: str, path: str, headers: Headers, own_origin: str) -> str | None:
    """Why this request must be refused as a possible cross-site request, or None."""
    authorization = headers.get("authorization", "").strip()
    credentials = bool(authorization)
    # A bearer token is never sent by a browser on its own: only Basic (cached by the
    # browser) can be replayed by another site's page.
    ambient = credentials and not authorization.lower().startswith("bearer ")
    if ambient:
        origin = headers.get("origin")
        if origin is not None and (origin == "null" or origin_of(origin) != own_origin):
            return (f"cross-origin request with credentials refused (Origin {origin[:80]};"
                    f" this service is {own_origin})")
        site = headers.get("sec-fetch-site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return (f"request with credentials from another site refused"
                    f" (Sec-Fetch-Site: {site[:40]})")
    if (not credentials or method.upper() in SAFE_METHODS
            or not path.startswith(("/api", "/auth"))):
        return None  # without credentials there is nothing to forge: 401 follows
    if path.rstrip("/") == "/auth/token":
        return None  # a login reads no credential header and sets nothing
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        return None
    if CLIENT_HEADER in headers:
        return None
    if headers.get("authorization", "").strip().lower().startswith("bearer "):
        return None
    return ("this request changes something: send it as JSON (Content-Type:"
            " application/json) or with an X-Taphouse header (the taphouse client does);"
            " a form or text/plain body from a web page is refused")


class RequestGuard:
    """ASGI middleware applying :func:`cross_site_problem` and the security headers.

    Parameters
    ----------
    app
        The application to guard.
    public_url
        The service's public base URL (its origin is the only one trusted).
    refuse
        Builds the 403 response for a refused request: ``refuse(path, message)``.
    frame_ancestors
        The CSP ``frame-ancestors`` value (who may show our pages in a frame).
    """

    def __init__(self, app: ASGIApp, *, public_url: str,
                 refuse: Callable[[str, str], Response],
                 frame_ancestors: str = "'none'") -> None:
        self.app = app
        self.own_origin = origin_of(public_url)
        self.refuse = refuse
        self.headers = [(b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"no-referrer")]
        self.csp = f"frame-ancestors {frame_ancestors}"
        if frame_ancestors.strip() == "'none'":
            self.headers.append((b"x-frame-options", b"DENY"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    if name.decode() not in headers:
                        headers.append(name.decode(), value.decode())
                csp = headers.get("content-security-policy")
                if csp is None:
                    headers.append("content-security-policy", self.csp)
                elif "frame-ancestors" not in csp:
                    headers["content-security-policy"] = f"{csp}; {self.csp}"
            await send(message)

        problem = cross_site_problem(scope["method"], scope["path"], Headers(scope=scope),
                                     self.own_origin)
        if problem is not None:
            response = self.refuse(scope["path"], problem)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
