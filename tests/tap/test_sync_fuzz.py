"""Random and malformed TAP requests to /tap/sync and /tap/async: parameter names in any
case, garbage LANG/MAXREC/RESPONSEFORMAT/UPLOAD values, random bytes as upload parts,
malformed bodies and ADQL-ish text from a token grammar. Whatever arrives: never a 5xx,
never a traceback, and every error (a non-2xx answer, or a sync result ending in
QUERY_STATUS=ERROR) is a well-formed VOTable saying QUERY_STATUS=ERROR."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

SETTINGS = dict(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One small server for the module: tables t.nums and t.stars (50 rows each), low
    limits so that no random query can run long."""
    from servers import start_live as _start
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    server = _start(tmp_path_factory.mktemp("fuzz"), maxrec_default=20, maxrec_limit=100,
                    sync_timeout=10.0, exec_duration_default=10.0, exec_duration_limit=20.0,
                    upload_max_bytes=64 * 1024, upload_max_rows=1000)
    p = server.platform
    p.catalogue.create_database("t", "fuzz data")
    for name, sql, columns in [
        ("nums", "SELECT range::BIGINT AS id FROM range(50)",
         [ColumnMeta(name="id", datatype="long")]),
        ("stars", "SELECT range::BIGINT AS id, (range * 7.3) % 360 AS ra,"
         " (range * 3.1) % 180 - 90 AS dec, 'star ' || range AS name FROM range(50)",
         [ColumnMeta(name="id", datatype="long"),
          ColumnMeta(name="ra", datatype="double", unit="deg", ucd="pos.eq.ra"),
          ColumnMeta(name="dec", datatype="double", unit="deg", ucd="pos.eq.dec"),
          ColumnMeta(name="name", datatype="unicodeChar", arraysize="*")]),
    ]:
        path = p.catalogue.new_version_path("t", name)
        n = p.engine.write_table(sql, path)
        p.catalogue.publish(TableMeta(database="t", name=name, nrows=n, columns=columns), path)
    yield server
    server.stop()


# --- the grammar --------------------------------------------------------------------

TOKENS = [
    "SELECT", "TOP", "DISTINCT", "*", "id", "ra", "dec", "name", "COUNT(*)", "FROM",
    "t.nums", "t.stars", "tap_schema.tables", "tap_schema.columns", "TAP_UPLOAD.t1",
    "nosuch.table", "WHERE", "AND", "OR", "NOT", "=", "<", ">", "<>", "<=", "+", "-", "/",
    "||", "(", ")", ",", ".", ";", "AS", "x", "ORDER BY", "GROUP BY", "HAVING", "JOIN",
    "ON", "USING", "UNION", "EXCEPT", "IN", "BETWEEN", "LIKE", "ILIKE", "IS NULL",
    "CASE WHEN", "THEN", "ELSE", "END", "CAST(", "AS INTEGER)", "NULL", "TRUE", "0", "1",
    "-1", "0.5", "1e308", "1e-400", "99999999999999999999999999999", "-9223372036854775809",
    "'abc'", "'", "'unterminated", '"', '"quoted id"', '"é☃"', "'é☃ü'", "--", "/*", "*/",
    "POINT('ICRS', ra, dec)", "CIRCLE('ICRS', 10, 10, 1)", "BOX('ICRS', 1, 2, 3, 4)",
    "POLYGON('ICRS', 1, 2, 3, 4, 5, 6)", "CONTAINS(", "INTERSECTS(", "DISTANCE(", "AREA(",
    "COORD1(", "ivo_healpix_index(", "FLOOR(", "SQRT(", "LOG(", "POWER(", "MOD(", "ABS(",
    "1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0, 0, 400))", "\x00", "\t", "\n",
    "OFFSET", "LIMIT", "WITH", "INSERT INTO", "DROP TABLE", "COPY", "read_csv('/etc/passwd')",
    "pragma", "ATTACH", "'\\'", "$$", "?", ":x", "@", "#", "𝔘𝔫𝔦", "\u202e",
]
ADQL = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join),
    st.lists(st.sampled_from(TOKENS), max_size=25).map(
        lambda ts: "SELECT " + " ".join(ts)),
    st.tuples(st.sampled_from(["id", "ra + dec", "COUNT(*)", "name", "*"]),
              st.sampled_from(["t.nums", "t.stars", "tap_schema.tables"]),
              st.lists(st.sampled_from(TOKENS), max_size=8)).map(
        lambda p: f"SELECT {p[0]} FROM {p[1]} WHERE " + " ".join(p[2])),
    st.tuples(st.integers(0, 3000), st.integers(0, 3000)).map(
        lambda n: "SELECT " + "(" * n[0] + "1" + ")" * n[1] + " FROM t.nums"),
    st.integers(-(10 ** 40), 10 ** 40).map(lambda n: f"SELECT TOP {n} id FROM t.nums"),
    st.text(max_size=60),
)

