"""Establishing the identity of each request (placeholder: anonymous only)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from taphouse.auth.errors import AuthError
from taphouse.auth.identity import ANONYMOUS, Identity


class Authenticator:
    def __init__(self, meta: Any, settings: Any) -> None:
        self.meta = meta
        self.settings = settings

    def identify(self, request: Request, *, allow_basic: bool = True) -> Identity:
        if request.headers.get("authorization"):
            raise AuthError("invalid credentials", bearer_error="invalid_token")
        return ANONYMOUS
