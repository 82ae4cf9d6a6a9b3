"""Random and malformed requests to the async endpoints: never a 500 or a traceback;
errors are well-formed DALI documents; job documents stay well-formed XML."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

NAMES = ["PHASE", "WAIT", "LAST", "AFTER", "EXECUTIONDURATION", "DESTRUCTION", "QUERY",
         "LANG", "MAXREC", "RESPONSEFORMAT", "FORMAT", "UPLOAD", "ACTION", "RUNID",
         "phase", "wait", "Query", "x"]
SUFFIXES = ["", "/phase", "/executionduration", "/destruction", "/quote", "/owner", "/error",
            "/results", "/results/result", "/parameters", "/results/other"]
VALUES = st.one_of(
    st.sampled_from(["RUN", "ABORT", "run", "DELETE", "-1", "0", "1", "99999999999999999999",
                     "2030-01-01T00:00:00Z", "yesterday", "ADQL", "SELECT 1",
                     "SELECT id FROM t.nums WHERE id < 2", "t1,param:t1", ";;,",
                     "COMPLETED", "PENDING", ""]),
    st.text(max_size=30),
)


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    assert b"Traceback" not in r.content
    if r.status_code >= 300 and r.status_code != 303 and r.content:
        doc = etree.fromstring(r.content)
        status = [i for i in doc.iter("{*}INFO") if i.get("name") == "QUERY_STATUS"]
        assert status and status[0].get("value") == "ERROR", r.text[:500]
    elif r.status_code == 200 and r.headers.get("content-type", "").startswith("text/xml"):
        etree.fromstring(r.content)  # well-formed


def test_random_async_requests_never_fail_the_server(start_server):
    from test_uws import make_server  # same directory

    server = make_server(start_server, rows=50, users=())
    with httpx.Client(base_url=server.tap, timeout=60) as c:
        r = c.post("/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM t.nums"})
        job = r.headers["location"].rsplit("/", 1)[1]

        @settings(max_examples=150, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(method=st.sampled_from(["GET", "POST", "DELETE"]),
               target=st.sampled_from(["job", "new", "list", "bogus"]),
               suffix=st.sampled_from(SUFFIXES),
               params=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=4),
               as_query=st.booleans())
        def one(method, target, suffix, params, as_query):
            if target == "list":
                path = "/async"
            elif target == "new":
                path = "/async" if method == "POST" else f"/async/{job}{suffix}"
            else:
                path = f"/async/{job if target == 'job' else 'j-../x%00'}{suffix}"
            if method == "POST" and not as_query:
                r = c.post(path, data=params)
            else:
                r = c.request(method, path, params=params)
            _check(r)

        one()
