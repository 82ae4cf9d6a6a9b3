"""Fixtures of the compute tests: one real server per session with real bubblewrap
sandboxes, the demo catalogue, and users created per test (see compute_helpers.py for
why the job environment is shared and why nothing is skipped)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from compute_helpers import (
    HOME_QUOTA,
    JOB_ENV,
    Responsiveness,
    login,
    require_sandbox_machine,
    sandbox_data_dir,
)

import taphouse
from accounts import new_user
from servers import LiveServer, start_live


@pytest.fixture(scope="session")
def compute_server() -> Iterator[LiveServer]:
    """One server with compute on (a failing sandbox stops it) and the demo data."""
    require_sandbox_machine()
    base = sandbox_data_dir()
    # Its own demo load: a copied data directory would still name the original's
    # table files.
    server = start_live(base / "data", demo=True, compute="on", compute_env=str(JOB_ENV),
                        compute_home_quota=HOME_QUOTA, compute_workers=3,
                        compute_max_jobs_per_user=2, compute_timeout_default=120.0)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def user_client(compute_server: LiveServer) -> Iterator[taphouse.client.Client]:
    c = login(compute_server, new_user(compute_server))
    yield c
    c.close()


@pytest.fixture
def responsive(compute_server: LiveServer) -> Any:
    return lambda: Responsiveness(compute_server.url)
