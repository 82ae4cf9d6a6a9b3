"""TAP async (UWS 1.1) over real HTTP: stock pyvo, the UWS schema, WAIT, ABORT,
execution duration, owners, parameters, uploads, list filters."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import pyvo
import requests
from astropy.io.votable import parse_single_table
from astropy.table import Table
from lxml import etree

from accounts import PASSWORD

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink"}
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
# Slow enough to watch it run (seconds on 2 cores), cancellable at any time.
SLOW = ("SELECT COUNT(*) AS n FROM t.nums AS a, t.nums AS b, t.nums AS c"
        " WHERE a.id + b.id + c.id = 7")
FAST = "SELECT id, id * 2 AS twice FROM t.nums WHERE id < 5 ORDER BY id"


def make_server(start_server: Any, rows: int = 1000, users: tuple[str, ...] = ("alice",),
                **settings: Any) -> Any:
    """A live server with table ``t.nums`` (``id`` 0..rows-1) and the given accounts."""
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    server = start_server(**settings)
    p = server.platform
    p.catalogue.create_database("t", "test data")
    path = p.catalogue.new_version_path("t", "nums")
    n = p.engine.write_table(f"SELECT range::BIGINT AS id FROM range({rows})", path)
    p.catalogue.publish(TableMeta(database="t", name="nums", nrows=n,
                                  columns=[ColumnMeta(name="id", datatype="long")]), path)
    for user in users:
        p.authenticator.accounts.add_user(user, PASSWORD)
    return server


def client(server: Any, user: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=server.tap, auth=(user, PASSWORD) if user else None,
                        timeout=90)


def tap(server: Any, user: str | None = None) -> pyvo.dal.TAPService:
    session = requests.Session()
    if user:
        session.auth = (user, PASSWORD)
    return pyvo.dal.TAPService(server.tap, session=session)


def create(c: httpx.Client, query: str, **params: str) -> str:
    r = c.post("/async", data={"LANG": "ADQL", "QUERY": query, **params})
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[1]


def job_doc(c: httpx.Client, job_id: str, **params: str) -> etree._Element:
    r = c.get(f"/async/{job_id}", params=params)
    assert r.status_code == 200, r.text
    return etree.fromstring(r.content)


def phase_of(doc: etree._Element) -> str:
    return doc.findtext("uws:phase", namespaces=NS)


def wait_final(c: httpx.Client, job_id: str, timeout: float = 60) -> etree._Element:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = job_doc(c, job_id, WAIT="10")
        if phase_of(doc) in {"COMPLETED", "ERROR", "ABORTED"}:
            return doc
    raise AssertionError(f"job {job_id} did not finish")


# --- the UWS 1.1 schema, as shipped with STILTS (taplint validates against it) -------------
_XLINK_XSD = b"""<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
  targetNamespace="http://www.w3.org/1999/xlink" attributeFormDefault="qualified">
  <xs:attribute name="type" type="xs:string"/>
  <xs:attribute name="href" type="xs:anyURI"/>