NAMES = ["LANG", "QUERY", "MAXREC", "RESPONSEFORMAT", "FORMAT", "UPLOAD", "RUNID",
         "REQUEST", "PHASE", "VERSION", "DEST", "DEST_MODE", "tapclient", "jobname",
         "EXECUTIONDURATION", "DESTRUCTION"]
NAME = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.lists(st.booleans(), min_size=20, max_size=20)).map(
        lambda p: "".join(c.upper() if up else c.lower() for c, up in zip(p[0], p[1], strict=False))),
    st.text(min_size=1, max_size=12),
)
GARBAGE = st.one_of(st.text(max_size=40), st.sampled_from(
    ["", " ", "ADQL", "adql-2.1", "ADQL-3.0", "SQL", "PQL", "-1", "0", "1", "1e3", "NaN",
     "99999999999999999999999", "votable", "votable/td", "csv", "fits", "parquet", "json",
     "tsv", "application/x-votable+xml;serialization=BINARY", "text/html", "vot;x=;;",
     "t1,param:t1", "t1,param:nosuch", "t1,http://127.0.0.1:1/x", "t1,file:///etc/passwd",
     "1bad,param:t1", "t1,param:t1;t2,param:t2", ";;,", ",", "t1", "RUN", "ABORT"]))
VALUES = {
    "lang": st.one_of(st.sampled_from(["ADQL", "adql", "ADQL-2.0", "ADQL-2.1"]), GARBAGE),
    "query": ADQL,
    "maxrec": st.one_of(st.integers(-5, 10 ** 30).map(str), GARBAGE),
    "responseformat": GARBAGE,
    "format": GARBAGE,
    "upload": GARBAGE,
}


# Queries that run, so that formats, limits and uploads are reached with odd inputs.
RUNNABLE = [
    "SELECT * FROM t.stars", "SELECT TOP 3 id FROM t.nums ORDER BY id DESC",
    "SELECT name, POINT('ICRS', ra, dec) AS p, CIRCLE('ICRS', ra, dec, 1) AS c FROM t.stars",
    "SELECT COUNT(*) AS n, AVG(ra) AS m FROM t.stars GROUP BY id / 10",
    "SELECT 'é☃', NULL, 1e308, -0.0, CAST(NULL AS INTEGER) FROM t.nums",
    "SELECT * FROM TAP_UPLOAD.t1",
    "SELECT u.*, s.name FROM TAP_UPLOAD.t1 AS u JOIN t.stars AS s ON s.id = u.id",
    "SELECT * FROM tap_schema.columns",
    "SELECT id FROM t.nums WHERE 1 = CONTAINS(POINT('ICRS', id, 0), CIRCLE('ICRS', 0, 0, 10))",
]
FORMATS = ["votable", "votable/td", "csv", "tsv", "fits", "parquet", "json",
           "application/x-votable+xml;serialization=TABLEDATA", "text/xml", "application/json"]


@st.composite
def tap_params(draw: Any) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    start = draw(st.sampled_from(["bare", "random", "runnable", "runnable"]))
    if start == "random":
        params += [("LANG", "ADQL"), ("QUERY", draw(ADQL))]
    elif start == "runnable":
        query = draw(st.sampled_from(RUNNABLE))
        params += [("LANG", "ADQL"), ("QUERY", query),
                   ("RESPONSEFORMAT", draw(st.sampled_from(FORMATS))),
                   ("MAXREC", str(draw(st.integers(0, 200))))]
        if "TAP_UPLOAD" in query:
            params.append(("UPLOAD", "t1,param:t1"))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(NAME)
        params.append((name, draw(VALUES.get(name.lower(), GARBAGE))))
    return params


VOTABLE_T1 = (b'<?xml version="1.0"?><VOTABLE version="1.4"'
              b' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>'
              b'<FIELD name="id" datatype="long"/><FIELD name="ra" datatype="double"/>'
              b"<DATA><TABLEDATA><TR><TD>1</TD><TD>10.5</TD></TR><TR><TD>2</TD><TD/></TR>"
              b"</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")
