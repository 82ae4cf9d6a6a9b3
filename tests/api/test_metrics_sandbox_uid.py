"""`metrics_allow = ["127.0.0.1"]` (the docs' example until now) gave /metrics to every hub
user: their Jupyter servers and kernels share the host's network and connect from
127.0.0.1 too. A loopback entry now counts only for a direct connection whose socket is
not a sandbox uid's (``compute_uid_base`` and above), nor one forwarded by a proxy or
the hub."""

from __future__ import annotations

import subprocess

import httpx

SANDBOX_UID = 2_000_000 + 41  # a hub user's uid (compute_uid_base + user id)

FETCH = ("import sys, urllib.request, urllib.error\n"
         "try:\n"
         "    r = urllib.request.urlopen(sys.argv[1], timeout=30)\n"
         "    print(r.status, r.read(200).decode())\n"
         "except urllib.error.HTTPError as e:\n"
         "    print(e.code, e.read(300).decode())\n")


def fetch_as(uid: int, url: str) -> str:
    python = "/usr/bin/python3"  # the system's (any uid may run it), stdlib only
    proc = subprocess.run([python, "-I", "-c", FETCH, url], user=uid, group=uid,
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_sandbox_uid_on_loopback_gets_no_metrics(start_server) -> None:  # noqa: ANN001
    server = start_server(metrics_allow=("127.0.0.1",))
    url = server.url + "/metrics"
    assert httpx.get(url, timeout=30).status_code == 200  # the operator's Prometheus
    out = fetch_as(SANDBOX_UID, url)  # a hub user's Jupyter server, same address
    assert out.startswith("401"), out
    assert "taphouse_http_requests_total" not in out
    assert "administrator" in out
