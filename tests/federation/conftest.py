"""Fixtures of the federation tests: the platform (demo data, a user with a table of
targets) and, as remotes on 127.0.0.1, a second real taphouse with small limits and a
small standard TAP service that is not taphouse."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from federation_helpers import FAR_MAXREC_HARD, FAR_UPLOAD_BYTES, LOOPBACK, PASSWORD, sync

from servers import LiveServer, start_live


def _copy(demo_data_dir: Path, tmp: pytest.TempPathFactory, name: str) -> Path:
    data = tmp.mktemp(name) / "data"
    shutil.copytree(demo_data_dir, data, symlinks=True)
    return data


@pytest.fixture(scope="session")
def far(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[LiveServer]:
    """A second taphouse with the demo databases as the remote: MAXREC hard limit 200,
    uploads of at most 4000 bytes (a few dozen rows of key and position)."""
    server = start_live(_copy(demo_data_dir, tmp_path_factory, "far"), maxrec_default=50,
                        maxrec_limit=FAR_MAXREC_HARD, upload_max_bytes=FAR_UPLOAD_BYTES)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def here(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, far: LiveServer
         ) -> Iterator[LiveServer]:
    """The platform: demo data, remote ``far`` registered, a user ``alice`` whose
    ``mydb.targets`` holds 300 Hipparcos stars (hip, ra, dec)."""
    server = start_live(_copy(demo_data_dir, tmp_path_factory, "here"),
                        outbound_allow=LOOPBACK)
    server.platform.remotes.add("far", far.tap)
    server.platform.authenticator.accounts.add_user("alice", PASSWORD)
    r = sync(server, "alice", "SELECT TOP 300 hip, ra, dec FROM hipparcos.hip2"
             " WHERE dec BETWEEN 10 AND 30 ORDER BY hip", DEST="mydb.targets")
    assert r.status_code == 200, r.text
    yield server
    server.stop()


@pytest.fixture
def platform(here: LiveServer) -> Any:
    return here
