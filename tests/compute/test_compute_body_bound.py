"""A compute submission's size was checked only from its declared Content-Length: a
chunked body (no length) was read whole (JSON) or spooled without bound and then read
into memory part by part (form files), so a user could submit past the limit at will.
Such a body is counted as it arrives now and refused (413) once past the limit."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from accounts import PASSWORD, new_user

pytestmark = pytest.mark.slow


def test_a_chunked_submission_past_the_limit_is_refused(compute_server):
    server = compute_server
    name = new_user(server)
    r = httpx.post(server.url + "/auth/token", data={"username": name, "password": PASSWORD},
                   timeout=60)
    headers = {"Authorization": "Bearer " + r.json()["access_token"]}
    limit = server.platform.settings.upload_max_bytes
    boundary = "b0undary4ttack"

    def body():  # a script and one input file of limit + 1 MiB, with no Content-Length
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"script\"\r\n\r\n"
               "print(1)\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"big.bin\";"
               " filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
               ).encode()
        chunk = b"\0" * (1 << 20)
        for _ in range(limit // len(chunk) + 1):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        r = httpx.post(server.url + "/api/compute", content=body(), timeout=120,
                       headers={**headers, "X-Taphouse": "tests", "content-type":
                                f"multipart/form-data; boundary={boundary}"})
        status, text = r.status_code, r.text
    except httpx.HTTPError:  # the server may close before the body is all sent
        status, text = 413, "closed"
    assert status == 413, (status, text[:300])
    jobs = httpx.get(server.url + "/api/compute", headers=headers, timeout=60).json()
    assert not (jobs.get("jobs") if isinstance(jobs, dict) else jobs), jobs


def _token_headers(server, name):
    r = httpx.post(server.url + "/auth/token", data={"username": name, "password": PASSWORD},
                   timeout=60)
    return {"Authorization": "Bearer " + r.json()["access_token"], "X-Taphouse": "tests"}


def _spooled(server):
    return {p: p.stat().st_size for p in server.platform.scratch.path.glob("upload-*")}


def test_a_submission_is_spooled_to_disk_and_counted_in_the_upload_budget(compute_server):
    """A compute submission's input files were read whole into the server's memory
    (python-multipart's spooled files, then ``await value.read()``; JSON by
    ``request.body()``) and did not count in the caller's upload bytes in flight. Now
    its file parts go to tmp/ as they arrive, held in the caller's budget until the job
    took them."""
    server = compute_server
    headers = _token_headers(server, new_user(server))
    budget = server.platform.upload_bytes
    boundary = "b0undary5pool"
    sent, go_on = threading.Event(), threading.Event()
    mib = 1 << 20

    def body():  # 8 MiB of an input file, then a pause until the test looked
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"script\";"
               " filename=\"script.py\"\r\n\r\nimport os\n"
               "print(os.path.getsize('in.bin'))\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"in.bin\";"
               " filename=\"in.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
               ).encode()
        for _ in range(8):
            yield b"\1" * mib
        sent.set()
        go_on.wait(120)
        yield b"\1" * mib
        yield f"\r\n--{boundary}--\r\n".encode()

    result = {}

    def post():
        result["r"] = httpx.post(
            server.url + "/api/compute", content=body(), timeout=120,
            headers={**headers, "content-type": f"multipart/form-data; boundary={boundary}"})

    held_before = budget.held()
    thread = threading.Thread(target=post)
    thread.start()
    try:
        assert sent.wait(60)
        deadline = time.monotonic() + 30
        while budget.held() - held_before < 8 * mib or max(_spooled(server).values(),
                                                            default=0) < 8 * mib:
            assert time.monotonic() < deadline, (budget.held(), _spooled(server))
            time.sleep(0.05)
    finally:
        go_on.set()
        thread.join(120)
    r = result["r"]
    assert r.status_code == 201, r.text[:300]
    assert budget.held() == held_before  # given back once the job took the file
    assert not _spooled(server)
    job = httpx.get(r.json()["url"] + "?wait=60", headers=headers, timeout=90).json()
    out = httpx.get(job["stdout_url"], headers=headers, timeout=60).text
    assert job["phase"] == "COMPLETED", job
    assert out.strip() == str(9 * mib)


@pytest.mark.parametrize("form", ["json", "multipart"])
def test_a_submission_past_the_callers_upload_budget_is_refused_as_it_arrives(
        compute_server, form):
    """The per-caller budget of upload bytes in flight (TAP uploads, table uploads)
    bounds compute submissions too: a chunked one past it is refused with 413 before
    the rest is read, and nothing stays in tmp/ or in the budget."""
    server = compute_server
    headers = _token_headers(server, new_user(server))
    budget = server.platform.upload_bytes
    mib = 1 << 20
    assert server.platform.settings.upload_max_bytes > 40 * mib

    def body():
        if form == "json":
            yield b'{"script": "print(1)", "files": {"big.bin": "'
            for i in range(40):
                yield b"AAAA" * (mib // 4)
            yield b'"}}'
        else:
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"script\"\r\n\r\n"
                   "print(1)\r\n"
                   f"--{boundary}\r\nContent-Disposition: form-data; name=\"big.bin\";"
                   " filename=\"big.bin\"\r\n\r\n").encode()
            for i in range(40):
                yield b"\0" * mib
            yield f"\r\n--{boundary}--\r\n".encode()

    boundary = "b0undaryBudget"
    ctype = "application/json" if form == "json" else f"multipart/form-data; boundary={boundary}"
    saved = budget.per_key
    budget.per_key = 16 * mib
    try:
        try:
            r = httpx.post(server.url + "/api/compute", content=body(), timeout=120,
                           headers={**headers, "content-type": ctype})
            status, text = r.status_code, r.text
        except httpx.HTTPError:  # the server may close before the body is all sent
            status, text = 413, "closed"
    finally:
        budget.per_key = saved
    assert status == 413, (status, text[:300])
    assert "at most" in text or text == "closed", text[:300]
    assert budget.held() == 0
    assert not _spooled(server)
    jobs = httpx.get(server.url + "/api/compute", headers=headers, timeout=60).json()
    assert not jobs, jobs
