"""Fixtures for catalogue tests: a store in a temporary data directory, an engine, and
the catalogue sub-commands run through an argparse parser like the main CLI's."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taphouse.catalogue.commands import add_commands
from taphouse.catalogue.model import TableMeta
from taphouse.catalogue.store import CatalogueStore
from taphouse.engine.duckdb import DuckDBEngine
from taphouse.metadata import MetadataDB
from taphouse.settings import Settings


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CatalogueStore]:
    meta = MetadataDB(tmp_path / "data" / "meta.sqlite")
    yield CatalogueStore(meta, tmp_path / "data" / "tables")
    meta.close()


@pytest.fixture
def engine(store: CatalogueStore) -> DuckDBEngine:
    return DuckDBEngine(store.tables_dir, threads=1, memory_limit="256MB")


@pytest.fixture
def query(engine: DuckDBEngine) -> Callable[[TableMeta, str], list[tuple]]:
    """``query(table, sql)``: run ``sql`` with ``{t}`` replaced by the table's relation."""

    def run(table: TableMeta, sql: str) -> list[tuple]:
        with engine.cursor() as cur:
            return cur.execute(sql.format(t=engine.relation(table))).fetchall()

    return run


@pytest.fixture
def run(tmp_path, capsys):
    """``run(*argv)``: a catalogue sub-command on a data directory in ``tmp_path``;
    returns (status, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="taphouse")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    settings = Settings(data_dir=tmp_path / "data")

    def run(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(list(argv))
        args.settings = settings
        try:
            status = args.handler(args)
        except SystemExit as exc:
            status = exc.code
        out, err = capsys.readouterr()
        return status, out, err

    return run
