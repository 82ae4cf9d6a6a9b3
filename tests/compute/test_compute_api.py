"""/api/compute and /api/jobs over real HTTP: submission as JSON (curl) and multipart,
outputs, errors, abort, owners, both job kinds, and the job token's limits."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from compute_helpers import login

from accounts import PASSWORD, new_user
from taphouse.client import ComputeError

pytestmark = pytest.mark.slow


def _token(server, name: str) -> dict[str, str]:
    # A login runs argon2 behind a concurrency cap: on a loaded machine it takes longer
    # than httpx's default 5 s (a landing failed on that at load 12 on 2 cores).
    r = httpx.post(server.url + "/auth/token", data={"username": name, "password": PASSWORD},
                   timeout=60)
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def _wait(server, headers, job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while True:
        r = httpx.get(f"{server.url}/api/compute/{job_id}", params={"wait": 20},
                      headers=headers, timeout=40)
        assert r.status_code == 200, r.text
        info = r.json()
        if info["phase"] not in ("PENDING", "QUEUED", "EXECUTING"):
            return info
        assert time.monotonic() < deadline


def test_submit_as_json_like_curl(compute_server):
    name = new_user(compute_server)
    h = _token(compute_server, name)
    body = {"script": "import sys, taphouse.client as c\nprint('args', c.job_args())\n"
                      "open('result.txt', 'w').write(open('in.txt').read().upper())",
            "args": [1, "two"], "files": {"in.txt": base64.b64encode(b"hello").decode()}}
    r = httpx.post(compute_server.url + "/api/compute", json=body, headers=h, timeout=60)
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(r.json()["id"])
    info = _wait(compute_server, h, r.json()["id"])
    assert info["phase"] == "COMPLETED" and info["exit_status"] == 0
    assert [o["name"] for o in info["outputs"]] == ["result.txt"]
    out = httpx.get(info["outputs"][0]["url"], headers=h)
    assert out.content == b"HELLO"
    assert httpx.get(info["stdout_url"], headers=h).text == "args [1, 'two']\n"


def test_run_a_function_with_files_and_outputs(user_client, tmp_path):
    def analyse(scale, name):
        import numpy as np
        values = np.loadtxt("numbers.csv", delimiter=",")
        np.savetxt("scaled.csv", values * scale, delimiter=",")
        print("mean", values.mean())
        return {"name": name, "n": int(values.size)}

    src = tmp_path / "numbers.csv"
    src.write_text("1,2,3\n4,5,6\n")
    result = user_client.run(analyse, 10, "demo", files={"numbers.csv": src})
    assert result.exit_status == 0
    assert result.value == {"name": "demo", "n": 6}
    assert result.stdout == "mean 3.5\n"
    assert set(result.outputs) == {"scaled.csv"}
    assert result.output("scaled.csv").split(b"\n")[0].startswith(b"1.0")
    saved = result.save_outputs(tmp_path / "out")
    assert saved[0].read_bytes() == result.output("scaled.csv")


def test_non_zero_exit_is_error_with_status_and_stderr_tail(user_client):
    with pytest.raises(ComputeError) as err:
        user_client.run("import sys\nprint('partial')\nsys.stderr.write('bad input\\n')\n"
                        "sys.exit(3)")
    res = err.value.result
    assert res.phase == "ERROR" and res.exit_status == 3
    assert "exit status 3" in res.error and "bad input" in res.error
    assert res.stdout == "partial\n"


def test_notebook_runs_its_code_cells(user_client, tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": ["# title"]},
                    {"cell_type": "code", "source": ["%matplotlib inline\n", "x = 6 * 7"]},
                    {"cell_type": "code", "source": "print('answer', x)"}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "analysis.ipynb"
    path.write_text(json.dumps(nb))
    assert user_client.run(path).stdout == "answer 42\n"


def test_abort_a_running_job(compute_server, user_client):
    job = user_client.run("import time\nprint('up', flush=True)\ntime.sleep(300)", wait=False)
    deadline = time.monotonic() + 60
    while "up" not in job.stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    t0 = time.monotonic()
    assert job.abort()["phase"] == "ABORTED"
    info = job.wait(30)
    assert info["phase"] == "ABORTED"
    # The sandbox is gone, not just the record.
    while compute_server.platform.jobs.running("compute"):
        assert time.monotonic() - t0 < 20
        time.sleep(0.1)


def test_jobs_are_owner_only(compute_server, user_client):
    result = user_client.run("print('mine')")
    other = _token(compute_server, new_user(compute_server))
    base = f"{compute_server.url}/api/compute/{result.job_id}"
    for url in (base, base + "/stdout", f"{compute_server.url}/api/jobs/{result.job_id}"):
        assert httpx.get(url, headers=other).status_code == 404
    assert httpx.post(base + "/abort", headers=other).status_code == 404
    assert httpx.delete(base, headers=other).status_code == 404
    assert httpx.get(base).status_code == 401  # anonymous


def test_both_kinds_in_api_jobs_and_tap_lists_only_queries(compute_server, user_client):
    user_client.run("print(1)")
    user_client.query("SELECT TOP 1 ra FROM gaia.dr3_bright")
    kinds = sorted(j["kind"] for j in user_client.list_jobs())
    assert kinds == ["compute", "tap"]
    assert [j["kind"] for j in user_client.list_jobs(kind="compute")] == ["compute"]
    assert [j.phase for j in user_client.jobs()] == ["COMPLETED"]  # TAP's UWS list
    compute_id = user_client.list_jobs(kind="compute")[0]["id"]
    h = {"Authorization": "Bearer " + user_client.auth.token}
    assert httpx.get(f"{compute_server.url}/tap/async/{compute_id}",
                     headers=h).status_code == 404


def test_bad_submissions_are_clear_errors(compute_server):
    h = _token(compute_server, new_user(compute_server))
    url = compute_server.url + "/api/compute"
    for body, words in [({}, "script"), ({"script": "1", "args": {"a": 1}}, "JSON array"),
                        ({"script": "1", "timeout": -5}, "timeout"),
                        ({"script": "1", "memory": 10}, "memory"),
                        ({"script": "1", "files": {"../x": "AA=="}}, "plain name"),
                        ({"script": "1", "bogus": 1}, "unknown")]:
        r = httpx.post(url, json=body, headers=h)
        assert r.status_code == 400, (body, r.text)
        assert words in r.json()["error"]
    assert httpx.post(url, content=b"not json", headers=h).status_code == 400
    assert httpx.post(url, json={"script": "print(1)"}).status_code == 401


def test_job_token_is_for_the_sandbox_only(compute_server, user_client):
    script = r'''
import json, os, requests, taphouse
c = taphouse.connect()
token = os.environ["TAPHOUSE_TOKEN"]
out = {"whoami": c.whoami()["username"], "method": c.whoami()["method"]}
s = c.session
def status(method, path, **kw):
    return s.request(method, os.environ["TAPHOUSE_URL"] + path, **kw).status_code
out["create_token"] = status("POST", "/auth/tokens", json={"name": "x"})
out["password"] = status("POST", "/auth/password",
                         json={"current_password": "x", "new_password": "y" * 12})
out["admin"] = status("GET", "/api/admin/users")
out["submit_compute"] = status("POST", "/api/compute", json={"script": "print(1)"})
out["revoke_tokens"] = status("DELETE", "/auth/tokens/1")
out["url_upload"] = status("POST", "/tap/sync", data={
    "LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": "t,http://example.org/t.xml"})
# An async job runs later as its owner: the URL is refused when the job is created.
out["url_upload_async"] = status("POST", "/tap/async", data={
    "LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": "t,https://example.org/t"})
plain = requests.Session()
import taphouse.client.unixsocket as u
u.use_unix_socket(plain, os.environ["TAPHOUSE_SOCKET"])
out["socket_anonymous"] = plain.get(os.environ["TAPHOUSE_URL"] + "/api/usertables").status_code
print(json.dumps(out))
print(token)
'''
    result = user_client.run(script)
    lines = result.stdout.strip().splitlines()
    out, token = json.loads(lines[0]), lines[1]
    assert out["whoami"] == user_client.username and out["method"] == "sandbox"
    for action in ("create_token", "password", "admin", "submit_compute", "revoke_tokens"):
        assert out[action] == 403, (action, out)
    # Refused as a sandbox's request, not because the fetch failed (403, not 400).
    assert out["url_upload"] == 403 and out["url_upload_async"] == 403, out
    assert out["socket_anonymous"] == 401
    # Outside: the job token is refused on TCP, and it ended with the job anyway.
    r = httpx.get(compute_server.url + "/auth/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    platform = compute_server.platform
    with pytest.raises(Exception, match="ended"):
        platform.authenticator.tokens.validate(token)


def test_session_tokens_are_refused_on_the_socket(compute_server, user_client):
    """A user's own session token (or any non-job token) cannot use the socket."""
    import taphouse.client.unixsocket as u

    session = httpx  # noqa: F841  (only requests speaks to the socket here)
    import requests

    s = requests.Session()
    u.use_unix_socket(s, str(compute_server.platform.compute.socket_path))
    r = s.get(compute_server.url + "/auth/whoami",
              headers={"Authorization": "Bearer " + user_client.auth.token})
    assert r.status_code == 401
    assert "job's token" in r.json()["error"]


def test_per_user_limit_and_separate_pool(compute_server):
    """Two compute jobs per user at a time (test setting); a third waits QUEUED, and the
    TAP pool is untouched meanwhile."""
    with login(compute_server, new_user(compute_server)) as c:
        jobs = [c.run("import time; time.sleep(12)", wait=False) for _ in range(3)]
        deadline = time.monotonic() + 30
        while sorted(j.info()["phase"] for j in jobs)[:2] != ["EXECUTING", "EXECUTING"]:
            assert time.monotonic() < deadline, [j.info()["phase"] for j in jobs]
            time.sleep(0.2)
        phases = sorted(j.info()["phase"] for j in jobs)
        assert phases == ["EXECUTING", "EXECUTING", "QUEUED"]
        assert compute_server.platform.jobs.running("tap") == {}
        t = c.query("SELECT TOP 1 ra FROM gaia.dr3_bright")  # a query still runs at once
        assert len(t) == 1
        for j in jobs:
            assert j.wait(120)["phase"] == "COMPLETED"
