"""The client and the registry against a TAP service that misbehaves: overflow, slow,
dropped connections, error documents, hostile metadata, job links elsewhere."""

from __future__ import annotations

import time

import pytest
from fake_tap import (
    VOT,
    XML,
    FakeTap,
    Seen,
    error_document,
    job_document,
    slow,
    votable,
)
from remote_helpers import LOOPBACK

from taphouse.outbound import Outbound, OutboundPolicy
from taphouse.remotes import (
    RemoteError,
    RemoteQueryFailed,
    RemoteTap,
    RemoteUnavailable,
    RetryPolicy,
)


def client(fake: FakeTap, timeout: float = 10, **kw) -> RemoteTap:  # noqa: ANN003
    sleeps: list[float] = []
    kw.setdefault("retry", RetryPolicy(3, 0.05))
    tap = RemoteTap("odd", fake.url, Outbound(OutboundPolicy(allow=LOOPBACK, timeout=timeout)),
                    sleep=lambda s: (sleeps.append(s), time.sleep(s))[1], **kw)
    tap.sleeps = sleeps  # type: ignore[attr-defined]
    return tap


def test_overflow_after_the_table_is_reported(fake_tap: FakeTap) -> None:
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, votable(
        [(1, 1.5), (2, 2.5)], status="OK", trailing="OVERFLOW"))
    answer = client(fake_tap).query_sync("SELECT id, raj2000 FROM cat.stars", maxrec=2)
    assert answer.overflow and answer.rows == 2
    assert fake_tap.seen[-1].form["MAXREC"] == "3"  # one more: a silent cut shows
    assert fake_tap.seen[-1].form["QUERY"] == "SELECT id, raj2000 FROM cat.stars"


def test_slow_remote_times_out_clearly(fake_tap: FakeTap) -> None:
    fake_tap.routes["/tap/sync"] = slow(5, (200, VOT, votable([])))
    start = time.monotonic()
    with pytest.raises(RemoteUnavailable) as err:
        client(fake_tap, timeout=1).query_sync("SELECT 1")
    assert time.monotonic() - start < 4
    assert "remote 'odd'" in err.value.message and "timed out" in err.value.message
    assert len(fake_tap.paths("POST")) == 1  # a timeout is not retried


@pytest.mark.parametrize("how", ["drop", "reset"])
def test_dropped_connection_is_retried_then_reported(fake_tap: FakeTap, how: str) -> None:
    fake_tap.routes["/tap/sync"] = lambda s: how
    tap = client(fake_tap)
    with pytest.raises(RemoteUnavailable) as err:
        tap.query_sync("SELECT 1")
    assert "after 3 attempts" in err.value.message and "'odd'" in err.value.message
    assert len(fake_tap.paths("POST")) == 3
    assert tap.sleeps == [0.05, 0.1]  # type: ignore[attr-defined]


def test_a_retry_that_works_gives_the_answer(fake_tap: FakeTap) -> None:
    calls: list[int] = []

    def flaky(seen: Seen):  # noqa: ANN202
        calls.append(1)
        return "drop" if len(calls) == 1 else (200, VOT, votable([(7, 1.0)]))

    fake_tap.routes["/tap/sync"] = flaky
    assert client(fake_tap).query_sync("SELECT 1").table.column("id").to_pylist() == [7]


def test_connection_refused_is_retried_with_backoff() -> None:
    fake = FakeTap().start()
    fake.stop()  # nothing listens on its port any more
    tap = client(fake)
    with pytest.raises(RemoteUnavailable, match="after 3 attempts"):
        tap.capabilities()
    assert tap.sleeps == [0.05, 0.1]  # type: ignore[attr-defined]


