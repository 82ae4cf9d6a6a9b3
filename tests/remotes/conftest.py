"""Fixtures of the remotes tests: a second real taphouse server as the remote (demo data,
small MAXREC limits), the misbehaving fake TAP service, and the platform that registers
remotes (loopback allowed for these tests only)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_tap import FakeTap
from remote_helpers import LOOPBACK, REMOTE_MAXREC_DEFAULT, REMOTE_MAXREC_HARD

from servers import LiveServer, start_live


@pytest.fixture(scope="session")
def remote_server(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[LiveServer]:
    """A second taphouse with the demo databases, playing a remote TAP service."""
    data = tmp_path_factory.mktemp("remote") / "data"
    shutil.copytree(demo_data_dir, data, symlinks=True)
    server = start_live(data, maxrec_default=REMOTE_MAXREC_DEFAULT,
                        maxrec_limit=REMOTE_MAXREC_HARD)
    yield server
    server.stop()


@pytest.fixture
def fake_tap() -> Iterator[FakeTap]:
    fake = FakeTap().start()
    yield fake
    fake.stop()


@pytest.fixture
def registry(tmp_path: Path):  # noqa: ANN201
    """A registry on a fresh metadata database, loopback allowed, quick retries."""
    from taphouse.metadata import MetadataDB
    from taphouse.remotes import RemoteConfig, RemoteRegistry

    meta = MetadataDB(tmp_path / "meta.sqlite")
    yield RemoteRegistry(meta, RemoteConfig(allow=LOOPBACK, timeout=10, backoff=0.05),
                         local_database=lambda name: name == "localdb")
    meta.close()
