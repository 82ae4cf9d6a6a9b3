"""Test accounts, one way for the whole suite: the password every test user has and
``new_user``, which makes a fresh account on a live server."""

from __future__ import annotations

import uuid
from typing import Any

#: The password of every test account (long enough for the password rules).
PASSWORD = "correct-horse-battery"


def new_user(server: Any, prefix: str = "u", **kwargs: Any) -> str:
    """A fresh account (unique name starting with ``prefix``) on ``server``, a live
    server of tests/servers.py; ``kwargs`` go to ``add_user`` (``groups``,
    ``is_admin``). Returns its name; its password is :data:`PASSWORD`."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    server.platform.authenticator.accounts.add_user(name, PASSWORD, **kwargs)
    return name
