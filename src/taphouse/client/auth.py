"""Login for the client: trade name and password for a token, keep it fresh, and know
what to do when it can no longer be used (ask again, or raise a clear AuthError)."""

from __future__ import annotations

import getpass
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.auth import AuthBase

from taphouse.client.errors import AuthError, ClientError
from taphouse.client.http import send
from taphouse.client.tokens import TokenStore


def is_interactive() -> bool:
    """True when a password prompt can reach a person: a terminal, or a Jupyter kernel
    whose front end accepts input."""
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            return True
    except (ValueError, OSError):
        pass
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        shell = ipython.get_ipython()
        kernel = getattr(shell, "kernel", None)
        if kernel is not None:
            return bool(getattr(kernel, "_allow_stdin", False))
    return False


class TokenAuth(AuthBase):
    """Bearer-token authentication for a requests session.

    Before a request it refreshes a session token that is about to expire; when the
    server refuses the token (expired, revoked, server clock ahead) it refreshes or logs
    in again (prompting for the password when interactive) and re-sends the request
    once, or raises :class:`AuthError` saying what to do.

    Parameters
    ----------
    url
        Server base URL (``/auth/...`` endpoints live below it).
    session
        A session without this auth, used for the ``/auth`` calls.
    prompt
        Asks for a password (default :func:`getpass.getpass`).
    interactive
        Whether prompting is possible; None: detect (terminal or Jupyter).
    store
        A :class:`TokenStore` to save tokens in and load them from, or None.
    """

    def __init__(self, url: str, session: requests.Session, *,
                 prompt: Callable[[str], str] | None = None,
                 interactive: bool | None = None, store: TokenStore | None = None,
                 timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.session = session
        self.prompt = prompt or getpass.getpass
        self.interactive = interactive
        self.store = store
        self.timeout = timeout
        self.clock: Callable[[], float] = time.time
        self.token: str | None = None
        self.username: str | None = None
        self.source: str | None = None  # "login", "env", "store", "token"
        self.expires: float | None = None  # local clock
        self.lifetime: float | None = None
        # Why the last login can no longer be used (expired, revoked): set, every request
        # raises AuthError (or asks for the password again when a person can answer)
        # until the user logs in or chooses anonymous access (never a silent downgrade).
        self.lost: str | None = None
        self.lost_user: str | None = None
        self._lock = threading.RLock()

    # --- state -----------------------------------------------------------------------
    def use_token(self, token: str, *, source: str, username: str | None = None,
                  expires: float | None = None) -> None:
        with self._lock:
            self.token, self.source, self.username = token, source, username
            self.lost = self.lost_user = None
            self.expires = expires
            self.lifetime = None if expires is None else max(expires - self.clock(), 0.0)

    def clear(self) -> None:
        """Forget the token: from now on requests are anonymous (a deliberate choice)."""
        with self._lock:
            self.token = self.username = self.source = None
            self.expires = self.lifetime = None
            self.lost = self.lost_user = None

    def _can_prompt(self) -> bool:
        return is_interactive() if self.interactive is None else self.interactive

    # --- the /auth endpoints -----------------------------------------------------------
    def _accept(self, body: dict[str, Any], username: str | None, source: str) -> None:
        token = body.get("access_token")
        if not token:
            raise ClientError(f"the server answered the login without a token: {body}")
        expires_in = body.get("expires_in")
        expires = self.clock() + float(expires_in) if expires_in is not None else None
        self.use_token(token, source=source, username=username, expires=expires)
        if self.store is not None:
            self.store.save(self.url, username=username, token=token,
                            expires=None if expires_in is None else time.time() + float(expires_in))

    def login(self, username: str, password: str | None = None) -> None:
        """Exchange name and password for a session token (prompting if no password)."""
        if password is None:
            if not self._can_prompt():
                raise AuthError(f"no password given for {username!r} and no terminal to ask"
                                " for one: pass password=..., or set TAPHOUSE_TOKEN")
            try:
                password = self.prompt(f"Password for {username} at {self.url}: ")
            except (EOFError, OSError, RuntimeError) as exc:
                raise AuthError(f"cannot ask for the password of {username!r}: {exc}") from None
        r = send(self.session, "POST", self.url + "/auth/token", timeout=self.timeout,
                 json={"username": username, "password": password})
        with self._lock:
            self._accept(r.json(), username, "login")

    def refresh(self) -> None:
        """Trade the current session token for a fresh one (POST /auth/refresh)."""
        with self._lock:
            if self.token is None:
                raise AuthError("not logged in: call client.login(username) first")
            r = send(self.session, "POST", self.url + "/auth/refresh", timeout=self.timeout,
                     headers={"Authorization": f"Bearer {self.token}"})
            self._accept(r.json(), self.username, self.source or "login")

    def logout(self) -> None:
        """Revoke the token on the server and forget it here."""
        with self._lock:
            token = self.token
            self.clear()
            if self.store is not None:
                self.store.forget(self.url)
            if token is not None:
                try:
                    send(self.session, "POST", self.url + "/auth/logout", timeout=self.timeout,
                         headers={"Authorization": f"Bearer {token}"})
                except AuthError:
                    pass  # already expired or revoked: the goal is reached

    # --- keeping the token usable ------------------------------------------------------
    def _due(self) -> bool:
        if self.expires is None or self.source == "env":
            return False
        margin = min(300.0, 0.1 * (self.lifetime or 0.0))
        return self.clock() >= self.expires - max(margin, 1.0)

    def recover(self, reason: str) -> None:
        """Make the token usable again after ``reason``, or raise :class:`AuthError`."""
        with self._lock:
            if self.source in {"login", "store"} and self.token is not None:
                try:
                    self.refresh()
                    return
                except AuthError:
                    pass
            if self.source in {"login", "store"} and self.username and self._can_prompt():
                self.login(self.username)
                return
            who = f" as {self.username!r}" if self.username else ""
            if self.source == "env":
                hint = ("the token from TAPHOUSE_TOKEN was refused; get a new one (or log"
                        " in with client.login(username))")
            elif self.username:
                hint = f"log in again with client.login({self.username!r})"
            else:
                hint = "log in with client.login(username)"
            if self.store is not None:
                self.store.forget(self.url)
            username = self.username
            self.clear()
            message = (f"{reason}{who}: {hint}, or choose anonymous access with"
                       " client.use_anonymous()")
            self.lost, self.lost_user = message, username
            raise AuthError(message, status=401)

    def _check_not_lost(self) -> None:
        """Raise while the login is lost (or log in again when a person can answer)."""
        with self._lock:
            if self.lost is None or self.token is not None:
                return
            if self.lost_user and self._can_prompt():
                self.login(self.lost_user)
                return
            raise AuthError(f"not sent: {self.lost}", status=401)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.token is None:
            self._check_not_lost()
            if self.token is None:
                return r
        if self._due():
            self.recover("the session token is about to expire and could not be refreshed")
        r.headers["Authorization"] = f"Bearer {self.token}"
        r.register_hook("response", self._on_response)
        return r

    def _on_response(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        if r.status_code != 401 or self.token is None or getattr(r.request, "_th_retried", False):
            return r
        sent = r.request.headers.get("Authorization", "")
        if sent == f"Bearer {self.token}":  # not already replaced by another thread
            detail = _message(r)
            self.recover(f"the server refused the token ({detail})")
        body = r.request.body
        if body is not None and not isinstance(body, (bytes, str)):
            return r  # a streamed body cannot be sent twice
        prep = r.request.copy()
        prep.headers["Authorization"] = f"Bearer {self.token}"
        prep._th_retried = True  # type: ignore[attr-defined]
        r.content  # noqa: B018  (release the connection)
        r.close()
        new = r.connection.send(prep, **kwargs)
        new.history.append(r)
        new.request = prep
        return new


def _message(r: requests.Response) -> str:
    try:
        body = r.json()
        if isinstance(body, dict) and body.get("error"):
            return str(body["error"])
    except ValueError:
        pass
    return r.headers.get("WWW-Authenticate", "") or f"HTTP {r.status_code}"


__all__ = ["TokenAuth", "is_interactive"]