def test_error_document_is_quoted_as_text(fake_tap: FakeTap) -> None:
    fake_tap.routes["/tap/sync"] = lambda s: (400, VOT, error_document(
        "Unknown table <b>cat.nope</b>"))
    with pytest.raises(RemoteQueryFailed) as err:
        client(fake_tap).query_sync("SELECT * FROM cat.nope")
    assert err.value.message == ("remote 'odd' reported an error: Unknown table"
                                 " <b>cat.nope</b>")
    # An HTTP error without a VOTable: the status and a plain-text excerpt.
    fake_tap.routes["/tap/sync"] = lambda s: (503, {"Content-Type": "text/html"},
                                              b"<html><h1>Down for maintenance</h1></html>")
    with pytest.raises(RemoteQueryFailed, match="HTTP 503: Down for maintenance"):
        client(fake_tap).query_sync("SELECT 1")


def test_answer_with_a_doctype_is_refused(fake_tap: FakeTap) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE VOTABLE [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>' + votable([])[21:])
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, bomb)
    with pytest.raises(RemoteUnavailable, match="declares a DTD"):
        client(fake_tap).query_sync("SELECT 1")


def test_async_error_phase_quotes_the_summary(fake_tap: FakeTap) -> None:
    job = fake_tap.url + "/async/j1"
    fake_tap.routes["/tap/async"] = lambda s: (303, {"Location": job}, b"")
    fake_tap.routes["/tap/async/j1"] = lambda s: (200, XML, job_document(
        "j1", "ERROR", error="division by zero in remote"))
    fake_tap.routes["/tap/async/j1/error"] = lambda s: (404, {}, b"")
    with pytest.raises(RemoteQueryFailed, match="'odd' reported an error: division by zero"):
        client(fake_tap).query_async("SELECT 1/0")
    # The job is deleted afterwards.
    assert any(s.path == "/tap/async/j1" and s.form.get("ACTION") == "DELETE"
               for s in fake_tap.seen)


def test_async_timeout_deletes_the_job(fake_tap: FakeTap) -> None:
    job = fake_tap.url + "/async/j2"
    fake_tap.routes["/tap/async"] = lambda s: (303, {"Location": job}, b"")
    fake_tap.routes["/tap/async/j2"] = slow(0.3, (200, XML, job_document("j2", "EXECUTING")))
    with pytest.raises(RemoteUnavailable, match="did not finish the query within 1 seconds"):
        client(fake_tap).query_async("SELECT 1", timeout=1, poll=1)
    assert fake_tap.seen[-1].form.get("ACTION") == "DELETE"


def test_a_huge_job_document_is_refused_at_once(fake_tap: FakeTap) -> None:
    # A job document is a few kB; a remote sending 8 MB of it at every poll made the
    # server read (and parse) it until the query's time limit, and long past it.
    job = fake_tap.url + "/async/j5"
    padded = job_document("j5", "EXECUTING").replace(
        b"<uws:phase>", b"<!-- " + b"x" * (8 << 20) + b" --><uws:phase>")
    fake_tap.routes["/tap/async"] = lambda s: (303, {"Location": job}, b"")
    fake_tap.routes["/tap/async/j5"] = lambda s: (200, XML, padded)
    with pytest.raises(RemoteUnavailable, match="limit is 5242880"):
        client(fake_tap).query_async("SELECT 1", timeout=30, poll=1)
    assert len([s for s in fake_tap.seen if s.path == "/tap/async/j5"]) <= 2


def test_credentials_go_only_to_the_registered_origin(fake_tap: FakeTap) -> None:
    # The job's result link names the same server under another host name: another
    # origin, so it is fetched (through the guard) without the credentials.
    job = fake_tap.url + "/async/j3"
    elsewhere = f"http://localhost:{fake_tap.port}/results/j3"
    fake_tap.routes["/tap/async"] = lambda s: (303, {"Location": job}, b"")
    fake_tap.routes["/tap/async/j3"] = lambda s: (200, XML, job_document(
        "j3", "COMPLETED", result_href=elsewhere))
    fake_tap.routes["/results/j3"] = lambda s: (200, VOT, votable([(1, 2.0)]))
    tap = client(fake_tap, credentials={"Authorization": "Bearer s3cret"})
    assert "s3cret" not in repr(tap)
    answer = tap.query_async("SELECT 1")
    assert answer.rows == 1
    by_path = {(s.method, s.path): s for s in fake_tap.seen}
    assert by_path[("POST", "/tap/async")].headers.get("authorization") == "Bearer s3cret"
    assert by_path[("GET", "/tap/async/j3")].headers.get("authorization") == "Bearer s3cret"
    result = by_path[("GET", "/results/j3")]
    assert result.host.startswith("localhost") and "authorization" not in result.headers


