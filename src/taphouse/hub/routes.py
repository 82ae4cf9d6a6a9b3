"""``/api/hub``: what the platform's JupyterHub asks of the taphouse server (JSON).

Every endpoint needs the hub's service token (``X-Taphouse-Hub``, checked by
:class:`~taphouse.hub.link.HubForwarding`); minting a notebook token needs the user's
own session token as well, so the hub can mint only for users who logged in through it.

- ``POST /api/hub/notebook-tokens``: a notebook token (a job token whose job id starts
  with ``nb-``) for the user of the bearer token, and what the hub needs to start that
  user's sandboxed server: uid, home (created, with the example notebooks, on first use),
  the job environment, the client library and the API socket.
- ``DELETE /api/hub/notebook-tokens/{id}``: the server stopped: its token ends.
- ``POST /api/hub/notebook-tokens/revoke-all``: the hub (re)started: no server of an
  earlier run is alive.
- ``GET /api/hub/accounts/{name}``: id, disabled flag and groups of an account (404 when
  it does not exist), for the hub's periodic account check.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from taphouse.auth.authenticator import NOTEBOOK_JOB_PREFIX, Authenticator
from taphouse.auth.errors import AuthError, Forbidden, UnknownObject
from taphouse.auth.tokens import iso_time
from taphouse.compute.service import ComputeService
from taphouse.hub.link import from_hub
from taphouse.settings import Settings

EXAMPLES = Path(__file__).parent / "examples"


def hub_router(settings: Settings, *, authenticator: Authenticator,
               compute: ComputeService) -> APIRouter:
    router = APIRouter()
    auth = authenticator

    def require_hub(request: Request) -> None:
        if not from_hub(request.scope):
            raise Forbidden("this is the JupyterHub's API: it needs the hub's service token")

    @router.post("/notebook-tokens")
    async def mint(request: Request) -> JSONResponse:
        require_hub(request)
        caller = await auth.caller_async(request, allow_basic=False)
        token = caller.token
        if caller.identity.anonymous or token is None or token.kind != "session":
            raise AuthError("a notebook token is minted for the user of a session token:"
                            " send it as Authorization: Bearer")
        compute.require()  # kernels run in the compute sandbox: 503 with the reason
        user = auth.accounts.user_by_id(token.user_id)
        assert user is not None
        job_id = f"{NOTEBOOK_JOB_PREFIX}{user.id}-{secrets.token_hex(8)}"
        issued = await run_in_threadpool(auth.tokens.issue_job, user.id, job_id,
                                         lifetime=settings.hub_notebook_token_lifetime)
        uid = compute.sandbox.uid_for(user.id)
        home, created = await run_in_threadpool(compute.ensure_home, user.id)
        if created:
            await run_in_threadpool(copy_examples, home, uid)
        auth.audit_log.record("token", username=user.name, user_id=user.id,
                              detail=f"notebook token {job_id} minted for the hub")
        cfg = compute.config
        return JSONResponse({
            "token": issued.secret, "token_id": job_id, "username": user.name,
            "user_id": user.id, "expires_at": iso_time(issued.record.expires),
            "url": settings.public_url, "uid": uid, "gid": compute.sandbox.gid,
            "home": str(home), "env_dir": str(cfg.env_dir), "lib_dir": str(compute.lib_dir),
            "socket": str(compute.socket_path),
            "limits": {"memory": cfg.memory_default, "processes": cfg.processes,
                       "open_files": cfg.open_files, "file_size": cfg.file_size,
                       "tmp_size": cfg.tmp_size, "cpu_seconds": int(cfg.timeout_limit)},
        }, headers={"Cache-Control": "no-store"})

    @router.delete("/notebook-tokens/{token_id}", status_code=204)
    async def revoke(request: Request, token_id: str) -> Response:
        require_hub(request)
        if not token_id.startswith(NOTEBOOK_JOB_PREFIX):
            raise UnknownObject(f"no notebook token {token_id[:60]!r}")
        await run_in_threadpool(auth.tokens.revoke_job, token_id)
        return Response(status_code=204)

    @router.post("/notebook-tokens/revoke-all")
    async def revoke_all(request: Request) -> JSONResponse:
        require_hub(request)
        count = await run_in_threadpool(auth.tokens.revoke_jobs_like, NOTEBOOK_JOB_PREFIX)
        return JSONResponse({"revoked": count})

    @router.get("/accounts/{name}")
    async def account(request: Request, name: str) -> JSONResponse:
        require_hub(request)
        user = await run_in_threadpool(auth.accounts.user, name)
        if user is None:
            raise UnknownObject(f"no user named {name[:60]!r}")
        return JSONResponse({"username": user.name, "user_id": user.id,
                             "disabled": bool(user.disabled), "groups": sorted(user.groups)})

    return router


def copy_examples(home: Path, uid: int) -> None:
    """The example notebooks, into a new home (owned by the user; never over a file)."""
    for src in sorted(EXAMPLES.glob("*.ipynb")):
        target = home / src.name
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            shutil.copyfileobj(f, out)
        os.chown(target, uid, uid, follow_symlinks=False)
