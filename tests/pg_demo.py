"""[postgres] One server per test session with the demo databases on DuckDB (``gaia``,
``hipparcos``) and the very same rows in PostgreSQL (the session's throwaway cluster,
pg_server.py), registered with ``register_postgres`` as ``gaiapg`` and ``hippg`` (one
connection config, so they can be joined): the fixture ``pg_demo`` (tests/conftest.py),
shared by tests/postgres and the both-backend tests of tests/tap.

The SQL PostgreSQL receives is recorded in ``PgDemo.sent`` (cleared by the tests that
look at it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pg_server import dsn_of, fresh_database
from servers import LiveServer, start_live
from taphouse.engine.pg_register import register_postgres
from taphouse.engine.postgres import load_table

READER = "th_reader"
DBNAME = "th_demo"
#: The demo databases on each backend: (gaia, hipparcos).
DATABASES = {"duckdb": ("gaia", "hipparcos"), "postgres": ("gaiapg", "hippg")}


@dataclass
class PgDemo:
    server: LiveServer
    regs: dict[str, Any]
    setup: psycopg.Connection  # of the setup role (the database's owner), autocommit
    reader_dsn: str
    sent: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.setup.close()
        self.server.stop()


def _meta_yaml(path: Path, tables: dict) -> Path:
    import yaml

    doc = {"description": "demo catalogues in PostgreSQL", "tables": {}}
    for name, t in tables.items():
        doc["tables"][name] = {
            "description": t.description, "epoch": t.epoch,
            "columns": {c.name: {k: v for k, v in (("unit", c.unit), ("ucd", c.ucd),
                                                   ("description", c.description)) if v}
                        for c in t.columns}}
    path.write_text(yaml.safe_dump(doc))
    return path


def start_pg_demo(pg_server: Any, data: Path) -> PgDemo:
    server = start_live(data / "data", demo=True)
    platform = server.platform
    setup_dsn, setup = fresh_database(pg_server, DBNAME, READER)
    duck = {t.name: t for t in platform.catalogue.tables("gaia")
            + platform.catalogue.tables("hipparcos")}
    for schema, table in (("gaia_pg", "dr3_bright"), ("hip_pg", "hip2")):
        t = duck[table]
        with platform.engine.cursor() as cur:
            arrow = cur.sql(f"SELECT * FROM {platform.engine.relation(t)}").to_arrow_table()
        load_table(setup, schema, table, arrow, ra_column="ra", dec_column="dec")
        setup.execute(f"GRANT USAGE ON SCHEMA {schema} TO {READER}")
        setup.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {READER}")
    # a column of a type taphouse does not serve: skipped with a warning
    setup.execute("ALTER TABLE hip_pg.hip2 ADD COLUMN notes jsonb")
    reader_dsn = dsn_of(pg_server, user=READER, dbname=DBNAME)
    regs = {}
    for name, schema, table in (("gaiapg", "gaia_pg", "dr3_bright"),
                                ("hippg", "hip_pg", "hip2")):
        meta = _meta_yaml(data / f"{name}.yaml", {table: duck[table]})
        regs[name] = register_postgres(
            platform.catalogue, platform.secrets, name,
            reader_dsn if name == "gaiapg" else None, schema, meta_file=meta,
            setup_dsn=setup_dsn, connection="demo")
    demo = PgDemo(server, regs, setup, reader_dsn)
    backend = platform.backends.backend(("postgres", "demo"))
    backend._sent_hook = demo.sent.append
    return demo
