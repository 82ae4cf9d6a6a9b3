"""Async fairness and budgets: another user's (or address's) short job starts within 2 s
however many long jobs one owner queued; EXECUTIONDURATION at creation is honoured;
jobs and job files kept per owner (anonymous: per address) are capped."""

from __future__ import annotations

import time

import httpx
import pytest
from admission_helpers import SLOW, add_nums, client_from
from lxml import etree

from accounts import PASSWORD

UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
FAST = "SELECT TOP 3 id FROM t.nums ORDER BY id"


def _server(start_server, **settings):
    server = start_server(**settings)
    add_nums(server.platform)
    for user in ("alice", "bob"):
        server.platform.authenticator.accounts.add_user(user, PASSWORD)
    return server


def _create(c: httpx.Client, query: str, **params: str) -> str:
    r = c.post("/async", data={"LANG": "ADQL", "QUERY": query, **params})
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[1]


def _doc(c: httpx.Client, job_id: str, **params: str) -> etree._Element:
    return etree.fromstring(c.get(f"/async/{job_id}", params=params).content)


def _phase(doc: etree._Element) -> str:
    return doc.findtext("uws:phase", namespaces=UWS)


def _wait_running(c: httpx.Client, job_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _phase(_doc(c, job_id)) == "EXECUTING":
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not start")


def _starts_within(c: httpx.Client, job_id: str, seconds: float) -> float:
    """Seconds from PHASE=RUN until the job left the queue (asserted <= ``seconds``)."""
    t0 = time.monotonic()
    c.post(f"/async/{job_id}/phase", data={"PHASE": "RUN"})
    while time.monotonic() - t0 < seconds:
        if _phase(_doc(c, job_id)) in ("EXECUTING", "COMPLETED"):
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {_phase(_doc(c, job_id))} after {seconds} s")


def test_a_second_users_job_starts_within_2_s_behind_many_long_jobs(start_server):
    # The settings of the first release: 2 workers, 2 jobs per user. One owner may now
    # hold one worker less than there are.
    server = _server(start_server, workers=2, max_jobs_per_user=2)
    with httpx.Client(base_url=server.tap, auth=("alice", PASSWORD), timeout=60) as alice, \
            httpx.Client(base_url=server.tap, auth=("bob", PASSWORD), timeout=60) as bob:
        slow = [_create(alice, SLOW, PHASE="RUN") for _ in range(5)]
        _wait_running(alice, slow[0])
        quick = _create(bob, FAST)
        _starts_within(bob, quick, 2.0)
        assert _phase(_doc(bob, quick, WAIT="20")) in ("EXECUTING", "COMPLETED")
        for job_id in slow:
            alice.delete(f"/async/{job_id}")


def test_anonymous_callers_are_budgeted_per_address_and_together(start_server):
    server = _server(start_server, workers=4, anonymous_job_share=0.5)
    with client_from("127.0.0.2", server.tap) as a, client_from("127.0.0.3", server.tap) as b, \
            client_from("127.0.0.4", server.tap) as c, \
            httpx.Client(base_url=server.tap, auth=("alice", PASSWORD), timeout=60) as alice:
        slow_a = [_create(a, SLOW, PHASE="RUN") for _ in range(3)]
        _wait_running(a, slow_a[0])
        # Another address is not one "anonymous owner" with the first.
        slow_b = _create(b, SLOW)
        _starts_within(b, slow_b, 2.0)
        assert _phase(_doc(a, slow_a[1])) == "QUEUED"  # one running job per address
        # Anonymous jobs now hold their share (2 of 4 workers): a third address waits,
        # a logged-in user does not.
        quick_c = _create(c, FAST, PHASE="RUN")
        quick_alice = _create(alice, FAST)
        _starts_within(alice, quick_alice, 2.0)
        time.sleep(0.5)
        assert _phase(_doc(c, quick_c)) == "QUEUED"
        running = server.platform.jobs.running()
        assert running.get("addr:127.0.0.2") == 1 and running.get("addr:127.0.0.3") == 1
        for client, job_ids in ((a, slow_a), (b, [slow_b]), (c, [quick_c])):
            for job_id in job_ids:
                client.delete(f"/async/{job_id}")


def test_executionduration_given_at_creation_is_honoured_and_shown(start_server):
    server = _server(start_server, exec_duration_limit=600)
    with httpx.Client(base_url=server.tap, timeout=60) as c:
        job_id = _create(c, SLOW, EXECUTIONDURATION="1", PHASE="RUN")
        doc = _doc(c, job_id)
        assert doc.findtext("uws:executionDuration", namespaces=UWS) == "1"
        assert c.get(f"/async/{job_id}/executionduration").text == "1"
        deadline = time.monotonic() + 30
        while _phase(doc) != "ERROR" and time.monotonic() < deadline:
            doc = _doc(c, job_id, WAIT="10")
        assert _phase(doc) == "ERROR"
        assert "execution duration limit of 1 s" in doc.findtext(
            "uws:errorSummary/uws:message", namespaces=UWS)
        # More than the service allows (or 0, "no limit"): the service's maximum.
        for asked in ("999999", "0"):
            job_id = _create(c, FAST, EXECUTIONDURATION=asked)
            assert _doc(c, job_id).findtext("uws:executionDuration",
                                            namespaces=UWS) == "600"
        r = c.post("/async", data={"LANG": "ADQL", "QUERY": FAST,
                                   "EXECUTIONDURATION": "soon"})
        assert r.status_code == 400 and b"EXECUTIONDURATION" in r.content


def test_jobs_kept_are_capped_per_user_and_per_anonymous_address(start_server):
    server = _server(start_server, jobs_max_kept=2, jobs_max_kept_anonymous=3)
    with client_from("127.0.0.2", server.tap) as a, client_from("127.0.0.3", server.tap) as b, \
            httpx.Client(base_url=server.tap, auth=("alice", PASSWORD), timeout=60) as alice:
        kept = [_create(a, FAST) for _ in range(3)]
        r = a.post("/async", data={"LANG": "ADQL", "QUERY": FAST})
        assert r.status_code == 403 and b"keep 3 jobs" in r.content
        assert b"QUERY_STATUS" in r.content  # a DALI error document
        _create(b, FAST)  # another address has its own count
        first = _create(alice, FAST)
        _create(alice, FAST)
        assert alice.post("/async", data={"LANG": "ADQL", "QUERY": FAST}).status_code == 403
        alice.delete(f"/async/{first}")
        _create(alice, FAST)
        a.delete(f"/async/{kept[0]}")
        _create(a, FAST)


def test_job_files_count_against_their_owner(start_server):
    server = _server(start_server, job_files_max_bytes_anonymous=60_000)
    table = "id\n" + "\n".join(str(i) for i in range(20_000)) + "\n"  # ~109 kB
    with client_from("127.0.0.2", server.tap) as a:
        r = a.post("/async", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                   "UPLOAD": "t,param:t"},
                   files={"t": ("t.csv", table, "text/csv")})
        assert r.status_code == 403 and b"may keep at most 60000" in r.content
        assert not list((server.data_dir / "jobs").glob("*/upload-*"))
        # A result counts too: it may take what is left of the budget, and says so.
        job_id = _create(a, "SELECT a.id FROM t.nums AS a, t.nums AS b WHERE b.id < 20",
                         MAXREC="100000", PHASE="RUN")
        doc = _doc(a, job_id, WAIT="30")
        while _phase(doc) in ("QUEUED", "EXECUTING"):
            doc = _doc(a, job_id, WAIT="30")
        assert _phase(doc) == "COMPLETED"
        result = a.get(f"/async/{job_id}/results/result")
        assert len(result.content) <= 60_000 and b'value="OVERFLOW"' in result.content
        job = server.platform.jobs.store.get(job_id)
        assert job.files_bytes == len(result.content)
        r = a.post("/async", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                   "UPLOAD": "t,param:t"},
                   files={"t": ("t.csv", "id\n1\n" * 4000, "text/csv")})
        assert r.status_code == 403


