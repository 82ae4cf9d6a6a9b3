"""The JSON bodies of /api/admin/remotes and /api/remotes were read whole into memory
whatever their size (an operator's typo, or any logged-in user where users may register
remotes: 100 MiB held per request). They are refused (413) past 1 MiB as they arrive,
declared or not, like the other /api bodies; ordinary bodies still work."""

from __future__ import annotations

import httpx
import pytest
from remote_helpers import api, registering_platform

from bodies import chunked_body, peak_rss_growth


@pytest.mark.parametrize(("user", "path"), [("root", "/api/admin/remotes"),
                                            ("alice", "/api/remotes"),
                                            ("root", "/api/admin/remotes/far/credentials"),
                                            ("alice", "/api/remotes/far/credentials")])
def test_a_huge_remotes_body_is_refused_as_it_arrives(start_server, user: str,  # noqa: ANN001
                                                      path: str) -> None:
    server = registering_platform(start_server)
    with api(server, user) as c, peak_rss_growth() as growth:
        try:
            r = c.post(path, content=chunked_body(b'{"name": "', 100, b'", "url": "x"}'),
                       headers={"content-type": "application/json"})
            status, text = r.status_code, r.text
        except httpx.HTTPError:  # the server may close before the body is all sent
            status, text = 413, "closed"
        declared = c.post(path, content=b" " * (2 << 20),
                          headers={"content-type": "application/json"})
    assert status == 413, (status, text[:300])
    assert declared.status_code == 413 and "bytes" in declared.json()["error"], declared.text
    assert growth[0] < 60, growth


def test_ordinary_remotes_bodies_still_work(start_server) -> None:  # noqa: ANN001
    server = registering_platform(start_server)
    with api(server, "root") as admin:
        r = admin.post("/api/admin/remotes", json={"name": "tap_x", "url": "http://e.org"})
        assert r.status_code == 400 and "reserved" in r.json()["error"], r.text
        r = admin.post("/api/admin/remotes", content=b"[1]",
                       headers={"content-type": "application/json"})
        assert r.status_code == 400 and "JSON object" in r.json()["error"], r.text
