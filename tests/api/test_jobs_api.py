"""The JSON jobs API (/api/jobs) over HTTP: newest first with the query text, phase,
times and rows; one job with WAIT and the error's line and column; delete; nobody sees
another user's jobs."""

from __future__ import annotations

import httpx
import pytest

from accounts import PASSWORD


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from servers import start_live

    s = start_live(tmp_path_factory.mktemp("jobs-api"))
    for name in ("ann", "bob"):
        s.platform.authenticator.accounts.add_user(name, PASSWORD)
    yield s
    s.stop()


def _client(server, name: str | None) -> httpx.Client:
    auth = (name, PASSWORD) if name else None
    return httpx.Client(base_url=server.url, auth=auth, timeout=60, follow_redirects=True,
                        headers={"X-Taphouse": "tests"})


def _submit(c: httpx.Client, query: str, **extra: str) -> str:
    r = c.post("/tap/async", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query,
                                   "PHASE": "RUN", **extra})
    assert r.status_code == 200, r.text
    return str(r.url).rstrip("/").rsplit("/", 1)[1]


def _done(c: httpx.Client, job_id: str) -> dict:
    r = c.get(f"/api/jobs/{job_id}", params={"wait": 30})
    assert r.status_code == 200, r.text
    return r.json()


def test_list_newest_first_with_query_phase_times_rows(server):
    with _client(server, "ann") as c:
        first = _submit(c, "SELECT TOP 3 table_name FROM tap_schema.tables")
        second = _submit(c, "SELECT TOP 2 column_name FROM tap_schema.columns",
                         RESPONSEFORMAT="json")
        done = _done(c, second)
        _done(c, first)
        assert done["phase"] == "COMPLETED"
        assert done["rows"] == 2 and done["overflow"] is False
        assert done["result"]["mime"] == "application/json"
        assert done["responseformat"] == "json"
        assert done["started"] and done["ended"] and done["created"].endswith("Z")
        assert done["elapsed"] is not None and done["elapsed"] >= 0

        listed = c.get("/api/jobs").json()
        ids = [j["id"] for j in listed]
        assert ids.index(second) < ids.index(first)  # newest first
        one = listed[ids.index(first)]
        assert one["query"] == "SELECT TOP 3 table_name FROM tap_schema.tables"
        assert one["kind"] == "tap" and one["phase"] == "COMPLETED" and one["rows"] == 3
        assert [j["id"] for j in c.get("/api/jobs", params={"last": 1}).json()] == [ids[0]]
        completed = c.get("/api/jobs", params={"phase": "completed"}).json()
        assert {first, second} <= {j["id"] for j in completed}
        assert first not in {j["id"] for j in c.get("/api/jobs", params={"phase": "ERROR"}).json()}


def test_error_has_line_and_column(server):
    with _client(server, "ann") as c:
        job_id = _submit(c, "SELECT TOP 1 table_name\nFROM tap_schema.tablez")
        job = _done(c, job_id)
        assert job["phase"] == "ERROR"
        assert "tap_schema.tablez" in job["error"]["message"]
        assert job["error"]["line"] == 2 and job["error"]["column"] >= 6
        assert job["rows"] is None and job["result"] is None


def test_other_users_and_anonymous_see_nothing(server):
    with _client(server, "ann") as ann, _client(server, "bob") as bob, \
            _client(server, None) as anon:
        job_id = _submit(ann, "SELECT TOP 1 schema_name FROM tap_schema.schemas")
        _done(ann, job_id)
        assert job_id not in {j["id"] for j in bob.get("/api/jobs").json()}
        assert bob.get(f"/api/jobs/{job_id}").status_code == 404
        assert bob.delete(f"/api/jobs/{job_id}").status_code == 404
        r = anon.get("/api/jobs")
        assert r.status_code == 401 and "WWW-Authenticate" in r.headers
        assert anon.get(f"/api/jobs/{job_id}").status_code == 404
        assert anon.delete(f"/api/jobs/{job_id}").status_code == 404
        assert ann.get(f"/api/jobs/{job_id}").status_code == 200

        # An anonymous job is reached by its id, as on /tap/async/<id>.
        anon_job = _submit(anon, "SELECT TOP 1 schema_name FROM tap_schema.schemas")
        assert _done(anon, anon_job)["phase"] == "COMPLETED"
        assert ann.get(f"/api/jobs/{anon_job}").status_code == 404
        assert anon.delete(f"/api/jobs/{anon_job}").status_code == 204


def test_delete_removes_the_job(server):
    with _client(server, "bob") as c:
        job_id = _submit(c, "SELECT TOP 1 schema_name FROM tap_schema.schemas")
        _done(c, job_id)
        assert c.delete(f"/api/jobs/{job_id}").status_code == 204
        assert c.get(f"/api/jobs/{job_id}").status_code == 404
        assert job_id not in {j["id"] for j in c.get("/api/jobs").json()}
        assert c.get(f"/tap/async/{job_id}").status_code == 404


@pytest.mark.parametrize("params", [{"last": "0"}, {"last": "x"}, {"last": "100000"},
                                    {"phase": "RUNNING"}])
def test_bad_parameters_are_400(server, params):
    with _client(server, "ann") as c:
        r = c.get("/api/jobs", params=params)
        assert r.status_code == 400
        assert r.json()["error"]


def test_bad_wait_is_400_and_unknown_job_404(server):
    with _client(server, "ann") as c:
        assert c.get("/api/jobs/jdeadbeefdeadbeef", params={"wait": "-5"}).status_code == 400
        assert c.get("/api/jobs/jdeadbeefdeadbeef").status_code == 404
        assert c.get("/api/jobs/../../etc/passwd").status_code == 404
