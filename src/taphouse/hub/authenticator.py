"""The hub's Authenticator: taphouse names and passwords, taphouse tokens in auth_state.

A login is relayed to taphouse's ``/auth/token`` with the browser's address (see
:func:`browser_address`) and the hub's service token, so taphouse throttles per browser.
The session token it returns is kept in the encrypted ``auth_state`` (JupyterHub needs
``JUPYTERHUB_CRYPT_KEY``), refreshed before it expires, and re-checked every
``auth_refresh_age`` seconds (60): a disabled or deleted account, a changed password or a
revoked login makes :meth:`TaphouseAuthenticator.refresh_user` answer False, and the hub
logs the user out; the spawner's poll stops their server (:mod:`taphouse.hub.spawner`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jupyterhub.auth import Authenticator
from jupyterhub.handlers.login import LoginHandler, LogoutHandler
from traitlets import List, Unicode

from taphouse.hub.api import TaphouseAPI, TaphouseError


def browser_address(request: Any, trusted: set[str]) -> str:
    """The browser's address behind the hub's proxy: the right-most ``X-Forwarded-For``
    entry that is not a trusted proxy (configurable-http-proxy appends the address it
    saw; entries left of that were written by the client and prove nothing).
    ``X-Real-Ip``, which tornado would believe from anyone, is ignored."""
    context = getattr(request.connection, "context", None)
    peer: str = getattr(context, "_orig_remote_ip", None) or request.remote_ip or "-"
    hops: list[str] = [h.strip() for value in request.headers.get_list("X-Forwarded-For")
            for h in value.split(",") if h.strip()]
    for hop in reversed([*hops, peer]):
        if hop not in trusted:
            return hop
    return peer


class TaphouseLogoutHandler(LogoutHandler):
    """Logging out of the hub ends the taphouse login behind it: the servers stop (with
    ``shutdown_on_logout``, which revokes their notebook tokens) and the session token
    kept in ``auth_state`` is revoked and forgotten, so neither outlives the logout."""

    async def handle_logout(self) -> None:
        user = self.current_user
        if user is None:
            return
        state = await user.get_auth_state()
        if state and state.get("token"):
            try:
                await self.authenticator.api.logout(state["token"])
            except TaphouseError as exc:
                self.log.error("could not end %s's taphouse login: %s", user.name, exc)
        await user.save_auth_state(None)


class TaphouseAuthenticator(Authenticator):
    """Log in to the hub with a taphouse account."""

    taphouse_url = Unicode("http://127.0.0.1:8000", config=True,
                           help="The taphouse server as reached from the hub.")
    service_token_file = Unicode(config=True, help="The hub's service token (0600).")
    taphouse_groups = List(Unicode(), config=True,
                           help="If set, only members of these taphouse groups may log in.")
    trusted_proxies = List(Unicode(), ["127.0.0.1", "::1"], config=True,
                           help="Proxies in front of the hub (configurable-http-proxy and a"
                                " TLS proxy) whose X-Forwarded-For entries are believed.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def api(self) -> TaphouseAPI:
        return TaphouseAPI(self.taphouse_url, self.service_token_file)

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        return [("/login", LoginHandler), ("/logout", TaphouseLogoutHandler)]

    def _allowed_by_groups(self, groups: list[str]) -> bool:
        return not self.taphouse_groups or bool(set(groups) & set(self.taphouse_groups))

    async def authenticate(self, handler: Any, data: dict) -> dict | None:
        username = (data or {}).get("username", "")
        password = (data or {}).get("password", "")
        if not username or not password:
            return None
        client = browser_address(handler.request, set(self.trusted_proxies))
        try:
            answer = await self.api.login(username, password, client)
        except TaphouseError as exc:
            self.log.error("taphouse login for %s failed: %s", username, exc)
            return None
        if answer is None:
            self.log.warning("taphouse refused the login of %r from %s", username, client)
            return None
        token = answer["access_token"]
        who = await self.api.whoami(token)
        if who is None or not self._allowed_by_groups(who.get("groups", [])):
            self.log.warning("%r is not in the hub's taphouse groups %s", username,
                             list(self.taphouse_groups))
            await self.api.logout(token)
            return None
        await self._end_previous_login(handler, answer["username"], token)
        return {"name": answer["username"],
                "auth_state": {"token": token, "refresh_before": answer.get("refresh_before"),
                               "groups": who.get("groups", []), "checked": time.time()}}

    async def _end_previous_login(self, handler: Any, name: str, token: str) -> None:
        """A new login replaces the taphouse token in ``auth_state``: the one it replaces
        is revoked, not left alive and unused until it expires."""
        find_user = getattr(handler, "find_user", None)
        user = find_user(name) if find_user is not None else None
        if user is None:
            return
        state = await user.get_auth_state()
        old = (state or {}).get("token")
        if old and old != token:
            try:
                await self.api.logout(old)
            except TaphouseError as exc:
                self.log.warning("could not end %s's previous taphouse login: %s", name, exc)

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        """Re-check the account (and refresh the taphouse token when due); False logs the
        user out."""
        lock = self._locks.setdefault(user.name, asyncio.Lock())
        async with lock:  # one refresh per login: a session token refreshes once
            state = await user.get_auth_state()
            if not state or not state.get("token"):
                return False
            token = state["token"]
            due = state.get("refresh_before")
            try:
                if due and time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) >= due:
                    fresh = await self.api.refresh(token)
                    if fresh is None:
                        return False
                    token = fresh["access_token"]
                    state = dict(state, token=token, refresh_before=fresh.get("refresh_before"))
                who = await self.api.whoami(token)
            except TaphouseError as exc:
                # taphouse unreachable: keep the login; the next check decides.
                self.log.warning("could not re-check %s with taphouse: %s", user.name, exc)
                return True
            if who is None or who.get("username") != user.name:
                self.log.info("%s: taphouse login ended (account disabled, deleted, password"
                              " changed or token revoked): logged out", user.name)
                return False
            if not self._allowed_by_groups(who.get("groups", [])):
                self.log.info("%s is no longer in the hub's groups: logged out", user.name)
                return False
            state = dict(state, groups=who.get("groups", []), checked=time.time())
            return {"name": user.name, "auth_state": state}
