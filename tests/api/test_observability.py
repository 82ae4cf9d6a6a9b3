"""The request log (one line per request, no secrets) and the Prometheus /metrics."""

from __future__ import annotations

import logging
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from accounts import PASSWORD
from taphouse.auth.passwords import PasswordHashing


def _users(server) -> None:
    p = server.platform
    p.authenticator.hashing = PasswordHashing(time_cost=1, memory_cost=4096, parallelism=1)
    p.authenticator.accounts.add_user("ada", PASSWORD)
    p.authenticator.accounts.add_user("root", PASSWORD, is_admin=True)


def _logged(caplog, text: str) -> list[str]:
    """The access-log lines holding ``text`` (a line is written just after the response
    went out, so wait for it a little)."""
    deadline = time.monotonic() + 10
    while True:
        found = [rec.getMessage() for rec in caplog.records
                 if rec.name == "taphouse.access" and text in rec.getMessage()]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _token(url: str, name: str) -> str:
    r = httpx.post(url + "/auth/token", data={"username": name, "password": PASSWORD}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_one_line_per_request_without_secrets(start_server, caplog):
    server = start_server()
    _users(server)
    caplog.set_level(logging.INFO, logger="taphouse.access")
    token = _token(server.url, "ada")
    r = httpx.get(server.url + "/api/usertables", params={"token": "s3cr3t-in-the-url"},
                  headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200
    request_id = r.headers["x-request-id"]
    mine = _logged(caplog, f"id={request_id}")
    assert len(mine) == 1
    lines = _logged(caplog, "request id=")
    line = mine[0]
    assert "caller=ada addr=127.0.0.1 method=GET path=/api/usertables status=200" in line
    assert f"bytes={len(r.content)}" in line and "seconds=" in line
    everything = "\n".join(lines)
    assert "s3cr3t" not in everything and token not in everything and PASSWORD not in everything
    login_line = next(line for line in lines if "path=/auth/token" in line)
    assert "status=200" in login_line and "caller=ada" in login_line
    # a forged newline in the path cannot make a second line
    httpx.get(server.url + "/api/x%0Aid=forged", timeout=30)
    forged = _logged(caplog, "forged")
    assert forged and all("\n" not in m for m in forged) and "\\x0a" in forged[0]
    r = httpx.get(server.url + "/api/databases", timeout=30)
    assert "caller=- " in _logged(caplog, f"id={r.headers['x-request-id']}")[0]


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_for_administrators_and_allowed_addresses(start_server):
    server = start_server()
    _users(server)
    url = server.url + "/metrics"
    assert httpx.get(url, timeout=30).status_code == 401
    ada = _token(server.url, "ada")
    assert httpx.get(url, headers={"Authorization": f"Bearer {ada}"}, timeout=30).status_code == 403
    assert httpx.get(url, auth=("root", PASSWORD), timeout=30).status_code == 401  # tokens only
    root = _token(server.url, "root")
    for _ in range(6):  # wrong passwords until the login throttle answers 429
        httpx.post(server.url + "/auth/token", data={"username": "ada", "password": "wrong pw"},
                   timeout=60)
    httpx.post(server.url + "/tap/sync", timeout=60, data={
        "LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM TAP_SCHEMA.tables"})
    r = httpx.get(url, headers={"Authorization": f"Bearer {root}"}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fams = _families(r.text)
    for name in ("taphouse_http_requests", "taphouse_http_request_duration_seconds",
                 "taphouse_admission_refusals", "taphouse_query_duration_seconds",
                 "taphouse_jobs", "taphouse_jobs_queued", "taphouse_sync_slots_in_use",
                 "taphouse_disk_free_bytes"):
        assert name in fams, name
    refusals = {s.labels.get("status"): s.value for s in fams["taphouse_admission_refusals"].samples
                if s.name.endswith("_total")}
    assert refusals.get("429", 0) >= 1
    queries = [s for s in fams["taphouse_query_duration_seconds"].samples
               if s.name.endswith("_count") and s.labels.get("outcome") == "ok"]
    assert queries and queries[0].value >= 1
    assert fams["taphouse_disk_free_bytes"].samples[0].value > 0


def test_metrics_from_an_allowed_address_need_no_token(start_server):
    server = start_server(metrics_allow=("127.0.0.1",))
    r = httpx.get(server.url + "/metrics", timeout=30)
    assert r.status_code == 200 and "taphouse_http_requests_total" in r.text
    other = start_server(metrics_allow=("10.9.9.9",))
    assert httpx.get(other.url + "/metrics", timeout=30).status_code == 401


def test_metrics_address_cannot_be_claimed_in_a_header(start_server):
    """X-Forwarded-For counts only from a trusted proxy; behind one, the proxy's own
    address (allowed for a Prometheus on the same host) is not every client's."""
    other = start_server(metrics_allow=("10.9.9.9",))
    r = httpx.get(other.url + "/metrics", headers={"X-Forwarded-For": "10.9.9.9"}, timeout=30)
    assert r.status_code == 401
    proxied = start_server(metrics_allow=("127.0.0.1",), trusted_proxies=("127.0.0.1",))
    r = httpx.get(proxied.url + "/metrics", headers={"X-Forwarded-For": "203.0.113.5"},
                  timeout=30)
    assert r.status_code == 401
    r = httpx.get(proxied.url + "/metrics", headers={"X-Forwarded-For": "203.0.113.5, 127.0.0.1"},
                  timeout=30)
    assert r.status_code == 401
    assert httpx.get(proxied.url + "/metrics", timeout=30).status_code == 200
