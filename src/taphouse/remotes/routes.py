"""HTTP endpoints of the remotes package.

- ``/api/admin/remotes`` (operators): list, add, show, refresh, remove;
- ``/api/remotes`` (users): the remotes a caller may query with their tables; when
  ``remote_user_registration`` is on, users register, refresh and remove their own.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from taphouse.admission import read_body
from taphouse.auth.authenticator import Authenticator, refuse_sandbox, require_scope
from taphouse.auth.errors import AuthError, Forbidden
from taphouse.auth.identity import Identity
from taphouse.auth.routes import require_admin
from taphouse.remotes.credentials import authorization
from taphouse.remotes.errors import RemoteError, RemoteNotFound
from taphouse.remotes.model import Remote
from taphouse.remotes.registry import RemoteRegistry
from taphouse.secrets import Secret

_AUTH_FIELDS: dict[str, Any] = {"auth": str, "username": str, "password": str, "token": str}
_ADD_FIELDS: dict[str, Any] = {"name": str, "url": str, "groups": list,
                               "timeout": (int, float)} | _AUTH_FIELDS
#: Fields whose values are never quoted back, not even in an error.
_SECRET_FIELDS = ("password", "token")


def _credential(data: dict[str, Any]) -> tuple[str, Secret | None]:
    """The ``auth`` kind and Authorization value of a request's JSON."""
    kind = data.get("auth") or "none"
    return kind, authorization(kind, username=data.get("username"),
                               password=data.get("password"), token=data.get("token"))


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise RemoteError(f"missing field {name!r}")
    return value


def _timeout(data: dict[str, Any]) -> float | None:
    value = data.get("timeout")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RemoteError("field 'timeout' must be a number of seconds")
    return float(value)


def remote_detail(registry: RemoteRegistry, remote: Remote, *, admin: bool) -> dict[str, Any]:
    """A remote with its cached tables, as ADQL names them (``NAME.schema.table``)."""
    tables = registry.tables(remote)
    return remote.to_json(admin=admin) | {"tables": [
        {"name": t.adql_name(remote.name), "schema": f"{remote.name}.{t.schema}",
         "table": t.name, "description": t.description, "type": t.table_type,
         "nrows": t.nrows, "columns": [c.to_dict() for c in t.columns]} for t in tables]}


def admin_remotes_router(auth: Authenticator, registry: RemoteRegistry) -> APIRouter:
    """``/api/admin/remotes``: the operator registers and looks after remotes."""
    router = APIRouter()

    @router.get("")
    async def list_remotes(request: Request) -> JSONResponse:
        await require_admin(auth, request)
        remotes = await run_in_threadpool(registry.remotes)
        return JSONResponse({"remotes": [r.to_json(admin=True) for r in remotes]})

    @router.post("")
    async def add_remote(request: Request) -> JSONResponse:
        by = await require_admin(auth, request)
        data = await _json_object(request, _ADD_FIELDS)
        groups = data.get("groups") or []
        kind, credential = _credential(data)
        remote = await run_in_threadpool(
            registry.add, _text(data, "name"), _text(data, "url"),
            auth=kind, by=by, groups=tuple(groups), timeout=_timeout(data),
            credential=credential)
        auth.audit_log.record("admin", username=by,
                              detail=f"remote {remote.name} registered ({remote.url})")
        return JSONResponse(remote.to_json(admin=True), status_code=201)

    @router.get("/{name}")
    async def get_remote(request: Request, name: str) -> JSONResponse:
        await require_admin(auth, request)

        def work() -> dict[str, Any]:
            return remote_detail(registry, registry.require(name), admin=True)

        return JSONResponse(await run_in_threadpool(work))

    @router.post("/{name}/refresh")
    async def refresh_remote(request: Request, name: str) -> JSONResponse:
        await require_admin(auth, request)
        remote = await run_in_threadpool(registry.refresh, name)
        return JSONResponse(remote.to_json(admin=True))

    @router.post("/{name}/credentials")
    async def set_credentials(request: Request, name: str) -> JSONResponse:
        by = await require_admin(auth, request)
        kind, credential = _credential(await _json_object(request, _AUTH_FIELDS))
        remote = await run_in_threadpool(registry.set_credentials, name, kind, credential)
        auth.audit_log.record("admin", username=by,
                              detail=f"remote {name} credentials replaced (auth {kind})")
        return JSONResponse(remote.to_json(admin=True))

    @router.delete("/{name}")
    async def remove_remote(request: Request, name: str) -> JSONResponse:
        """The operator's remote ``name``; with ``?owner=USER``, that user's own."""
        by = await require_admin(auth, request)
        owner = request.query_params.get("owner")
        if owner is None:
            await run_in_threadpool(registry.remove, name)
            auth.audit_log.record("admin", username=by, detail=f"remote {name} removed")
            return JSONResponse({"removed": name})
        user = await run_in_threadpool(auth.accounts.user, owner)
        if user is None:
            raise RemoteNotFound(f"no user named {owner[:60]!r}")
        await run_in_threadpool(registry.remove, name, user.id)
        auth.audit_log.record("admin", username=by,
                              detail=f"remote {name} of user {user.name} removed")
        return JSONResponse({"removed": name, "owner": user.name})

    return router