def test_job_link_to_a_private_address_is_refused(fake_tap: FakeTap) -> None:
    job = fake_tap.url + "/async/j4"
    fake_tap.routes["/tap/async"] = lambda s: (303, {"Location": job}, b"")
    fake_tap.routes["/tap/async/j4"] = lambda s: (200, XML, job_document(
        "j4", "COMPLETED", result_href="http://169.254.169.254/latest/meta-data/"))
    with pytest.raises(RemoteUnavailable, match="169.254.169.254.*non-public"):
        client(fake_tap).query_async("SELECT 1")


# --- registration against misbehaving services -----------------------------------------
def test_hostile_metadata_is_kept_as_plain_text(registry, fake_tap: FakeTap) -> None:  # noqa: ANN001
    remote = registry.add("odd", fake_tap.url)
    assert remote.metadata_source == "vosi" and remote.capabilities.maxrec_hard == 100
    (table,) = registry.tables(remote)
    assert (table.schema, table.name) == ("cat", "stars")
    assert table.description == "Stars <script>alert(1)</script> with control"
    assert [c.name for c in table.columns] == ["id", "RAJ2000"]
    assert table.columns[1].unit == "deg" and table.columns[0].indexed
    assert registry.table(remote, "CAT", "STARS") is not None  # ADQL regular identifiers


def test_limits_below_one_are_taken_as_unknown(registry, fake_tap: FakeTap) -> None:  # noqa: ANN001
    # A remote advertising a hard limit of -5 was sent MAXREC=-5 with every query, and
    # every answer was refused ("2 rows although MAXREC=-5 was asked for").
    from fake_tap import CAPABILITIES

    from taphouse.adql.translator import parse
    from taphouse.auth.identity import Identity
    from taphouse.remotes.pushdown import plan_remote, run_remote

    odd = CAPABILITIES.replace(b'<hard unit="row">100</hard>', b'<hard unit="row">-5</hard>'
                               ).replace(b'<default unit="row">20</default>',
                                         b'<default unit="row">0</default>')
    odd = odd.replace(b"</capability>", b'<uploadLimit><hard unit="row">-1</hard>'
                      b'<hard unit="byte">0</hard></uploadLimit></capability>')
    fake_tap.routes["/tap/capabilities"] = lambda s: (200, XML, odd)
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, votable([(1, 1.0), (2, 2.0)]))
    caps = registry.add("odd", fake_tap.url).capabilities
    assert (caps.maxrec_hard, caps.maxrec_default, caps.upload_limit_rows,
            caps.upload_limit_bytes) == (None, None, None, None)
    plan = plan_remote(parse("SELECT * FROM odd.cat.stars"), Identity(), registry, maxrec=10)
    assert run_remote(plan, registry).rows == 2
    assert fake_tap.seen[-1].form["MAXREC"] == "11"


def test_entity_bomb_in_metadata_is_refused(registry, fake_tap: FakeTap) -> None:  # noqa: ANN001
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            b'<tableset><schema><name>&lol2;</name></schema></tableset>')
    fake_tap.routes["/tap/tables"] = lambda s: (200, XML, bomb)
    fake_tap.routes["/tap/sync"] = lambda s: (400, VOT, error_document("no TAP_SCHEMA"))
    with pytest.raises(RemoteError) as err:
        registry.add("odd", fake_tap.url)
    assert "DTD" in err.value.message and err.value.status == 400
    assert registry.get("odd") is None


def test_too_many_tables_are_refused(registry, fake_tap: FakeTap) -> None:  # noqa: ANN001
    from dataclasses import replace

    from taphouse.remotes.vosi import MetadataLimits

    registry.config = replace(registry.config, limits=MetadataLimits(max_tables=0))
    with pytest.raises(RemoteError, match="more than 0 tables"):
        registry.add("odd", fake_tap.url)