PART_BODY = st.one_of(
    st.binary(max_size=300),
    st.just(VOTABLE_T1),
    st.just(b"id,ra\n1,10.5\n2,\n"),
    st.just(b"id,ra\n1,2,3\n\"unterminated"),
    st.just(b"PAR1garbage"),
    st.just(b"SIMPLE  =                    T" + b" " * 50),
    st.just(VOTABLE_T1.replace(b"TABLEDATA", b"BINARY2")),
    st.just(VOTABLE_T1[:150]),
    st.just(b"<VOTABLE><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>&e;</VOTABLE>"),
    st.just(b"<?xml version='1.0'?><!DOCTYPE l [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b"
            b" '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]><VOTABLE>&b;</VOTABLE>"),
)
PART_TYPE = st.one_of(st.sampled_from(
    ["application/x-votable+xml", "text/xml", "text/csv", "application/vnd.apache.parquet",
     "application/fits", "application/octet-stream", "None", "text/plain; charset=latin-1",
     "multipart/mixed", ""]), st.text(max_size=20))
RAW_TYPE = st.sampled_from(
    ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=x",
     "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-16",
     "application/json", "text/plain", ""])


@st.composite
def requests_(draw: Any) -> dict[str, Any]:
    endpoint = draw(st.sampled_from(["/sync", "/sync", "/async"]))
    method = draw(st.sampled_from(["GET", "POST"]))
    params = draw(tap_params())
    req: dict[str, Any] = {"method": method, "url": endpoint}
    if method == "GET":
        req["params"] = params
        return req
    body = draw(st.sampled_from(["form", "multipart", "raw", "query-string"]))
    if body == "form":
        req["data"] = dict(params)
    elif body == "query-string":
        req["params"] = params
    elif body == "multipart":
        parts = {}
        for name in draw(st.lists(st.sampled_from(["t1", "t2", "T1", "x", "a b"]), max_size=3)):
            parts[name] = (draw(st.sampled_from(["t.xml", "t.csv", "", "../x"])),
                           draw(PART_BODY), draw(PART_TYPE))
        if not parts:
            parts["t1"] = ("t.xml", VOTABLE_T1, "application/x-votable+xml")
        req["data"] = dict(params)
        req["files"] = parts
    else:
        req["content"] = draw(st.one_of(st.binary(max_size=400),
                                        st.just(b"LANG=ADQL&QUERY=%ZZ%&MAXREC=%"),
                                        st.just(b"--x\r\nContent-Disposition: form-data\r\n")))
        req["headers"] = {"content-type": draw(RAW_TYPE)}
    return req


# --- the checks ---------------------------------------------------------------------

def _query_status(content: bytes) -> list[str]:
    doc = etree.fromstring(content, parser=etree.XMLParser(resolve_entities=False))
    return [i.get("value") for i in doc.iter("{*}INFO") if i.get("name") == "QUERY_STATUS"]


def check(r: httpx.Response) -> None:
    body = r.content
    assert r.status_code < 500, (r.status_code, body[:500])
    assert b"Traceback" not in body and b'File "' not in body, body[:500]
    ctype = r.headers.get("content-type", "")
    if r.status_code >= 400:
        assert ctype.startswith("application/x-votable+xml"), (r.status_code, ctype, body[:300])
        status = _query_status(body)
        assert status and status[0] == "ERROR", body[:500]
        assert b"<INFO" in body and len(body) < 100_000
    elif r.status_code == 200 and r.request.url.path.endswith("/sync"):
        if ctype.startswith("application/x-votable+xml"):
            status = _query_status(body)  # well-formed, and says how it ended
            assert status and status[0] in {"OK", "OVERFLOW", "ERROR"}, body[:500]
            if "ERROR" in status:
                assert status[-1] == "ERROR"
        elif ctype.startswith("application/json"):
            assert json.loads(body)["status"] in {"OK", "OVERFLOW"}
        else:
            assert body, ctype
    elif r.status_code in (301, 302, 303):
        assert "/tap/async/" in r.headers["location"]


def test_random_tap_requests_never_fail_the_server(server: Any) -> None:
    with httpx.Client(base_url=server.tap, timeout=60, follow_redirects=False) as client:

        @settings(**SETTINGS)
        @given(req=requests_())
        def one(req: dict[str, Any]) -> None:
            r = client.request(**req)
            event(f"{req['method']} {req['url']} -> {r.status_code}")
            check(r)

        one()