async def _json_object(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    """A JSON object whose keys are among ``fields`` and whose values have the types
    given (``list``: a list of strings; a number is never a bool); else a 400 naming the
    field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise RemoteError("send a JSON object (Content-Type: application/json)")
    raw = await read_body(request)
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise RemoteError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise RemoteError("the request body must be a JSON object")
    for name, value in data.items():
        if name not in fields:
            raise RemoteError(f"unknown field {name!r}; expected {sorted(fields)}")
        if value is not None and not _has(value, fields[name]):
            shown = "" if name in _SECRET_FIELDS else f" ({json.dumps(value)[:40]})"
            raise RemoteError(f"field {name!r} has the wrong type{shown}")
    return data


def _has(value: Any, kind: Any) -> bool:
    if kind is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind)


def remotes_router(auth: Authenticator, registry: RemoteRegistry, *,
                   user_registration: bool) -> APIRouter:
    """``/api/remotes``: the remotes a caller may query, and (if allowed) their own."""
    router = APIRouter()

    async def reader(request: Request) -> Identity:
        # Anonymous callers see the public remotes where anonymous reading is on.
        identity = await auth.identify_async(request)
        if identity.anonymous:
            if not auth.settings.anonymous_read:
                require_scope(identity, "read")
            return identity
        require_scope(identity, "read")
        return identity

    async def owner(request: Request) -> Identity:
        identity = await auth.identify_async(request)
        if identity.anonymous:
            raise AuthError("registering a remote needs a login")
        require_scope(identity, "write")
        refuse_sandbox(identity, "register remotes")
        if not user_registration:
            raise Forbidden("users may not register remotes on this platform (the operator"
                            " can allow it with TAPHOUSE_REMOTE_USER_REGISTRATION)")
        return identity

    @router.get("")
    async def list_remotes(request: Request) -> JSONResponse:
        identity = await reader(request)
        remotes = await run_in_threadpool(registry.visible, identity)
        return JSONResponse({"remotes": [r.to_json() | {"own": r.owner_id is not None}
                                         for r in remotes],
                             "user_registration": user_registration})

    @router.get("/{name}")
    async def get_remote(request: Request, name: str) -> JSONResponse:
        identity = await reader(request)

        def work() -> dict[str, Any]:
            remote = registry.find(identity, name)
            if remote is None:
                raise RemoteNotFound(f"no remote named {name[:60]!r} is available to you")
            return remote_detail(registry, remote, admin=False)

        return JSONResponse(await run_in_threadpool(work))

    @router.post("")
    async def add_own(request: Request) -> JSONResponse:
        identity = await owner(request)
        data = await _json_object(request, {"name": str, "url": str} | _AUTH_FIELDS)
        kind, credential = _credential(data)
        remote = await run_in_threadpool(
            registry.add, _text(data, "name"), _text(data, "url"), by=identity.username,
            owner_id=identity.user_id, auth=kind, credential=credential)
        return JSONResponse(remote.to_json() | {"own": True}, status_code=201)

    @router.post("/{name}/refresh")
    async def refresh_own(request: Request, name: str) -> JSONResponse:
        identity = await owner(request)
        remote = await run_in_threadpool(registry.refresh, name, identity.user_id)
        return JSONResponse(remote.to_json() | {"own": True})

    @router.post("/{name}/credentials")
    async def set_own_credentials(request: Request, name: str) -> JSONResponse:
        identity = await owner(request)
        kind, credential = _credential(await _json_object(request, _AUTH_FIELDS))
        remote = await run_in_threadpool(registry.set_credentials, name, kind, credential,
                                         owner_id=identity.user_id)
        return JSONResponse(remote.to_json() | {"own": True})

    @router.delete("/{name}")
    async def remove_own(request: Request, name: str) -> JSONResponse:
        identity = await owner(request)
        await run_in_threadpool(registry.remove, name, identity.user_id)
        return JSONResponse({"removed": name})

    return router


__all__ = ["admin_remotes_router", "remotes_router", "remote_detail"]
