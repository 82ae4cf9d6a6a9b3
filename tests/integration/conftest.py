"""Fixtures of the end-to-end suite: the real server (``demo_server`` from
tests/conftest.py, on a free port with a temporary data directory and the demo data),
users created per test, and clients logged in as them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import accounts
import taphouse
from accounts import PASSWORD

# Runs for minutes unless aborted: every Hipparcos star against every Gaia star with a
# condition no join algorithm can speed up.
SLOW_QUERY = ("SELECT COUNT(*) AS n FROM hipparcos.hip2 AS h, gaia.dr3_bright AS g"
              " WHERE SIN(h.ra + g.ra) > 0.9999999")


@pytest.fixture(autouse=True)
def _private_config(tmp_path, monkeypatch):
    """Token stores go to a temporary XDG_CONFIG_HOME; no TAPHOUSE_* leaks in."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TAPHOUSE_URL", raising=False)
    monkeypatch.delenv("TAPHOUSE_TOKEN", raising=False)


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def make_user() -> Callable[[Any], str]:
    """``make_user(server)``: a new account on that server (password: ``password``)."""
    return accounts.new_user


@pytest.fixture
def slow_query() -> str:
    return SLOW_QUERY


@pytest.fixture
def phase_on_server() -> Callable[[Any, str], str]:
    return server_phase


@pytest.fixture
def new_user(demo_server) -> Callable[[], str]:
    return lambda prefix="u": accounts.new_user(demo_server, prefix)


@pytest.fixture
def client(demo_server, new_user) -> taphouse.client.Client:
    """A client logged in as a fresh user on the demo server."""
    c = taphouse.connect(demo_server.url, interactive=False, progress=False)
    c.login(new_user(), PASSWORD)
    yield c
    c.close()


def server_phase(server: Any, job_id: str) -> str:
    """The job's phase as the server's own job store has it."""
    import httpx

    r = httpx.get(f"{server.url}/tap/async/{job_id}/phase", timeout=10)
    return r.text.strip()