def test_not_a_tap_service(registry, fake_tap: FakeTap) -> None:  # noqa: ANN001
    fake_tap.routes["/tap/capabilities"] = lambda s: (200, XML, (
        b'<capabilities><capability standardID="ivo://ivoa.net/std/ConeSearch"/>'
        b"</capabilities>"))
    with pytest.raises(RemoteError, match="advertises no TAP capability"):
        registry.add("odd", fake_tap.url)
    del fake_tap.routes["/tap/capabilities"]
    with pytest.raises(RemoteError, match="GET capabilities answered HTTP 404"):
        registry.add("odd", fake_tap.url)
    assert registry.remotes() == []


def test_tap_schema_is_used_when_vosi_lists_no_columns(registry, fake_tap: FakeTap) -> None:  # noqa: ANN001
    fake_tap.routes["/tap/tables"] = lambda s: (200, XML, (
        b"<tableset><schema><name>cat</name><table><name>cat.stars</name></table>"
        b"</schema></tableset>"))

    def sync(seen: Seen):  # noqa: ANN202
        from fake_tap import votable as _  # noqa: F401

        if "TAP_SCHEMA.tables" in seen.form["QUERY"]:
            body = _doc(["schema_name", "table_name", "table_type", "description"],
                        [["cat", "cat.stars", "table", "Stars"]])
        else:
            body = _doc(["table_name", "column_name", "datatype", "unit", "ucd",
                         "description", "principal", "indexed", "std"],
                        [["cat.stars", "id", "long", "", "meta.id", "Identifier", "1", "1",
                          "0"],
                         ["cat.stars", "mag", "float", "mag", "phot.mag", "Mag", "0", "0",
                          "0"]])
        return (200, VOT, body)

    fake_tap.routes["/tap/sync"] = sync
    remote = registry.add("odd", fake_tap.url)
    assert remote.metadata_source == "tap_schema"
    (table,) = registry.tables(remote)
    assert [(c.name, c.unit, c.principal) for c in table.columns] == [
        ("id", None, True), ("mag", "mag", False)]


def _doc(names: list[str], rows: list[list[str]]) -> bytes:
    from xml.sax.saxutils import escape

    fields = "".join(f'<FIELD name="{n}" datatype="char" arraysize="*"/>' for n in names)
    trs = "".join("<TR>" + "".join(f"<TD>{escape(v)}</TD>" for v in r) + "</TR>"
                  for r in rows)
    return (f'<?xml version="1.0"?><VOTABLE version="1.4"'
            f' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
            f'<INFO name="QUERY_STATUS" value="OK"/><TABLE>{fields}<DATA><TABLEDATA>{trs}'
            "</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").encode()


def test_health_when_a_remote_goes_down(registry, fake_tap: FakeTap) -> None:  # noqa: ANN001
    registry.add("odd", fake_tap.url)
    fake_tap.routes["/tap/capabilities"] = lambda s: "reset"
    with pytest.raises(RemoteUnavailable):
        registry.refresh("odd")
    remote = registry.require("odd")
    assert remote.state == "failing" and "after 3 attempts" in (remote.last_error or "")
    assert remote.table_count == 1  # the cached metadata stays
    # The next refresh that works makes it healthy again.
    from fake_tap import CAPABILITIES

    fake_tap.routes["/tap/capabilities"] = lambda s: (200, XML, CAPABILITIES)
    assert registry.refresh("odd").state == "ok"
    assert registry.require("odd").last_error is None


def test_refresh_due_follows_the_interval(registry, fake_tap: FakeTap) -> None:  # noqa: ANN001
    registry.add("odd", fake_tap.url)
    count = len(fake_tap.paths())
    assert registry.refresh_due() == {}
    assert len(fake_tap.paths()) == count
    later = time.time() + registry.config.refresh_interval + 1
    assert registry.refresh_due(now=later) == {"odd": None}
    assert len(fake_tap.paths()) > count


