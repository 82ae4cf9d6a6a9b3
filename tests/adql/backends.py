"""The ADQL tests' backends behind the same calls, so that one test body runs on each
(fixture ``backend`` in conftest.py): DuckDB (``conftest.Env``) and PostgreSQL (a
throwaway cluster, pg_server.py, holding the very rows of the DuckDB test tables)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from taphouse.adql import Scope, inline_name, translate
from taphouse.engine.postgres import install_postgres_functions, load_table, relation_name

BACKENDS = ("duckdb", "postgres")


class PgEnv:
    """The DuckDB test tables loaded into PostgreSQL, and a scope that names them."""

    def __init__(self, dsn: str, duck: Any) -> None:
        import psycopg

        self.duck = duck
        self.conn = psycopg.connect(dsn, autocommit=True)
        install_postgres_functions(self.conn)
        # the very rows of the DuckDB test tables
        with duck.engine.cursor() as cur:
            stars, obs = (cur.sql(f"SELECT * FROM {duck.engine.relation(t)}")
                          .to_arrow_table() for t in (duck.stars, duck.obs))
        load_table(self.conn, "demo", "stars", stars, ra_column="ra", dec_column="dec")
        load_table(self.conn, "demo", "obs", obs)
        load_table(self.conn, "public", inline_name(duck.upload_meta), duck.upload)

    def scope(self) -> Scope:
        d = self.duck
        tables = {("demo", "stars"): d.stars, ("demo", "obs"): d.obs,
                  ("tap_upload", "mine"): d.upload_meta}
        return Scope(tables=tables, relation=lambda t: relation_name(t.database, t.name),
                     inline={("tap_upload", "mine"): d.upload})

    def translate(self, adql: str, **kw: Any) -> Any:
        return translate(adql, self.scope(), dialect="postgres", **kw)

    def run(self, adql: str, **kw: Any) -> tuple[Any, list[tuple]]:
        """Translate for PostgreSQL and execute; return (translation, rows)."""
        scope = self.scope()
        t = translate(adql, scope, dialect="postgres", **kw)
        data = scope.inline[("tap_upload", "mine")]
        if callable(data):  # columns computed for PostgreSQL (Rules.inline_cells)
            table = data()
            meta = self.duck.upload_meta
            have = {r[0] for r in self.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " 'public' AND table_name = %s", (inline_name(meta),))}
            if not set(table.column_names) <= have:
                load_table(self.conn, "public", inline_name(meta), table)
        rows = self.conn.execute(t.sql).fetchall()
        return t, [tuple(_pg_value(v) for v in r) for r in rows]


def _pg_value(v: Any) -> Any:
    if isinstance(v, Decimal):
        raise AssertionError(f"NUMERIC result {v!r}: ADQL approximate values are DOUBLE")
    return plain(v)


def plain(v: Any) -> Any:
    """A value as the tests compare it: arrays (DuckDB lists or tuples, PostgreSQL
    lists) as tuples."""
    if isinstance(v, list | tuple):
        return tuple(plain(x) for x in v)
    return v


class Backend:
    """``translate(adql, **kw)`` and ``run(adql, **kw) -> (translation, rows)`` on one
    backend, with array values as tuples on every backend."""

    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.target = target

    def translate(self, adql: str, **kw: Any) -> Any:
        return self.target.translate(adql, **kw)

    def run(self, adql: str, **kw: Any) -> tuple[Any, list[tuple]]:
        t, rows = self.target.run(adql, **kw)
        return t, [tuple(plain(v) for v in r) for r in rows]

    def error(self, adql: str) -> str:
        """The message a user gets for ``adql``, which must fail in the engine."""
        try:
            self.run(adql)
        except Exception as exc:  # noqa: BLE001  (the engine's own error types)
            if self.name == "postgres":
                return str(exc.diag.message_primary)  # type: ignore[attr-defined]
            from taphouse.engine.duckdb import describe_duckdb_error

            return describe_duckdb_error(exc)
        raise AssertionError(f"no error from {adql!r} on {self.name}")


def row_key(r: tuple) -> tuple:
    """Sorts rows holding NULLs."""
    return tuple((v is None, v) for v in r)


def same_rows(rows: list[tuple], expected: list[tuple], ordered: bool) -> None:
    """``rows`` (from :meth:`Backend.run`) are ``expected`` (in order when ``ordered``)."""
    expected = [tuple(plain(v) for v in r) for r in expected]
    if not ordered:
        rows, expected = sorted(rows, key=row_key), sorted(expected, key=row_key)
    assert rows == expected
