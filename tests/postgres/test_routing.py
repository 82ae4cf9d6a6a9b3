"""A database records which backend serves it, and the query service runs a query on
that backend (engine.routing): over real HTTP, with a second real DuckDB engine as the
other backend (the PostgreSQL backend's own tests are in test_backend.py)."""

from __future__ import annotations

import httpx
import pytest

from taphouse.catalogue.store import CatalogueStore
from taphouse.engine.duckdb import DuckDBEngine
from taphouse.engine.routing import BackendRouter, MixedBackends
from taphouse.metadata import MetadataDB


class RecordingEngine(DuckDBEngine):
    """A real DuckDB engine that keeps the SQL it ran (which backend ran the query)."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.sent: list[str] = []

    def stream(self, cur, sql, *args, **kw):
        self.sent.append(sql)
        return super().stream(cur, sql, *args, **kw)


def _sync(server, query: str) -> httpx.Response:
    return httpx.post(server.tap + "/sync", data={"REQUEST": "doQuery", "LANG": "ADQL",
                                                  "FORMAT": "csv", "QUERY": query},
                      timeout=60)


def test_database_records_backend(tmp_path):
    meta = MetadataDB(tmp_path / "meta.sqlite")
    store = CatalogueStore(meta, tmp_path / "tables")
    db = store.create_database("pgcat", "in PostgreSQL")
    assert (db.backend, db.backend_ref) == ("duckdb", None)
    db = store.set_backend("pgcat", "postgres", "pgcat-conn")
    assert (db.backend, db.backend_ref) == ("postgres", "pgcat-conn")
    assert store.database("PGCAT").backend == "postgres"
    meta.close()


@pytest.fixture
def routed(start_server):
    server = start_server(demo=True)
    platform = server.platform
    second = RecordingEngine(platform.settings.tables_dir)
    made: list[str | None] = []

    def factory(ref):
        made.append(ref)
        return second

    platform.backends.register("second", factory)
    platform.catalogue.set_backend("hipparcos", "second", "conn-a")
    yield server, second, made


def test_query_runs_on_its_database_backend(routed):
    server, second, made = routed
    r = _sync(server, "SELECT COUNT(*) AS n FROM hipparcos.hip2 WHERE hpmag < 5")
    assert r.status_code == 200, r.text
    assert int(r.text.splitlines()[1]) > 100
    assert made == ["conn-a"]  # made once per connection config
    assert len(second.sent) == 1 and "WHERE" in second.sent[0]
    # a query on the default backend's database does not go there
    r = _sync(server, "SELECT TOP 1 source_id FROM gaia.dr3_bright")
    assert r.status_code == 200, r.text
    assert len(second.sent) == 1
    _sync(server, "SELECT TOP 1 hip FROM hipparcos.hip2")
    assert len(second.sent) == 2 and made == ["conn-a"]


def test_tables_of_two_backends_named_in_error(routed):
    server, second, _ = routed
    r = _sync(server, "SELECT TOP 5 h.hip, g.source_id FROM hipparcos.hip2 AS h"
                      " JOIN gaia.dr3_bright AS g ON 1=CONTAINS(POINT(g.ra, g.dec),"
                      " CIRCLE(h.ra, h.dec, 0.001))")
    # [federation] joins the two backends' tables when one side is small enough to move;
    # the whole of Hipparcos is not: refused from its row count, nothing read.
    assert r.status_code == 400
    assert "QUERY_STATUS" in r.text
    assert "(duckdb)" in r.text
    assert "hipparcos.hip2 on second (conn-a)" in r.text
    assert second.sent == []


def test_backend_not_configured(start_server):
    server = start_server(demo=True)
    server.platform.catalogue.set_backend("hipparcos", "nosuch", "nowhere")
    r = _sync(server, "SELECT TOP 1 hip FROM hipparcos.hip2")
    assert r.status_code == 400
    assert "no 'nosuch' backend configured" in r.text
    # a PostgreSQL database whose connection is not stored: unavailable, said clearly
    server.platform.catalogue.set_backend("hipparcos", "postgres", "nowhere")
    r = _sync(server, "SELECT TOP 1 hip FROM hipparcos.hip2")
    assert r.status_code == 503
    assert "no connection is stored for the PostgreSQL database 'nowhere'" in r.text
    # the other database still answers
    assert _sync(server, "SELECT TOP 1 source_id FROM gaia.dr3_bright").status_code == 200


def test_router_choose_moves_uploads_never_catalogues(tmp_path):
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    engine = DuckDBEngine(tmp_path)
    other = DuckDBEngine(tmp_path)
    router = BackendRouter(engine)
    router.register("other", lambda ref: other)
    col = [ColumnMeta(name="x", datatype="double")]
    up = TableMeta(database="tap_upload", name="u", columns=col, kind="upload")
    mine = TableMeta(database="user_a", name="t", columns=col, kind="user")
    cat = TableMeta(database="gaia", name="s", columns=col)
    far = TableMeta(database="cat", name="t", columns=col, backend="other", backend_ref="c")
    assert router.choose([up]) is engine
    assert router.choose([up, mine, far]) is other  # copied there for the query
    with pytest.raises(MixedBackends, match=r"gaia.s, tap_upload.u on duckdb; cat.t on other \(c\)"):
        router.choose([cat, up, far])