@pytest.mark.parametrize("endpoint", ["/tap/sync", "/tap/async"])
def test_upload_over_the_request_limit_is_refused(start_server, endpoint):
    server = _server(start_server, upload_max_bytes=50_000)
    big = "id\n" + "1\n" * 60_000
    r = httpx.post(server.url + endpoint, data={"LANG": "ADQL", "UPLOAD": "t,param:t",
                                                "QUERY": "SELECT COUNT(*) FROM TAP_UPLOAD.t"},
                   files={"t": ("t.csv", big, "text/csv")}, timeout=60)
    assert r.status_code == 413 and b"50000" in r.content and b"QUERY_STATUS" in r.content
    assert not list((server.data_dir / "tmp").rglob("upload-*"))


def test_uploads_stream_to_the_data_dir_and_count_per_caller_in_flight(start_server):
    import socket

    from admission_helpers import wait_for

    server = _server(start_server, upload_max_bytes=200_000,
                     upload_max_bytes_per_caller=250_000)
    table = ("id\n" + "\n".join(str(i) for i in range(30_000)) + "\n").encode()  # ~169 kB
    boundary = "----admission-test"
    fields = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                     f"{v}\r\n" for k, v in {"LANG": "ADQL", "UPLOAD": "t,param:t",
                                             "RESPONSEFORMAT": "csv",
                                             "QUERY": "SELECT COUNT(*) AS n FROM"
                                                      " TAP_UPLOAD.t"}.items()).encode()
    body = (fields + f'--{boundary}\r\nContent-Disposition: form-data; name="t";'
            f' filename="t.csv"\r\nContent-Type: text/csv\r\n\r\n'.encode() + table
            + f"\r\n--{boundary}--\r\n".encode())
    head = (f"POST /tap/sync HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data;"
            f" boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    try:
        sock.sendall(head + body[:130_000])
        spool = server.data_dir / "tmp"
        # The part is on disk under the data directory's tmp/ as it arrives.
        wait_for(lambda: any(p.stat().st_size > 100_000 for p in spool.rglob("upload-*")),
                 what="the upload spooled to tmp/")
        # The same caller's second upload would take it over its bytes in flight.
        r = httpx.post(server.tap + "/sync", data={"LANG": "ADQL", "UPLOAD": "t,param:t",
                                                   "QUERY": "SELECT COUNT(*) FROM"
                                                            " TAP_UPLOAD.t"},
                       files={"t": ("t.csv", table, "text/csv")}, timeout=60)
        assert r.status_code == 413 and b"in flight" in r.content
        with client_from("127.0.0.2", server.tap) as other:
            r = other.post("/sync", data={"LANG": "ADQL", "UPLOAD": "t,param:t",
                                          "RESPONSEFORMAT": "csv",
                                          "QUERY": "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t"},
                           files={"t": ("t.csv", table, "text/csv")})
            assert r.status_code == 200 and r.text.split() == ["n", "30000"]
        sock.sendall(body[130_000:])
        sock.settimeout(30)
        answer = b""
        while not answer.endswith(b"30000\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"n\r\n30000\r\n")
    finally:
        sock.close()
    wait_for(lambda: not list(spool.rglob("upload-*")), what="tmp/ emptied")
    assert server.platform.upload_bytes.held("addr:127.0.0.1") == 0


def test_user_table_upload_over_the_limit_is_refused_and_leaves_nothing(start_server):
    server = _server(start_server, upload_max_bytes=50_000)
    with httpx.Client(base_url=server.url, auth=("alice", PASSWORD), timeout=60,
                      headers={"X-Taphouse": "1"}) as alice:  # (Basic on /api: see api.md)
        big = "id\n" + "1\n" * 60_000
        r = alice.put("/api/usertables/big?format=csv", content=big)
        assert r.status_code == 413
        # Sent without a length (chunked): refused as it goes over.
        r = alice.put("/api/usertables/big?format=csv",
                      content=(big[i:i + 10_000].encode() for i in range(0, len(big), 10_000)))
        assert r.status_code == 413
        r = alice.put("/api/usertables/small?format=csv", content="id\n1\n2\n")
        assert r.status_code == 201 and r.json()["nrows"] == 2
    assert not list((server.data_dir / "tmp").rglob("upload-*"))
    assert server.platform.upload_bytes.held() == 0
