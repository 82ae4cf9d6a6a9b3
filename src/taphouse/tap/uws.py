"""UWS 1.1 async endpoints (``/async``): placeholder until the job service lands."""

from __future__ import annotations

from typing import Any


def add_uws_routes(router: Any, platform: Any, context: Any) -> None:
    """Add the UWS job routes to a TAP router."""
