"""HTTP endpoints of the auth package: ``/auth`` (login, tokens) and the operator API
(``/api/admin``). Handlers translate HTTP to :class:`Authenticator` calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from taphouse.admission import read_body
from taphouse.auth.authenticator import (
    Authenticator,
    Caller,
    client_address,
    refuse_sandbox,
)
from taphouse.auth.database_access import CatalogueDatabases, DatabaseAccess
from taphouse.auth.errors import AccountError, AuthError, Forbidden
from taphouse.auth.tokens import IssuedToken, iso_time
from taphouse.observability.requestlog import note_caller

#: The most bytes of a request body to /auth (and /api/admin): logins, passwords, names.
BODY_MAX_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_PERSONAL_DAYS = 3650


async def _caller(auth: Authenticator, request: Request, *, login: bool = True,
                  allow_basic: bool = True) -> Caller:
    caller = await auth.caller_async(request, allow_basic=allow_basic)
    if login and caller.identity.anonymous:
        raise AuthError("this needs a login: send a bearer token (POST /auth/token) or HTTP"
                        " Basic credentials")
    return caller


async def _body(request: Request) -> dict[str, Any]:
    """Form fields (OAuth2 style) or a JSON object, of at most :data:`BODY_MAX_BYTES`
    (anyone may POST /auth/token: a body is read whole, and waits whole in the login
    lane, so it must be small)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await read_body(request, BODY_MAX_BYTES)
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        form = await Request(request.scope, replay).form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise AccountError("the request body must be form fields or a JSON object") from None
    if not isinstance(data, dict):
        raise AccountError("the request body must be a JSON object")
    return data


