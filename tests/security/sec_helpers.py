"""Helpers for the security tests: accounts on a live server, clients, TAP answers.

(A module of its own with a unique name: several test folders have helpers.)
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from accounts import PASSWORD


def client_for(server: Any, user: str | None = None, **kwargs: Any) -> httpx.Client:
    auth = (user, PASSWORD) if user else None
    headers = {"X-Taphouse": "tests", **kwargs.pop("headers", {})}
    return httpx.Client(base_url=server.url, auth=auth, timeout=60, headers=headers, **kwargs)


def sync(client: httpx.Client, query: str, prefix: str = "/tap", **params: str
         ) -> httpx.Response:
    return client.post(f"{prefix}/sync", data={"LANG": "ADQL", "QUERY": query, **params})


def error_of(resp: httpx.Response) -> str | None:
    """The QUERY_STATUS=ERROR message of a VOTable answer, or None."""
    m = re.search(rb'<INFO name="QUERY_STATUS" value="ERROR">(.*?)</INFO>', resp.content,
                  re.S)
    return m.group(1).decode(errors="replace") if m else None
