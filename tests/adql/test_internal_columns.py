"""The HEALPix index is an internal column: not listed, not in SELECT *, named
"_healpix_29" in ADQL; versions stored before it was internal (a listed column
``healpix_index`` in the file) read the same way (aliased)."""

from __future__ import annotations

import pytest

from taphouse.adql import AdqlError, Scope, translate
from taphouse.catalogue.model import (
    HEALPIX_COLUMN,
    LEGACY_HEALPIX_COLUMN,
    ColumnMeta,
    TableMeta,
)
from taphouse.catalogue.store import CatalogueStore

COLS = [ColumnMeta("id", "int"), ColumnMeta("ra", "double", unit="deg"),
        ColumnMeta("dec", "double", unit="deg")]
VALUES = "SELECT * FROM (VALUES (1, 10.0, 10.0), (2, 10.01, 10.0), (3, 200.0, -45.0)) v(id, ra, dec)"


@pytest.fixture(scope="module")
def tables(env):
    """A table written now and one as versions were written before (``healpix_index``
    in the file and in the stored column list), both read back from the store."""
    out = {}
    for name, physical in (("current", HEALPIX_COLUMN), ("legacy", LEGACY_HEALPIX_COLUMN)):
        path = env.store.new_version_path("demo", name)
        env.engine.write_table(f'SELECT id::INTEGER AS id, ra, dec, ivo_healpix_index(29, ra, '
                               f'dec) AS "{physical}" FROM ({VALUES})', path,
                               order_by=f'"{physical}"')
        listed = COLS + ([ColumnMeta(physical, "long", ucd="pos.healpix", indexed=True)]
                         if physical == LEGACY_HEALPIX_COLUMN else [])
        env.store.publish(TableMeta("demo", name, listed, nrows=3, ra_column="ra",
                                    dec_column="dec", healpix_column=physical), path)
        # read back as the server does (the legacy version lists the column)
        out[name] = CatalogueStore(env.meta, env.store.tables_dir).table("demo", name)
    return out


def _run(env, tables, adql):
    scope = Scope({("demo", n): t for n, t in tables.items()}, env.engine.relation)
    t = translate(adql, scope)
    with env.engine.cursor() as cur:
        return t, cur.execute(t.sql).fetchall()


@pytest.mark.parametrize("name", ["current", "legacy"])
def test_internal_column_is_hidden_and_named(env, tables, name):
    table = tables[name]
    assert [c.name for c in table.columns] == ["id", "ra", "dec"]
    t, rows = _run(env, tables, f"SELECT * FROM demo.{name} ORDER BY id")
    assert [c.name for c in t.columns] == ["id", "ra", "dec"] and len(rows[0]) == 3
    t, rows = _run(env, tables, f'SELECT id, "_healpix_29" FROM demo.{name} ORDER BY id')
    assert [c.name for c in t.columns] == ["id", "_healpix_29"]
    assert t.columns[1].ucd == "pos.healpix" and t.columns[1].datatype == "long"
    _, ref = _run(env, tables, f"SELECT ivo_healpix_index(29, ra, dec) FROM demo.{name} "
                               "ORDER BY id")
    assert [r[1] for r in rows] == [r[0] for r in ref]
    # qualified, in WHERE, through a derived table (whose * does not show it either)
    _, rows = _run(env, tables, f'SELECT t.id FROM demo.{name} AS t WHERE t."_healpix_29" '
                                f'= (SELECT "_healpix_29" FROM demo.{name} WHERE id = 2)')
    assert rows == [(2,)]
    t, _ = _run(env, tables, f"SELECT * FROM (SELECT * FROM demo.{name}) AS q")
    assert [c.name for c in t.columns] == ["id", "ra", "dec"]
    # the cone fast path reads the index under its stored name
    t, rows = _run(env, tables, f"SELECT id FROM demo.{name} WHERE 1 = CONTAINS("
                                "POINT(ra, dec), CIRCLE(10, 10, 0.02))")
    assert sorted(rows) == [(1,), (2,)]
    assert f'"{table.healpix_column}" BETWEEN' in t.sql


def test_internal_name_only_on_tables_with_positions(env, tables):
    with pytest.raises(AdqlError, match="unknown column"):
        _run(env, tables, 'SELECT "healpix_index" FROM demo.current')
    with pytest.raises(AdqlError, match="unknown column _healpix_29"):
        _run(env, {"obs": env.obs}, 'SELECT "_healpix_29" FROM demo.obs')
    with pytest.raises(AdqlError, match="ambiguous"):
        _run(env, tables, 'SELECT "_healpix_29" FROM demo.current AS a, demo.legacy AS b '
                          "WHERE a.id = b.id")
