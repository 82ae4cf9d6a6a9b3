"""The JSON bodies of /api (table names, descriptions, share lists) were read whole into
memory whatever their size: one logged-in user could make the server hold hundreds of
MB per request (PATCH /api/usertables/x with a 200 MiB body). They are refused (413)
past 1 MiB now, as they arrive, declared or not; ordinary bodies still work."""

from __future__ import annotations

import threading
import time

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from accounts import PASSWORD


def _rss_mib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


def test_a_huge_json_body_is_refused_as_it_arrives(start_server, tmp_path):
    server = start_server()
    server.platform.authenticator.accounts.add_user("alice", PASSWORD)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)

    def body():  # 100 MiB, chunked (no Content-Length)
        yield b'{"description": "'
        chunk = b"a" * (1 << 20)
        for _ in range(100):
            yield chunk
        yield b'"}'

    peak, stop = [0], threading.Event()

    def watch() -> None:  # (the server runs in this process)
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.02)

    with httpx.Client(base_url=server.url, auth=("alice", PASSWORD), timeout=120,
                      headers={"X-Taphouse": "tests"}) as c:
        r = c.put("/api/usertables/t?format=parquet", content=path.read_bytes())
        assert r.status_code in (200, 201), r.text
        r = c.patch("/api/usertables/t", json={"description": "three rows"})
        assert r.status_code == 200 and r.json()["description"] == "three rows", r.text
        before = _rss_mib()
        th = threading.Thread(target=watch)
        th.start()
        try:
            try:
                r = c.patch("/api/usertables/t", content=body(),
                            headers={"content-type": "application/json"})
                status = r.status_code
            except httpx.HTTPError:  # the server may close before the body is all sent
                status = 413
            declared = c.patch("/api/usertables/t", content=b" " * (2 << 20),
                               headers={"content-type": "application/json"})
        finally:
            stop.set()
            th.join()
        assert status == 413
        assert declared.status_code == 413, declared.text
        assert peak[0] - before < 60, (before, peak[0])
        assert c.get("/api/usertables/t").json()["description"] == "three rows"
