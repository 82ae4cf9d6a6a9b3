"""Shared fixtures: real servers on free 127.0.0.1 ports with temporary data directories.

- ``start_server(**settings)``: a fresh server in this process (uvicorn in a thread), so
  a test can reach ``server.platform`` (e.g. move the token clock).
- ``demo_server``: one server per test session with the demo databases loaded.
- ``servers.ServerProcess``: the real CLI in a subprocess, for kill/restart tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers import LiveServer, start_live


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``server = start_server(**settings_overrides)``; stopped after the test."""
    servers: list[LiveServer] = []

    def factory(demo: bool = False, **overrides: Any) -> LiveServer:
        server = start_live(tmp_path / f"data{len(servers)}", demo=demo, **overrides)
        servers.append(server)
        return server

    yield factory
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with the demo databases loaded once per session (copied by
    users that need to modify it)."""
    from taphouse.catalogue.demo import load_demo
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB
    from taphouse.settings import Settings

    data_dir = tmp_path_factory.mktemp("demo-data")
    settings = Settings(data_dir=data_dir)
    meta = MetadataDB(settings.meta_path)
    load_demo(CatalogueStore(meta, settings.tables_dir))
    meta.close()
    return data_dir


@pytest.fixture(scope="session")
def demo_server(demo_data_dir: Path) -> Iterator[LiveServer]:
    """One server with the demo databases for the whole session. Tests must not change
    its catalogue; user-space changes go under users they create themselves."""
    server = start_live(demo_data_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (see pg_server.py), one per session
    (tests/adql and tests/postgres); scripts/test.sh installs PostgreSQL, and without it
    the tests that use this fail (no skip)."""
    from pg_server import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_demo(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """[postgres] One server with the demo databases on DuckDB and the same rows in
    PostgreSQL (``gaiapg``, ``hippg``): pg_demo.py. tests/postgres and tests/tap."""
    from pg_demo import start_pg_demo

    demo = start_pg_demo(pg_server, tmp_path_factory.mktemp("pgdemo"))
    yield demo
    demo.stop()