def test_answer_with_a_stream_link_is_refused(fake_tap: FakeTap, tmp_path) -> None:  # noqa: ANN001
    # astropy opens a STREAM's href itself: a remote could make the server read its files
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x00\x00\x00\x00\x00\x00\x00\x2a" * 2)
    linked = votable([]).replace(
        b"<TABLEDATA></TABLEDATA>",
        b'<BINARY><STREAM href="' + secret.as_uri().encode() + b'"/></BINARY>')
    assert b"href" in linked
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, linked)
    with pytest.raises(RemoteUnavailable, match="href"):
        client(fake_tap).query_sync("SELECT id FROM cat.stars")


def test_more_rows_than_maxrec_are_refused(fake_tap: FakeTap) -> None:
    # Parquet: a few compressed bytes may stand for millions of rows; the count in the
    # footer is checked before anything is decoded.
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array([0] * 2_000_000, pa.int64())}), out,
                   compression="zstd")
    assert len(out.getvalue()) < 100_000
    fake_tap.routes["/tap/sync"] = lambda s: (200, {"Content-Type": "application/"
                                                    "vnd.apache.parquet"}, out.getvalue())
    with pytest.raises(RemoteUnavailable, match="has 2000000 rows although MAXREC=11"):
        client(fake_tap).query_sync("SELECT id FROM cat.stars", maxrec=10)
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, votable([(1, 1.0), (2, 2.0), (3, 3.0)]))
    # (MAXREC=2 was sent for 1 row: one more, so that a cut answer shows)
    with pytest.raises(RemoteUnavailable, match="has 3 rows although MAXREC=2"):
        client(fake_tap).query_sync("SELECT id FROM cat.stars", maxrec=1)
    answer = client(fake_tap).query_sync("SELECT 1", maxrec=2)
    assert answer.rows == 2 and answer.overflow  # the third row: there is more


def test_credentials_are_not_carried_over_a_redirect_to_another_port(fake_tap: FakeTap
                                                                     ) -> None:
    # The same host on another port is another origin (another service): a redirect
    # there from the registered remote does not take the credentials along.
    other = FakeTap().start()
    try:
        other.routes["/tap/sync"] = lambda s: (200, VOT, votable([(1, 2.0)]))
        fake_tap.routes["/tap/sync"] = lambda s: (307, {
            "Location": f"http://127.0.0.1:{other.port}/tap/sync"}, b"")
        tap = client(fake_tap, credentials={"Authorization": "Bearer s3cret"})
        assert tap.query_sync("SELECT 1").rows == 1
        assert fake_tap.seen[-1].headers.get("authorization") == "Bearer s3cret"
        assert other.seen and "authorization" not in other.seen[-1].headers
    finally:
        other.stop()


def test_a_parquet_answer_that_would_decode_to_gigabytes_is_refused(fake_tap: FakeTap
                                                                     ) -> None:
    # 300 rows of one dictionary-encoded 1 MB string: ~1 MB on the wire, 300 MB decoded
    # (the rows are within MAXREC). Refused from the dictionary sizes, never expanded.
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    def parquet(rows: int, text: str) -> bytes:
        column = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()),
                                                pa.array([text]))
        out = io.BytesIO()
        pq.write_table(pa.table({"s": column}), out, compression="zstd",
                       store_schema=False)  # read back as plain strings
        return out.getvalue()

    bomb = parquet(300, "x" * 1_000_000)
    assert len(bomb) < 2_000_000
    fake_tap.routes["/tap/sync"] = lambda s: (200, {"Content-Type": "application/"
                                                    "vnd.apache.parquet"}, bomb)
    with pytest.raises(RemoteUnavailable, match="once decoded, more than"):
        client(fake_tap).query_sync("SELECT s FROM t", maxrec=1000)
    # The same shape at a sane size decodes, strings intact.
    fake_tap.routes["/tap/sync"] = lambda s: (200, {"Content-Type": "application/"
                                                    "vnd.apache.parquet"},
                                              parquet(300, "hello"))
    answer = client(fake_tap).query_sync("SELECT s FROM t", maxrec=1000)
    assert answer.rows == 300 and answer.table.column("s").type == pa.string()
    assert set(answer.table.column("s").to_pylist()) == {"hello"}