async def _json_body(request: Request, fields: dict[str, type | tuple[type, ...]],
                     ) -> dict[str, Any]:
    """A JSON object whose keys are among ``fields`` and whose values have the types
    given (``bool`` means a JSON true/false, never a string or a number; ``list`` a
    list of strings). Anything else is an :class:`AccountError` (400) naming the field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise AccountError("send a JSON object (Content-Type: application/json)")
    data = await _body(request)
    for name, value in data.items():
        expected = fields.get(name)
        if expected is None:
            raise AccountError(f"unknown field {name!r}; expected {sorted(fields)}")
        if value is None:
            continue
        if not _has_type(value, expected):
            raise AccountError(f"field {name!r} must be {_type_name(expected)},"
                               f" not {json.dumps(value)[:40]}")
    return data


def _has_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    for kind in kinds:
        if kind is bool and isinstance(value, bool):
            return True
        if kind is list and isinstance(value, list):
            return all(isinstance(v, str) for v in value)
        if kind is str and isinstance(value, str):
            return True
    return False


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {bool: "true or false", list: "a list of names", str: "a string"}
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(names[k] for k in kinds)


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AccountError(f"field {name!r} must be a string")
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = _optional_text(data, name)
    if value is None:
        raise AccountError(f"missing field {name!r}")
    return value


def token_response(auth: Authenticator, username: str, issued: IssuedToken) -> JSONResponse:
    """The OAuth2-style answer carrying a new token (never cached by proxies)."""
    rec = issued.record
    body: dict[str, Any] = {
        "access_token": issued.secret, "token_type": "bearer", "username": username,
        "kind": rec.kind, "token_id": rec.id, "scope": " ".join(sorted(rec.scopes)),
        "issued_at": iso_time(rec.issued),
        "expires_in": None if rec.expires is None else int(rec.expires - rec.issued),
        "expires_at": iso_time(rec.expires)}
    if rec.kind == "session" and rec.expires is not None:
        # Refresh in the last tenth of the lifetime (at most 10 minutes before expiry).
        margin = min(600.0, (rec.expires - rec.issued) / 10)
        body["refresh_before"] = iso_time(rec.expires - margin)
        body["refresh_url"] = auth.settings.public_url + "/auth/refresh"
    if rec.kind == "personal":
        body["name"] = rec.name
    return JSONResponse(body, headers=NO_STORE)


def auth_router(auth: Authenticator) -> APIRouter:
    """Login, refresh, logout, whoami, personal tokens and password change."""
    router = APIRouter()

    @router.post("/token")
    async def token(request: Request) -> JSONResponse:
        auth.check_transport(request)
        data = await _body(request)
        grant = data.get("grant_type")
        if grant not in (None, "", "password"):
            raise AccountError(f"unsupported grant_type {str(grant)[:40]!r}: use password")
        username = _text(data, "username")
        password = _text(data, "password")
        scope = _optional_text(data, "scope")
        scopes = scope.split() if scope else None
        address = client_address(request)
        user, issued = await auth.password_check(username or "", address, auth.login,
                                                 username, password, client=address,
                                                 scopes=scopes)
        note_caller(request.scope, user.name)  # the request log names who logged in
        return token_response(auth, user.name, issued)

    @router.post("/refresh")
    async def refresh(request: Request) -> JSONResponse:
        caller = await _caller(auth, request)
        if caller.token is None or caller.token.kind != "session":
            raise AccountError("refresh needs a session token (Authorization: Bearer ...);"
                               " log in at POST /auth/token to get one")
        issued = await run_in_threadpool(auth.tokens.refresh, caller.token)
        return token_response(auth, caller.identity.username or "", issued)

    @router.post("/logout", status_code=204)
    async def logout(request: Request) -> Response:
        """End the login of the presented token: it and every token refreshed from the
        same login (204; with HTTP Basic there is nothing to revoke)."""
        caller = await _caller(auth, request)
        if caller.token is not None and caller.token.job_id is not None:
            # A job token lives in its own table: end it by its job.
            await run_in_threadpool(auth.tokens.revoke_job, caller.token.job_id)
        elif caller.token is not None:
            await run_in_threadpool(auth.tokens.end_session, caller.token)
            auth.audit_log.record("token", username=caller.identity.username,
                                  user_id=caller.identity.user_id,
                                  client=client_address(request),
                                  detail=f"logout: {caller.token.kind} token {caller.token.id}"
                                         " revoked")
        return Response(status_code=204)

    @router.get("/whoami")
    async def whoami(request: Request) -> JSONResponse:
        caller = await _caller(auth, request, login=False)
        ident = caller.identity
        body: dict[str, Any] = {
            "username": ident.username, "anonymous": ident.anonymous, "method": ident.method,
            "groups": sorted(ident.groups), "scopes": sorted(ident.scopes),
            "is_admin": ident.is_admin}
        if caller.token is not None:
            body["token"] = caller.token.to_json()
        return JSONResponse(body)

    @router.post("/tokens")
    async def create_token(request: Request) -> JSONResponse:
        caller = await _caller(auth, request)
        refuse_sandbox(caller.identity, "create tokens")
        if caller.token is not None and caller.token.kind == "personal":
            raise Forbidden("a personal token cannot create tokens: use a session token"
                            " (POST /auth/token) or name and password")
        if "write" not in caller.identity.scopes:
            raise Forbidden("creating tokens needs the 'write' scope")
        data = await _body(request)
        name = (_text(data, "name") or "").strip()
        if not name or len(name) > 100:
            raise AccountError("token name: give 1 to 100 characters (e.g. 'nightly-crossmatch')")
        scopes = data.get("scopes", ["read", "write"])
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise AccountError("scopes: a list such as [\"read\"] or [\"read\", \"write\"]")
        if not set(scopes) <= caller.identity.scopes:
            raise Forbidden(f"scope(s) {sorted(set(scopes) - caller.identity.scopes)} not"
                            " available to the credentials used")
        days = data.get("expires_in_days", 365)
        if days is not None and (not isinstance(days, (int, float)) or isinstance(days, bool)
                                 or not 0 < days <= MAX_PERSONAL_DAYS):
            raise AccountError(f"expires_in_days: a number of days from 1 to"
                               f" {MAX_PERSONAL_DAYS}, or null for no expiry")
        lifetime = None if days is None else float(days) * 86400.0
        user_id = caller.identity.user_id
        assert user_id is not None
        issued = await run_in_threadpool(auth.tokens.issue, user_id, kind="personal", name=name,
                                         scopes=scopes, lifetime=lifetime)
        auth.audit_log.record("token", username=caller.identity.username, user_id=user_id,
                              client=client_address(request),
                              detail=f"personal token {issued.record.id} {name!r} created")
        return token_response(auth, caller.identity.username or "", issued)

    @router.get("/tokens")
    async def list_tokens(request: Request) -> JSONResponse:
        caller = await _caller(auth, request)
        assert caller.identity.user_id is not None
        records = await run_in_threadpool(auth.tokens.list, caller.identity.user_id)
        current = caller.token.id if caller.token else None
        return JSONResponse({"tokens": [dict(r.to_json(), current=r.id == current)
                                        for r in records]})

    @router.delete("/tokens/{token_id}", status_code=204)
    async def delete_token(request: Request, token_id: int) -> Response:
        caller = await _caller(auth, request)
        refuse_sandbox(caller.identity, "revoke tokens")
        await run_in_threadpool(auth.tokens.revoke, token_id, user_id=caller.identity.user_id)
        auth.audit_log.record("token", username=caller.identity.username,
                              user_id=caller.identity.user_id, client=client_address(request),
                              detail=f"token {token_id} revoked by its owner")
        return Response(status_code=204)

    @router.post("/password")
    async def password(request: Request) -> JSONResponse:
        auth.check_transport(request)
        caller = await _caller(auth, request)
        refuse_sandbox(caller.identity, "change the password")
        data = await _body(request)
        current = _text(data, "current_password")
        new = _text(data, "new_password")
        user = auth.accounts.require(caller.identity.username or "")
        address = client_address(request)
        user = await auth.password_check(user.name, address, auth.change_password, user,
                                         current, new, client=address)
        def issue() -> IssuedToken:
            # the new session keeps the caller's scopes (the default ones if it had none)
            if caller.identity.scopes:
                return auth.tokens.issue(user.id, kind="session",
                                         scopes=caller.identity.scopes)
            return auth.tokens.issue(user.id, kind="session")

        issued = await run_in_threadpool(issue)
        resp = token_response(auth, user.name, issued)
        body = json.loads(bytes(resp.body))
        body["message"] = "password changed; every earlier token was revoked"
        return JSONResponse(body, headers=NO_STORE)

    return router


async def require_admin(auth: Authenticator, request: Request) -> str:
    """The name of the administrator making an operator API request; raises otherwise."""
    # Tokens only: a browser replays cached Basic credentials by itself (CSRF).
    caller = await _caller(auth, request, allow_basic=False)
    refuse_sandbox(caller.identity, "use the operator API")
    if not caller.identity.is_admin:
        raise Forbidden("this is the operator API: it needs an administrator account"
                        " (and a token with the 'admin' scope)")
    return caller.identity.username or ""


def admin_router(auth: Authenticator, catalogue: CatalogueDatabases,
                 delete_account: Callable[[str, bool, str], dict[str, Any]]) -> APIRouter:
    """The operator API: users, groups, database access, audit log (administrators).

    ``delete_account(name, archive, by)`` removes an account with everything it owns
    (see :mod:`taphouse.lifecycle`)."""
    router = APIRouter()
    access = DatabaseAccess(auth.meta, catalogue)

    async def admin(request: Request) -> str:
        return await require_admin(auth, request)

    @router.get("/users")
    async def users(request: Request) -> JSONResponse:
        await admin(request)
        return JSONResponse({"users": [u.to_json() for u in auth.accounts.users()]})

    @router.post("/users")
    async def add_user(request: Request) -> JSONResponse:
        by = await admin(request)
        auth.check_transport(request)
        data = await _json_body(request, {"username": str, "password": str,
                                          "is_admin": bool, "groups": list})
        user = await run_in_threadpool(
            auth.accounts.add_user, _text(data, "username"), _text(data, "password"),
            is_admin=bool(data.get("is_admin")), groups=data.get("groups") or [])
        auth.audit_log.record("admin", username=user.name, user_id=user.id,
                              detail=f"created by {by}")
        return JSONResponse(user.to_json(), status_code=201)

    @router.get("/users/{name}")
    async def get_user(request: Request, name: str) -> JSONResponse:
        await admin(request)
        user = auth.accounts.require(name)
        tokens = [t.to_json() for t in auth.tokens.list(user.id)]
        return JSONResponse(dict(user.to_json(), tokens=tokens))

    @router.delete("/users/{name}")
    async def delete_user(request: Request, name: str) -> JSONResponse:
        by = await admin(request)
        archive = request.query_params.get("archive", "false").lower()
        if archive not in ("true", "false"):
            raise AccountError(f"archive must be true or false, not {archive[:20]!r}")
        done = await run_in_threadpool(delete_account, name, archive == "true", by)
        return JSONResponse(done)

    @router.post("/users/{name}/disable")
    async def disable(request: Request, name: str) -> JSONResponse:
        by = await admin(request)
        return JSONResponse(auth.set_disabled(name, True, by=by).to_json())

    @router.post("/users/{name}/enable")
    async def enable(request: Request, name: str) -> JSONResponse:
        by = await admin(request)
        return JSONResponse(auth.set_disabled(name, False, by=by).to_json())

    @router.post("/users/{name}/admin")
    async def set_admin(request: Request, name: str) -> JSONResponse:
        by = await admin(request)
        data = await _json_body(request, {"is_admin": bool})
        if data.get("is_admin") is None:
            raise AccountError("missing field 'is_admin' (true or false)")
        user = auth.accounts.set_admin(name, data["is_admin"])
        auth.audit_log.record("admin", username=user.name, user_id=user.id,
                              detail=f"is_admin={user.is_admin} set by {by}")
        return JSONResponse(user.to_json())

    @router.post("/users/{name}/password")
    async def set_password(request: Request, name: str) -> JSONResponse:
        by = await admin(request)
        auth.check_transport(request)
        data = await _json_body(request, {"password": str})
        user = await run_in_threadpool(auth.set_password, name, _text(data, "password"), by=by)
        return JSONResponse(dict(user.to_json(), message="password set; all tokens revoked"))

    @router.post("/users/{name}/revoke-tokens")
    async def revoke_tokens(request: Request, name: str) -> JSONResponse:
        by = await admin(request)
        count = await run_in_threadpool(auth.revoke_all, name, by=by)
        return JSONResponse({"username": name.lower(), "revoked": count})

    @router.get("/groups")
    async def groups(request: Request) -> JSONResponse:
        await admin(request)
        return JSONResponse({"groups": [g.to_json() for g in auth.accounts.groups()]})

    @router.post("/groups")
    async def add_group(request: Request) -> JSONResponse:
        by = await admin(request)
        data = await _json_body(request, {"name": str, "description": str})
        group = auth.accounts.add_group(_text(data, "name") or "",
                                        _optional_text(data, "description") or "")
        auth.audit_log.record("group", username=by, client=client_address(request),
                              detail=f"group {group.name} created")
        return JSONResponse(group.to_json(), status_code=201)

    @router.delete("/groups/{name}")
    async def delete_group(request: Request, name: str) -> JSONResponse:
        by = await admin(request)
        auth.accounts.delete_group(name)
        auth.audit_log.record("group", username=by, client=client_address(request),
                              detail=f"group {name.lower()} deleted")
        return JSONResponse({"deleted": name.lower()})

    @router.post("/groups/{name}/members")
    async def add_member(request: Request, name: str) -> JSONResponse:
        by = await admin(request)
        data = await _json_body(request, {"username": str})
        member = _text(data, "username") or ""
        group = auth.accounts.add_member(name, member)
        auth.audit_log.record("group", username=by, client=client_address(request),
                              detail=f"{member.lower()} added to group {group.name}")
        return JSONResponse(group.to_json())

    @router.delete("/groups/{name}/members/{username}")
    async def remove_member(request: Request, name: str, username: str) -> JSONResponse:
        by = await admin(request)
        group = auth.accounts.remove_member(name, username)
        auth.audit_log.record("group", username=by, client=client_address(request),
                              detail=f"{username.lower()} removed from group {group.name}")
        return JSONResponse(group.to_json())

    @router.get("/databases")
    async def databases(request: Request) -> JSONResponse:
        await admin(request)
        return JSONResponse({"databases": access.all()})

    @router.put("/databases/{name}/access")
    async def set_access(request: Request, name: str) -> JSONResponse:
        by = await admin(request)
        data = await _json_body(request, {"public": bool, "groups": list})
        if data.get("public") is None:
            raise AccountError("missing field 'public' (true, or false with 'groups')")
        if data["public"]:
            if data.get("groups"):
                raise AccountError("field 'groups' only goes with \"public\": false")
            result = access.make_public(name)
        else:
            result = access.restrict(name, data.get("groups") or [])
        auth.audit_log.record("admin", username=by, detail=f"database {result['database']}:"
                              f" public={result['public']} groups={result['groups']}")
        return JSONResponse(result)

    @router.get("/audit")
    async def audit(request: Request) -> JSONResponse:
        await admin(request)
        q = request.query_params
        try:
            limit = int(q.get("limit", "100"))
            since = float(q["since"]) if q.get("since") else None
        except ValueError:
            raise AccountError("limit must be an integer and since a POSIX time") from None
        return JSONResponse({"entries": auth.audit_log.entries(
            username=q.get("user"), event=q.get("event"), since=since, limit=limit)})

    return router


__all__ = ["auth_router", "admin_router", "token_response", "require_admin"]
