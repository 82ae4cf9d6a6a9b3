"""ADQL over HTTP cannot reach files, the host, the backend's own tables or functions,
and nothing a query says produces a 500 or an unbounded amount of work."""

from __future__ import annotations

import time

import pytest
from sec_helpers import client_for, error_of, sync

from taphouse.adql import AdqlError, translate
from taphouse.adql.scope import Scope
from taphouse.catalogue.model import ColumnMeta, TableMeta

T = "gaia.dr3_bright"

ESCAPES = {
    # table functions and file names, every spelling
    "read_csv": "SELECT * FROM read_csv('/etc/passwd')",
    "read_csv_quoted": 'SELECT * FROM "read_csv"(\'/etc/passwd\')',
    "read_csv_schema": "SELECT * FROM main.read_csv('/etc/passwd')",
    "read_csv_catalog": "SELECT * FROM system.main.read_csv('/etc/passwd')",
    "read_parquet": "SELECT * FROM read_parquet('/tmp/*.parquet')",
    "read_json_auto": "SELECT * FROM read_json_auto('/etc/passwd')",
    "read_text": "SELECT * FROM read_text('/etc/passwd')",
    "read_blob": "SELECT * FROM read_blob('/etc/passwd')",
    "glob": "SELECT * FROM glob('/*')",
    "file_string": "SELECT * FROM '/etc/passwd'",
    "file_quoted_ident": 'SELECT * FROM "/etc/passwd"',
    "csv_string": "SELECT * FROM 'data.csv'",
    "scalar_read_text": f"SELECT TOP 1 read_text('/etc/passwd') FROM {T}",
    "subquery_read": f"SELECT (SELECT content FROM read_text('/etc/passwd')) FROM {T}",
    "in_subquery_read": f"SELECT TOP 1 ra FROM {T} WHERE CAST(source_id AS VARCHAR) IN "
                        "(SELECT * FROM read_csv('/etc/passwd'))",
    "cte_read": "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
    "join_read": f"SELECT * FROM {T} AS a JOIN read_csv('/etc/passwd') AS b ON 1=1",
    # the backend's own catalogue and attached files
    "duckdb_settings": "SELECT * FROM duckdb_settings()",
    "duckdb_tables_fn": "SELECT * FROM duckdb_tables()",
    "duckdb_tables_view": "SELECT * FROM duckdb_tables",
    "information_schema": "SELECT * FROM information_schema.tables",
    "pg_catalog": "SELECT * FROM pg_catalog.pg_class",
    "sqlite_master": "SELECT * FROM sqlite_master",
    "attached_version": "SELECT * FROM v1.main.data",
    "attached_version_quoted": 'SELECT * FROM "v1"."main"."data"',
    "write_alias": "SELECT * FROM w_v1.main.data",
    "memory_catalog": "SELECT * FROM memory.main.data",
    "system_catalog": "SELECT * FROM system.main.duckdb_tables",
    "temp_catalog": "SELECT * FROM temp.main.data",
    "inline_name": "SELECT * FROM _inline_tap_schema_tables",
    # functions that are not on the allow list
    "getenv": f"SELECT TOP 1 getenv('HOME') FROM {T}",
    "current_setting": f"SELECT TOP 1 current_setting('temp_directory') FROM {T}",
    "version": f"SELECT TOP 1 version() FROM {T}",
    "format": f"SELECT TOP 1 format('{{}}', ra) FROM {T}",
    "printf": f"SELECT TOP 1 printf('%s', ra) FROM {T}",
    "repeat": f"SELECT TOP 1 repeat('a', 1000000000) FROM {T}",
    "regexp": f"SELECT TOP 1 regexp_matches(CAST(source_id AS VARCHAR), '(a*)*b') FROM {T}",
    "to_json": f"SELECT TOP 1 to_json(ra) FROM {T}",
    "list_lambda": f"SELECT TOP 1 list_transform([1], x -> x + 1) FROM {T}",
    "columns_star": f"SELECT COLUMNS(*) FROM {T}",
    # syntax that only the backend has
    "two_statements": f"SELECT 1 FROM {T}; SELECT * FROM read_csv('/etc/passwd')",
    "double_colon": f"SELECT TOP 1 ra::VARCHAR FROM {T}",
    "cast_blob": f"SELECT TOP 1 CAST(CAST(source_id AS VARCHAR) AS BLOB) FROM {T}",
    "cast_json": f"SELECT TOP 1 CAST(ra AS JSON) FROM {T}",
    "cast_date": f"SELECT TOP 1 DATE '2020-01-01' FROM {T}",
    "qualify": f"SELECT ra FROM {T} QUALIFY ra > 1",
    "pivot": f"SELECT * FROM {T} PIVOT (count(*) FOR ra IN (1))",
    "exclude": f"SELECT * EXCLUDE (ra) FROM {T}",
    "window": f"SELECT TOP 1 count(*) OVER () FROM {T}",
    "filter": f"SELECT max(ra) FILTER (WHERE ra > 0) FROM {T}",
    "recursive_cte": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)"
                     " SELECT n FROM r",
    "parameter": f"SELECT TOP 1 ra FROM {T} WHERE ra = ?",
    "tablesample": f"SELECT * FROM {T} TABLESAMPLE (1)",
    "attach": "ATTACH '/tmp/x.duckdb' AS x",
    "copy": f"COPY {T} TO '/tmp/out.csv'",
    "set": "SET enable_external_access = true",
    "pragma": "PRAGMA database_list",
}


