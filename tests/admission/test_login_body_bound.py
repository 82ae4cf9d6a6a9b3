"""Anyone may POST /auth/token, and its body was read whole into memory (then waited
whole in the login lane): a 200 MiB body took 600 MB of the server's memory and was
answered 401. Bodies of /auth are small now: a larger one is refused (413) as it
arrives, declared or not; logins in every accepted form still work."""

from __future__ import annotations

import httpx

from accounts import PASSWORD
from bodies import chunked_body, peak_rss_growth


def test_a_huge_login_body_is_refused_as_it_arrives(start_server):
    server = start_server()
    server.platform.authenticator.accounts.add_user("alice", PASSWORD)
    with peak_rss_growth() as growth, httpx.Client(base_url=server.url, timeout=120) as c:
        try:
            r = c.post("/auth/token", content=chunked_body(
                b'{"username": "alice", "password": "', 100, b'"}'),
                headers={"content-type": "application/json"})
            status, text = r.status_code, r.text
        except httpx.HTTPError:  # the server may close before the body is all sent
            status, text = 413, "closed"
        declared = c.post("/auth/token", content=b"x" * (1 << 20),
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert status == 413, (status, text)
    assert declared.status_code == 413 and "bytes" in declared.json()["error"]
    assert growth[0] < 60, growth


def test_logins_in_every_form_still_work(start_server):
    server = start_server()
    server.platform.authenticator.accounts.add_user("alice", PASSWORD)
    creds = {"username": "alice", "password": PASSWORD}
    with httpx.Client(base_url=server.url, timeout=60) as c:
        answers = [c.post("/auth/token", data=creds),
                   c.post("/auth/token", json=creds),
                   c.post("/auth/token", data=creds, files={"unused": ("f", b"x")})]
        assert [r.status_code for r in answers] == [200] * 3, [r.text for r in answers]
        bad = c.post("/auth/token", content=b"[1]",
                     headers={"content-type": "application/json"})
        assert bad.status_code == 400