</xs:schema>"""


class _XlinkResolver(etree.Resolver):
    def resolve(self, url, pubid, context):  # noqa: D102
        if "xlink" in url.lower():
            return self.resolve_string(_XLINK_XSD, context)
        return None


@pytest.fixture(scope="module")
def uws_schema() -> etree.XMLSchema:
    jar = Path("/usr/share/java/starlink-ttools.jar")
    assert jar.exists(), "the Debian package 'stilts' provides the UWS schema"
    with zipfile.ZipFile(jar) as z:
        xsd = z.read("uk/ac/starlink/ttools/taplint/UWS-v1.1.xsd")
    parser = etree.XMLParser()
    parser.resolvers.add(_XlinkResolver())
    return etree.XMLSchema(etree.fromstring(xsd, parser))


def assert_valid(schema: etree.XMLSchema, content: bytes) -> etree._Element:
    doc = etree.fromstring(content)
    assert schema.validate(doc), schema.error_log
    return doc


# --- tests ------------------------------------------------------------------------------------
def test_pyvo_submit_run_wait_fetch_delete(start_server):
    server = make_server(start_server)
    service = tap(server, "alice")
    job = service.submit_job(FAST, maxrec=3, runid="pyvo-1")
    assert job.phase == "PENDING"
    assert job.query == FAST
    job.run()
    assert job.phase != "PENDING"  # RUN moved it to QUEUED before the reply
    job.wait()
    assert job.phase == "COMPLETED"
    assert job.owner == "alice"
    assert job.uws_version == "1.1"
    assert job.result_uri == f"{job.url}/results/result"
    result = job.fetch_result().to_table()
    assert list(result["id"]) == [0, 1, 2] and list(result["twice"]) == [0, 2, 4]
    job.delete()
    with client(server, "alice") as c:
        assert c.get(f"/async/{job.job_id}").status_code == 404


def test_pyvo_run_async_anonymous_and_upload(start_server):
    server = make_server(start_server)
    service = tap(server)
    result = service.run_async(FAST)
    assert list(result.to_table()["id"]) == [0, 1, 2, 3, 4]
    upload = Table({"k": [3, 4, 5000]})
    joined = service.run_async("SELECT n.id FROM t.nums AS n JOIN TAP_UPLOAD.mine AS u"
                               " ON n.id = u.k ORDER BY n.id", uploads={"mine": upload})
    assert list(joined.to_table()["id"]) == [3, 4]


def test_documents_validate_against_the_uws_schema(start_server, uws_schema):
    server = make_server(start_server)
    with client(server, "alice") as c:
        pending = create(c, FAST, RUNID="r1")
        failed = create(c, "SELECT nope FROM t.nums", PHASE="RUN")
        done = create(c, FAST, PHASE="RUN")
        wait_final(c, failed)
        wait_final(c, done)
        for job_id in (pending, failed, done):
            doc = assert_valid(uws_schema, c.get(f"/async/{job_id}").content)
            assert doc.get("version") == "1.1"
            assert doc.findtext("uws:jobId", namespaces=NS) == job_id
            assert doc.findtext("uws:ownerId", namespaces=NS) == "alice"
            for name in ("creationTime", "executionDuration", "destruction"):
                assert doc.findtext(f"uws:{name}", namespaces=NS)
            assert doc.find("uws:results", NS) is not None
        pdoc = etree.fromstring(c.get(f"/async/{pending}").content)
        assert pdoc.findtext("uws:runId", namespaces=NS) == "r1"
        assert pdoc.find("uws:startTime", NS).get(XSI_NIL) == "true"
        params = {p.get("id"): p.text for p in pdoc.find("uws:parameters", NS)}
        assert params["query"] == FAST and params["lang"] == "ADQL"
        ddoc = etree.fromstring(c.get(f"/async/{done}").content)
        (res,) = ddoc.find("uws:results", NS)
        assert res.get("id") == "result"
        assert res.get(f"{{{NS['xlink']}}}href") == f"{server.tap}/async/{done}/results/result"
        assert int(res.get("size")) > 0 and res.get("mime-type")
        fdoc = etree.fromstring(c.get(f"/async/{failed}").content)
        assert phase_of(fdoc) == "ERROR"
        assert "nope" in fdoc.findtext("uws:errorSummary/uws:message", namespaces=NS)
        listing = assert_valid(uws_schema, c.get("/async").content)
        assert listing.get("version") == "1.1"
        refs = {r.get("id"): r for r in listing.findall("uws:jobref", NS)}
        assert set(refs) == {pending, failed, done}
        assert refs[done].get(f"{{{NS['xlink']}}}href") == f"{server.tap}/async/{done}"
        assert refs[done].findtext("uws:phase", namespaces=NS) == "COMPLETED"
        assert_valid(uws_schema, c.get(f"/async/{done}/results").content)
        assert_valid(uws_schema, c.get(f"/async/{pending}/parameters").content)


def test_job_resources_phase_times_owner_quote(start_server):
    server = make_server(start_server, exec_duration_default=600.0, job_retention=3600.0)
    with client(server, "alice") as c:
        job_id = create(c, FAST)
        assert c.get(f"/async/{job_id}/phase").text == "PENDING"
        assert c.get(f"/async/{job_id}/owner").text == "alice"
        assert c.get(f"/async/{job_id}/executionduration").text == "600"
        assert c.get(f"/async/{job_id}/quote").status_code == 200
        r = c.post(f"/async/{job_id}/executionduration", data={"EXECUTIONDURATION": "30"})
        assert r.status_code == 303 and r.headers["location"].endswith(f"/async/{job_id}")
        assert c.get(f"/async/{job_id}/executionduration").text == "30"
        r = c.post(f"/async/{job_id}/destruction", data={"destruction": "2000-01-02T03:04:05Z"})
        assert r.status_code == 303
        assert c.get(f"/async/{job_id}/destruction").text == "2000-01-02T03:04:05.000Z"
        bad = c.post(f"/async/{job_id}/destruction", data={"DESTRUCTION": "soon"})
        assert bad.status_code == 400 and b"QUERY_STATUS" in bad.content
        assert c.post(f"/async/{job_id}/phase", data={"PHASE": "EXPLODE"}).status_code == 400
        # No result and no error yet: 404s with a DALI document.
        assert c.get(f"/async/{job_id}/results/result").status_code == 404
        assert c.get(f"/async/{job_id}/error").status_code == 404
        r = c.post(f"/async/{job_id}/phase", data={"phase": "run"})
        assert r.status_code == 303
        assert c.get(f"/async/{job_id}/phase").text in {"QUEUED", "EXECUTING", "COMPLETED"}


def test_parameters_posted_while_pending_names_case_insensitive(start_server):
    server = make_server(start_server)
    with client(server, "alice") as c:
        r = c.post("/async", data={"lAnG": "ADQL"})
        job_id = r.headers["location"].rsplit("/", 1)[1]
        r = c.post(f"/async/{job_id}/parameters", data={"qUeRy": FAST, "MaxRec": "2"})
        assert r.status_code == 303
        doc = etree.fromstring(c.get(f"/async/{job_id}/parameters").content)
        params = {p.get("id"): p.text for p in doc}
        assert params == {"lang": "ADQL", "query": FAST, "maxrec": "2"}
        c.post(f"/async/{job_id}/phase", data={"PHASE": "RUN"})
        assert phase_of(wait_final(c, job_id)) == "COMPLETED"
        table = parse_single_table(io.BytesIO(
            c.get(f"/async/{job_id}/results/result").content)).to_table()
        assert list(table["id"]) == [0, 1]
        late = c.post(f"/async/{job_id}/parameters", data={"QUERY": "SELECT 1"})
        assert late.status_code == 409 and b"PENDING" in late.content
        # A bad parameter still creates the job (TAP 1.1); it ends in ERROR when run.
        r = c.post("/async", data={"LANG": "ADQL", "QUERY": FAST, "MAXREC": "-3",
                                   "PHASE": "RUN"})
        assert r.status_code == 303
        bad_id = r.headers["location"].rsplit("/", 1)[1]
        assert phase_of(wait_final(c, bad_id)) == "ERROR"
        assert b"MAXREC" in c.get(f"/async/{bad_id}/error").content


def test_failed_query_error_document_with_position(start_server):
    server = make_server(start_server)
    service = tap(server, "alice")
    job = service.submit_job("SELECT id\nFROM t.nums WHERE nosuchcol > 1")
    job.run().wait()
    assert job.phase == "ERROR"
    with pytest.raises(pyvo.dal.DALQueryError, match="nosuchcol"):
        job.raise_if_error()
    with client(server, "alice") as c:
        r = c.get(f"/async/{job.job_id}/error")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-votable+xml")
    doc = etree.fromstring(r.content)
    infos = {i.get("name"): i for i in doc.iter("{*}INFO")}
    assert infos["QUERY_STATUS"].get("value") == "ERROR"
    assert "nosuchcol" in infos["QUERY_STATUS"].text
    assert infos["ERROR_LINE"].get("value") == "2"
    assert int(infos["ERROR_COLUMN"].get("value")) > 0


def test_wait_blocks_only_while_active_and_honours_phase(start_server):
    server = make_server(start_server, workers=1)
    with client(server, "alice") as c:
        job_id = create(c, SLOW)
        # PENDING: blocks for the requested time (nothing changes).
        t0 = time.monotonic()
        assert phase_of(job_doc(c, job_id, WAIT="1")) == "PENDING"
        assert 0.9 < time.monotonic() - t0 < 5
        # PHASE given but not current: at once.
        t0 = time.monotonic()
        assert phase_of(job_doc(c, job_id, WAIT="30", PHASE="EXECUTING")) == "PENDING"
        assert time.monotonic() - t0 < 1
        c.post(f"/async/{job_id}/phase", data={"PHASE": "RUN"})
        # Returns when the phase changes (here: to ABORTED), not at the timeout.
        t0 = time.monotonic()
        with httpx.Client(base_url=server.tap, auth=("alice", PASSWORD)) as other:
            import threading

            abort = threading.Timer(1.0, lambda: other.post(f"/async/{job_id}/phase",
                                                            data={"PHASE": "ABORT"}))
            abort.start()
            phase = phase_of(job_doc(c, job_id, WAIT="50"))
            if phase == "QUEUED":
                phase = phase_of(job_doc(c, job_id, WAIT="50"))
            if phase == "EXECUTING":
                phase = phase_of(job_doc(c, job_id, WAIT="50"))
            abort.join()  # the WAIT may return before the ABORT's own reply is read
        assert phase == "ABORTED"
        assert time.monotonic() - t0 < 10
        # A final phase: at once, even with WAIT=-1.
        t0 = time.monotonic()
        assert phase_of(job_doc(c, job_id, WAIT="-1")) == "ABORTED"
        assert time.monotonic() - t0 < 1
        assert c.get(f"/async/{job_id}", params={"WAIT": "x"}).status_code == 400


def test_pyvo_abort_cancels_the_running_query(start_server):
    server = make_server(start_server, workers=1)
    service = tap(server, "alice")
    job = service.submit_job(SLOW)
    job.run()
    # (Not job.wait(phases={"EXECUTING"}): a UWS 1.1 WAIT blocks *while* the job is
    # EXECUTING, so pyvo would only see the phase after it.)
    deadline = time.monotonic() + 20
    while job.phase != "EXECUTING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.phase == "EXECUTING"
    t0 = time.monotonic()
    job.abort()
    assert job.phase == "ABORTED"  # (pyvo's wait() refuses ABORTED jobs: "not active")
    # The query is interrupted and the worker free again: the next job runs at once.
    assert list(service.run_async(FAST).to_table()["id"]) == [0, 1, 2, 3, 4]
    assert time.monotonic() - t0 < 2.5
    assert server.platform.jobs.running() == {}


def test_execution_duration_ends_the_job_in_error(start_server):
    server = make_server(start_server)
    with client(server, "alice") as c:
        job_id = create(c, SLOW)
        c.post(f"/async/{job_id}/executionduration", data={"EXECUTIONDURATION": "1"})
        t0 = time.monotonic()
        c.post(f"/async/{job_id}/phase", data={"PHASE": "RUN"})
        doc = wait_final(c, job_id)
        assert phase_of(doc) == "ERROR"
        assert time.monotonic() - t0 < 10
        message = doc.findtext("uws:errorSummary/uws:message", namespaces=NS)
        assert "execution duration limit of 1 s" in message
        err = c.get(f"/async/{job_id}/error")
        assert err.status_code == 200 and b"execution duration limit" in err.content


def test_jobs_of_others_are_404_and_lists_are_private(start_server):
    server = make_server(start_server, users=("alice", "bob"))
    with client(server, "alice") as alice, client(server, "bob") as bob, \
            client(server) as anon:
        mine = create(alice, FAST)
        anons = create(anon, FAST)
        for c, job_id in ((bob, mine), (anon, mine), (alice, anons), (bob, "jnope1234"),
                          (alice, "no-such-job")):
            for suffix in ("", "/phase", "/parameters", "/results", "/error", "/owner",
                           "/results/result"):
                r = c.get(f"/async/{job_id}{suffix}")
                assert r.status_code == 404, (job_id, suffix, r.status_code)
            assert c.delete(f"/async/{job_id}").status_code == 404
            assert c.post(f"/async/{job_id}/phase", data={"PHASE": "RUN"}).status_code == 404
        assert anon.get(f"/async/{anons}").status_code == 200
        assert anon.get(f"/async/{anons}/owner").text == ""
        listed = etree.fromstring(bob.get("/async").content)
        assert listed.findall("uws:jobref", NS) == []
        assert etree.fromstring(anon.get("/async").content).findall("uws:jobref", NS) == []
        assert phase_of(job_doc(alice, mine)) == "PENDING"


def test_delete_and_action_delete_redirect_to_the_list(start_server):
    server = make_server(start_server)
    with client(server, "alice") as c:
        a, b = create(c, FAST), create(c, SLOW, PHASE="RUN")
        r = c.delete(f"/async/{a}")
        assert r.status_code == 303 and r.headers["location"] == f"{server.tap}/async"
        r = c.post(f"/async/{b}", data={"action": "delete"})
        assert r.status_code == 303 and r.headers["location"] == f"{server.tap}/async"
        assert c.get(f"/async/{a}").status_code == 404
        assert c.get(f"/async/{b}").status_code == 404
        assert not (server.platform.settings.jobs_dir / b).exists()
        # Its query was cancelled: the worker is free within moments, not seconds.
        deadline = time.monotonic() + 1.5
        while server.platform.jobs.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.platform.jobs.running() == {}


def test_job_list_filters_phase_after_last(start_server):
    server = make_server(start_server)
    with client(server, "alice") as c:
        first = create(c, FAST)
        time.sleep(0.05)
        done = create(c, FAST, PHASE="RUN")
        wait_final(c, done)
        time.sleep(0.05)
        last = create(c, FAST)

        def ids(**params: Any) -> list[str]:
            doc = etree.fromstring(c.get("/async", params=params).content)
            return [r.get("id") for r in doc.findall("uws:jobref", NS)]

        assert ids() == [first, done, last]
        assert ids(PHASE="PENDING") == [first, last]
        assert ids(phase="COMPLETED") == [done]
        assert c.get("/async?PHASE=PENDING&PHASE=COMPLETED").text.count("<uws:jobref") == 3
        doc = etree.fromstring(c.get(f"/async/{done}").content)
        created = doc.findtext("uws:creationTime", namespaces=NS)
        assert ids(AFTER=created) == [last]
        assert ids(LAST="2") == [last, done]
        assert c.get("/async", params={"LAST": "-1"}).status_code == 400
        assert c.get("/async", params={"PHASE": "SLEEPING"}).status_code == 400


def test_queue_limits_workers_and_per_user_cap(start_server):
    server = make_server(start_server, users=("alice", "bob"), workers=2, max_jobs_per_user=1)
    with client(server, "alice") as alice, client(server, "bob") as bob:
        a1 = create(alice, SLOW, PHASE="RUN")
        a2 = create(alice, FAST, PHASE="RUN")
        b1 = create(bob, FAST, PHASE="RUN")
        # bob's job overtakes alice's second one: alice is at her cap of one.
        assert phase_of(wait_final(bob, b1, timeout=20)) == "COMPLETED"
        assert phase_of(job_doc(alice, a1)) == "EXECUTING"
        assert phase_of(job_doc(alice, a2)) == "QUEUED"
        alice.post(f"/async/{a1}/phase", data={"PHASE": "ABORT"})
        assert phase_of(wait_final(alice, a2)) == "COMPLETED"


def test_locations_use_the_public_base_url(start_server):
    server = make_server(start_server, base_url="https://tap.example.org/survey")
    with client(server, "alice") as c:
        r = c.post("/async", data={"LANG": "ADQL", "QUERY": FAST, "PHASE": "RUN"},
                   headers={"Host": "evil.example.com"})
        assert r.status_code == 303
        job_id = r.headers["location"].rsplit("/", 1)[1]
        assert r.headers["location"] == f"https://tap.example.org/survey/tap/async/{job_id}"
        doc = wait_final(c, job_id)
        href = doc.find("uws:results/uws:result", NS).get(f"{{{NS['xlink']}}}href")
        assert href == f"https://tap.example.org/survey/tap/async/{job_id}/results/result"


def test_error_after_the_first_rows_still_fails_the_job(start_server):
    # Row 999,999 of a million fails to convert: the VOTable writer has already written
    # rows and records the error in the document; the job must still end in ERROR.
    server = make_server(start_server, users=())
    query = ("SELECT CAST(CASE WHEN a.id * 1000 + b.id = 999999 THEN 'x' ELSE '1' END"
             " AS INTEGER) AS v, b.id FROM t.nums AS a, t.nums AS b")
    with client(server) as c:
        job_id = create(c, query, MAXREC="2000000", PHASE="RUN")
        doc = wait_final(c, job_id)
        assert phase_of(doc) == "ERROR"
        assert "convert" in doc.findtext("uws:errorSummary/uws:message", namespaces=NS)
        assert c.get(f"/async/{job_id}/results/result").status_code == 404
        assert not list((server.platform.settings.jobs_dir / job_id).glob("*result*"))
