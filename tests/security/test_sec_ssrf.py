"""Server-side fetches (TAP URL uploads) as an attacker would use them: internal
addresses, DNS tricks, redirects, huge and slow answers.

Only loopback is ever connected to: every other address in these tests is refused
before a connection is made (that is what is tested).
"""

from __future__ import annotations

import http.server
import threading
import time

import httpx
import pytest

from taphouse.outbound import (
    Outbound,
    OutboundError,
    OutboundPolicy,
    OutboundTooLarge,
    is_public,
)

CSV = b"id,ra,dec\n1,10.0,20.0\n2,11.0,-5.0\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append((self.path, self.headers.get("Host")))  # type: ignore[attr-defined]
        port = self.server.server_address[1]
        routes = {
            "/t.csv": (200, {"Content-Type": "text/csv"}, CSV),
            "/same": (302, {"Location": "/t.csv"}, b""),
            "/other-host": (302, {"Location": f"http://localhost:{port}/t.csv"}, b""),
            "/metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
            "/big": (200, {"Content-Type": "text/csv"}, b"x" * 5000),
        }
        if self.path == "/chunked-big":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b"z")
                self.wfile.flush()
                time.sleep(0.1)
            return
        status, headers, body = routes.get(self.path, (404, {}, b"no"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def files():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def local(allow=("127.0.0.1",), **kw) -> Outbound:
    return Outbound(OutboundPolicy(allow=allow, max_bytes=kw.pop("max_bytes", 4096), **kw),
                    resolver=kw.pop("resolver", None) or _refuse_dns)


def _refuse_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"no lookup expected for {host}")


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "0.0.0.0", "100.64.0.1", "100.100.100.200", "224.0.0.1", "192.0.2.1", "::1", "fe80::1",
    "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1",
    "64:ff9b::a00:1", "2001:db8::1", "::"])
def test_internal_addresses_are_not_public(address):
    import ipaddress

    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses_are(files):
    import ipaddress

    assert is_public(ipaddress.ip_address("8.8.8.8"))
    assert is_public(ipaddress.ip_address("2606:4700::1111"))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/t.csv", "http://[::1]:{port}/t.csv",
    "http://[::ffff:127.0.0.1]:{port}/t.csv", "http://0.0.0.0:{port}/t.csv",
    "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/t.csv",
    "http://2130706433:{port}/t.csv", "http://0x7f000001:{port}/t.csv",
    "file:///etc/passwd", "ftp://127.0.0.1/t.csv", "http://user:pw@example.org/t.csv",
    "gopher://127.0.0.1:6379/_FLUSHALL"])
def test_default_policy_refuses_internal_urls(files, url):
    port = files.server_address[1]
    out = Outbound(OutboundPolicy(max_bytes=4096),
                   resolver=lambda host, p: ["127.0.0.1"])  # numeric tricks resolve here
    before = len(files.seen)
    with pytest.raises(OutboundError):
        out.fetch(url.format(port=port))
    assert len(files.seen) == before  # nothing reached the server


def test_dns_answers_are_checked_and_pinned(files):
    port = files.server_address[1]
    calls = []

    def rebinding(host: str, p: int) -> list[str]:
        # the first answer is checked; a second lookup would get a private address
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["10.0.0.1"]

    out = Outbound(OutboundPolicy(allow=("127.0.0.1",), max_bytes=4096), resolver=rebinding)
    got = out.fetch(f"http://tables.example:{port}/t.csv")
    assert got.body == CSV and calls == ["tables.example"]
    assert files.seen[-1] == ("/t.csv", f"tables.example:{port}")
    # a name resolving to an internal address is refused (any of its addresses)
    sneaky = Outbound(OutboundPolicy(max_bytes=4096),
                      resolver=lambda host, p: ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(OutboundError, match="non-public"):
        sneaky.fetch(f"http://evil.example:{port}/t.csv")


def test_redirects_are_checked_and_never_change_host(files):
    port = files.server_address[1]
    out = local()
    assert out.fetch(f"http://127.0.0.1:{port}/same").body == CSV
    with pytest.raises(OutboundError, match="another host"):
        out.fetch(f"http://127.0.0.1:{port}/other-host")
    with pytest.raises(OutboundError, match="another host"):
        out.fetch(f"http://127.0.0.1:{port}/metadata")
    with pytest.raises(OutboundError, match="redirects"):
        out.fetch(f"http://127.0.0.1:{port}/loop")


def test_size_and_time_limits(files):
    port = files.server_address[1]
    with pytest.raises(OutboundTooLarge, match="limit"):
        local(max_bytes=1000).fetch(f"http://127.0.0.1:{port}/big")
    with pytest.raises(OutboundTooLarge, match="limit"):
        local(max_bytes=4096).fetch(f"http://127.0.0.1:{port}/chunked-big")
    started = time.monotonic()
    with pytest.raises(OutboundError, match="timed out"):
        local(timeout=1.0).fetch(f"http://127.0.0.1:{port}/slow")
    assert time.monotonic() - started < 2.5


def test_tap_url_uploads_use_the_outbound_rules(start_server, files):
    port = files.server_address[1]
    query = {"LANG": "ADQL", "QUERY": "SELECT id FROM TAP_UPLOAD.t ORDER BY id",
             "RESPONSEFORMAT": "csv", "UPLOAD": f"t,http://127.0.0.1:{port}/t.csv"}
    server = start_server()  # the default: on, public addresses only
    assert "upload-http" in httpx.get(server.tap + "/capabilities").text
    r = httpx.post(server.tap + "/sync", data=query)
    assert r.status_code == 400 and b"non-public" in r.content
    assert b"/tmp" not in r.content
    allowed = start_server(outbound_allow=("127.0.0.1",))
    r = httpx.post(allowed.tap + "/sync", data=query)
    assert r.status_code == 200, r.text
    assert r.text.splitlines() == ["id", "1", "2"]
    redirected = dict(query, UPLOAD=f"t,http://127.0.0.1:{port}/other-host")
    assert httpx.post(allowed.tap + "/sync", data=redirected).status_code == 400
    # A table longer than the upload limit: 413, told by the error's type.
    small = start_server(outbound_allow=("127.0.0.1",), upload_max_bytes=1000)
    r = httpx.post(small.tap + "/sync", data=dict(query, UPLOAD=f"t,http://127.0.0.1:{port}/big"))
    assert r.status_code == 413 and b"limit" in r.content, r.text
    off = start_server(upload_urls=False)
    assert "upload-http" not in httpx.get(off.tap + "/capabilities").text
    r = httpx.post(off.tap + "/sync", data=query)
    assert r.status_code == 400 and b"disabled" in r.content