@pytest.mark.parametrize("adql", list(ESCAPES.values()), ids=list(ESCAPES))
def test_escape_attempts_are_refused_over_http(demo_server, adql):
    with client_for(demo_server) as c:
        resp = sync(c, adql, FORMAT="csv")
    assert resp.status_code == 400, resp.text[:300]
    assert error_of(resp)
    assert "root:" not in resp.text  # nothing of /etc/passwd
    assert "internal" not in resp.text


def test_identifier_quoting_cannot_break_out(demo_server):
    tricky = ['x"; SELECT * FROM read_csv(\'/etc/passwd\'); --', "a\\", "a/*", "a--b",
              "a;b", "ｒａ", "a'b"]
    with client_for(demo_server) as c:
        for name in tricky:
            quoted = name.replace('"', '""')
            resp = sync(c, f'SELECT TOP 1 ra AS "{quoted}" FROM {T}', FORMAT="csv")
            assert resp.status_code == 200, (name, resp.text[:300])
            assert resp.text.splitlines()[0].strip('"').replace('""', '"') == name
            # as a column or table name it is just an unknown name
            resp = sync(c, f'SELECT TOP 1 "{quoted}" FROM {T}')
            assert resp.status_code == 400 and "unknown column" in error_of(resp)
        resp = sync(c, f"SELECT TOP 1 ra FROM {T} WHERE CAST(source_id AS VARCHAR) = "
                       "'x''; SELECT * FROM read_csv(''/etc/passwd''); --'")
        assert resp.status_code == 200 and error_of(resp) is None


def test_nul_byte_in_a_name_is_a_clean_error(demo_server):
    with client_for(demo_server) as c:
        resp = sync(c, f'SELECT TOP 1 "r\x00a" FROM {T}')
    assert resp.status_code == 400


def _chain(n: int) -> str:
    """WITH queries each joining the previous one twice: 2^(n-1) table reads."""
    ctes = ", ".join(f"c{i} AS (SELECT a.ra FROM c{i - 1} AS a, c{i - 1} AS b)"
                     for i in range(1, n))
    return f"WITH c0 AS (SELECT TOP 2 ra FROM {T}), {ctes} SELECT COUNT(*) FROM c{n - 1}"


def test_exponential_with_chain_is_refused_before_the_backend(demo_server):
    # Before the check, DuckDB planned this for minutes (ignoring the time limit) and
    # grew past its memory limit to several GB.
    started = time.monotonic()
    with client_for(demo_server) as c:
        resp = sync(c, _chain(40))
    assert resp.status_code == 400
    assert "WITH queries are expanded" in error_of(resp)
    assert time.monotonic() - started < 10


def test_with_queries_within_the_bound_still_run(demo_server):
    with client_for(demo_server) as c:
        resp = sync(c, _chain(3), FORMAT="csv")  # 4 table reads
        assert resp.status_code == 200, resp.text[:300]
        assert resp.text.splitlines()[1] == "16"


def _scope() -> Scope:
    cols = [ColumnMeta("ra", "double"), ColumnMeta("dec", "double")]
    table = TableMeta(database="db", name="t", columns=cols)
    return Scope(tables={("db", "t"): table}, relation=lambda t: "v1.main.data",
                 search_path=["db"])


def test_expanded_size_counts_each_use_of_a_with_query():
    n = 256  # taphouse.adql.safety.MAX_EXPANDED_TABLES
    ok = "WITH a AS (SELECT ra FROM db.t) SELECT x.ra FROM a AS x, a AS y"
    translate(ok, _scope())
    wide = ("WITH a AS (SELECT " + "ra FROM db.t AS t1, " + ", ".join(
        f"db.t AS t{i}" for i in range(2, 18)) + ") SELECT * FROM "
        + ", ".join(f"a AS x{i}" for i in range(n // 17 + 1)))
    with pytest.raises(AdqlError, match="expanded"):
        translate(wide, _scope())


def test_many_equal_select_items_translate_in_linear_time():
    # The unique output names were found by trying name_2, name_3, ... from the start
    # for every item: 20,000 items took over a minute of CPU in a server thread.
    query = "SELECT " + ", ".join(["ra"] * 10000) + " FROM db.t"
    started = time.monotonic()
    tr = translate(query, _scope())
    assert time.monotonic() - started < 10
    names = [c.name for c in tr.columns]
    assert len(set(names)) == 10000 and names[:3] == ["ra", "ra_2", "ra_3"]


UNWRITABLE = {
    "sum_overflows_long": f"SELECT SUM(source_id) AS s FROM {T}",
    "huge_integer_literal": f"SELECT TOP 1 18446744073709551616 AS x FROM {T}",
    "bignum_literal": f"SELECT TOP 1 99999999999999999999999999999999999999999 AS x FROM {T}",
    "row_value": f"SELECT TOP 1 (1, 2) AS x FROM {T}",
}


@pytest.mark.parametrize("fmt", ["csv", "tsv", "votable", "fits", "parquet", "json"])
@pytest.mark.parametrize("adql", list(UNWRITABLE.values()), ids=list(UNWRITABLE))
def test_values_a_format_cannot_hold_are_not_a_500(demo_server, adql, fmt):
    with client_for(demo_server) as c:
        resp = sync(c, adql, FORMAT=fmt)
    assert resp.status_code in (200, 400), resp.text[:300]
    if resp.status_code == 400 or fmt == "votable":
        assert "cannot write" in (error_of(resp) or "")
