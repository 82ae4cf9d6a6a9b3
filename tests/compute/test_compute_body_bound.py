"""A compute submission's size was checked only from its declared Content-Length: a
chunked body (no length) was read whole (JSON) or spooled without bound and then read
into memory part by part (form files), so a user could submit past the limit at will.
Such a body is counted as it arrives now and refused (413) once past the limit."""

from __future__ import annotations

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
