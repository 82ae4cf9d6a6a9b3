"""The JSON bodies of /api (table names, descriptions, share lists) were read whole into
memory whatever their size: one logged-in user could make the server hold hundreds of
MB per request (PATCH /api/usertables/x with a 200 MiB body). They are refused (413)
past 1 MiB now, as they arrive, declared or not; ordinary bodies still work."""

from __future__ import annotations

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from accounts import PASSWORD
from bodies import chunked_body, peak_rss_growth


def test_a_huge_json_body_is_refused_as_it_arrives(start_server, tmp_path):
    server = start_server()
    server.platform.authenticator.accounts.add_user("alice", PASSWORD)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)

    with httpx.Client(base_url=server.url, auth=("alice", PASSWORD), timeout=120,
                      headers={"X-Taphouse": "tests"}) as c:
        r = c.put("/api/usertables/t?format=parquet", content=path.read_bytes())
        assert r.status_code in (200, 201), r.text
        r = c.patch("/api/usertables/t", json={"description": "three rows"})
        assert r.status_code == 200 and r.json()["description"] == "three rows", r.text
        with peak_rss_growth() as growth:
            try:
                r = c.patch("/api/usertables/t", content=chunked_body(
                    b'{"description": "', 100, b'"}'),
                    headers={"content-type": "application/json"})
                status = r.status_code
            except httpx.HTTPError:  # the server may close before the body is all sent
                status = 413
            declared = c.patch("/api/usertables/t", content=b" " * (2 << 20),
                               headers={"content-type": "application/json"})
        assert status == 413
        assert declared.status_code == 413, declared.text
        assert growth[0] < 60, growth
        assert c.get("/api/usertables/t").json()["description"] == "three rows"
