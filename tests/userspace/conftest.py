"""Fixtures for user-space tests: accounts on a live server and HTTP clients for them."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

PASSWORD = "correct horse battery"
_counter = itertools.count()


def new_user(server: Any, prefix: str = "u") -> str:
    """Create a fresh account on ``server`` (unique name) and return its name."""
    name = f"{prefix}{os.getpid() % 1000}x{next(_counter)}"
    server.platform.authenticator.accounts.add_user(name, PASSWORD)
    return name


def client_for(server: Any, user: str | None) -> httpx.Client:
    auth = (user, PASSWORD) if user else None
    return httpx.Client(base_url=server.url, auth=auth, timeout=60)


@pytest.fixture
def clients() -> Iterator[Any]:
    """Factory ``clients(server, user)`` -> httpx.Client (closed after the test)."""
    made: list[httpx.Client] = []

    def factory(server: Any, user: str | None) -> httpx.Client:
        c = client_for(server, user)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


def sync(client: httpx.Client, query: str, prefix: str = "/tap", **params: str
         ) -> httpx.Response:
    data = {"LANG": "ADQL", "QUERY": query, **params}
    return client.post(f"{prefix}/sync", data=data)


def table_of(resp: httpx.Response) -> Any:
    """The result table (astropy Table) of a VOTable response."""
    import io

    from astropy.io.votable import parse_single_table

    return parse_single_table(io.BytesIO(resp.content)).to_table()


def infos(resp: httpx.Response) -> dict[str, str]:
    """INFO name -> value of a VOTable response."""
    import re

    return {k.decode(): v.decode() for k, v in
            re.findall(rb'<INFO name="([^"]+)"\s+value="([^"]*)"', resp.content)}