def test_sync_errors_are_votables_with_the_position(server: Any) -> None:
    """Shapes the random test reaches only by chance, asserted every time."""
    with httpx.Client(base_url=server.tap, timeout=60) as client:
        cases = [
            {"LANG": "ADQL", "QUERY": "SELECT 'unterminated FROM t.nums"},
            {"LANG": "ADQL", "QUERY": "SELECT " + "(" * 5000 + "1" + ")" * 5000},
            {"LANG": "ADQL", "QUERY": "SELECT id FROM t.nums", "MAXREC": "1e3"},
            {"LANG": "ADQL", "QUERY": "SELECT id FROM t.nums", "RESPONSEFORMAT": "text/html"},
            {"LANG": "ADQL", "QUERY": "SELECT id FROM t.nums", "UPLOAD": "t1,param:t1"},
            {"LANG": "ADQL", "QUERY": "SELECT id FROM t.nums", "UPLOAD": "t1,file:///etc/passwd"},
            {"LANG": "PQL", "QUERY": "SELECT id FROM t.nums"},
            {"QUERY": "SELECT id FROM t.nums"},
            {"LANG": "ADQL", "QUERY": "SELECT id FROM t.nums; DROP TABLE t.nums"},
            {"LANG": "ADQL", "QUERY": "SELECT CAST(name AS INTEGER) FROM t.stars"},
        ]
        for params in cases:
            for r in (client.get("/sync", params=params), client.post("/sync", data=params)):
                check(r)
                assert r.status_code == 400, (params, r.text[:300])
        # A TOP beyond any integer type is just no limit: MAXREC (default 20) applies.
        r = client.get("/sync", params={
            "LANG": "ADQL", "QUERY": "SELECT TOP 99999999999999999999999 id FROM t.nums"})
        check(r)
        assert r.status_code == 200 and _query_status(r.content)[-1] == "OVERFLOW"
        r = client.post("/sync", data={"LANG": "ADQL",
                                       "QUERY": "SELECT id FROM t.nums\n WHERE idd = 1"})
        check(r)
        assert r.status_code == 400 and "line 2" in r.text and "idd" in r.text
        for body in [b"\x00" * 50, b"not a table", VOTABLE_T1[:150]]:
            r = client.post("/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t1",
                                           "UPLOAD": "t1,param:t1"},
                            files={"t1": ("t1.xml", body, "application/x-votable+xml")})
            check(r)
            assert r.status_code == 400, r.text[:300]


def test_garbage_upload_limit_message(server: Any, tmp_path: Path) -> None:
    """An upload over the byte limit is refused with a message naming the limit."""
    with httpx.Client(base_url=server.tap, timeout=60) as client:
        big = b"id\n" + b"1\n" * 40_000
        r = client.post("/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t1",
                                       "UPLOAD": "t1,param:t1"},
                        files={"t1": ("t1.csv", big, "text/csv")})
        check(r)
        assert r.status_code in (400, 413) and "65536" in r.text, r.text[:300]


def test_hostile_votable_uploads_are_clear_errors(server: Any, tmp_path: Path) -> None:
    """Uploads built to make the server read its own files or spin: a 400 VOTable error
    naming the problem, quickly (the attack review of the vectorised reader)."""
    import time

    secret = tmp_path / "secret"
    secret.write_bytes(b"\x00\x00\x00\x2a" * 4)
    head = (b'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/'
            b'VOTable/v1.3"><RESOURCE><TABLE><FIELD name="id" datatype="int"/><DATA>')
    tail = b"</DATA></TABLE></RESOURCE></VOTABLE>"
    cases = {
        "href": head + b'<BINARY><STREAM href="' + secret.as_uri().encode()
        + b'"/></BINARY>' + tail,
        "unclosed cells": head + b"<TABLEDATA>" + b"<TD" * 20_000 + b"</TABLEDATA>" + tail,
    }
    with httpx.Client(base_url=server.tap, timeout=120) as client:
        for what, body in cases.items():
            start = time.monotonic()
            r = client.post("/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t1",
                                           "UPLOAD": "t1,param:t1"},
                            files={"t1": ("t1.xml", body, "application/x-votable+xml")})
            check(r)
            assert time.monotonic() - start < 10, what
            if what == "href":
                assert r.status_code == 400 and "href" in r.text, r.text[:300]
            else:  # not well-formed: astropy reads no rows
                assert r.status_code == 400 or r.status_code == 200 and b"<TR>" not in r.content
