"""The end of an account: what a user owns goes with it (or is archived), so a new
account with the same name starts with nothing.

This sits between auth (the account), jobs and userspace (what the account owns), as
``access.py`` does for reading; each package removes its own records. Everything is
keyed by the stable user id, which is never reused, so whatever a running job writes
after this (its owner's schema, say) cannot reach a later account of that name either:
such a schema is archived when the new account first uses its user space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taphouse.userspace.shares import remove_grantee

if TYPE_CHECKING:
    from taphouse.auth.authenticator import Authenticator
    from taphouse.jobs.service import JobService
    from taphouse.userspace import UserSpace, Workspaces


def delete_account(name: str, *, archive: bool, by: str | None,
                   authenticator: Authenticator, userspace: UserSpace,
                   workspaces: Workspaces, jobs: JobService) -> dict[str, Any]:
    """Delete the account ``name``: its jobs (running ones cancelled), its workspaces,
    the shares made to it, and its schema, dropped or, with ``archive``, kept for the
    operator as ``archived_<name>_<id>`` (readable by administrators only, shared with
    nobody; drop it later with ``taphouse db drop``). Returns what was done."""
    user = authenticator.accounts.require(name)
    # First no new work: the account's tokens and cached Basic checks end now.
    authenticator.set_disabled(user.name, True, by=by)
    archived = userspace.remove_owner(user.id, archive=True) if archive else None
    destroyed = jobs.destroy_owner(user.id)
    if not archive:
        userspace.remove_owner(user.id, archive=False)
        removed_ws = workspaces.remove_owner(user.id)
    else:
        removed_ws = 0
    shares = remove_grantee(userspace.meta, user.id)
    authenticator.delete_user(user.name, by=by)
    return {"deleted": user.name, "user_id": user.id, "archived": archived,
            "jobs": destroyed, "workspaces": removed_ws, "shares_removed": shares}
