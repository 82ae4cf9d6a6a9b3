"""Retries against a real flaky HTTP server on 127.0.0.1: idempotent requests are
retried with backoff, a POST never is."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from taphouse.client.errors import ClientError, NotFoundError, QueryError, ServerError
from taphouse.client.http import new_session, send

ERROR_DOC = b"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">
<INFO name="QUERY_STATUS" value="ERROR">unknown column 'foo' (at line 1, column 8)</INFO>
<INFO name="QUERY" value="SELECT foo FROM t"/>
</RESOURCE></VOTABLE>"""


@pytest.fixture
def flaky():
    seen: list[str] = []
    plan = {"fail": 2}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, status, body=b"ok", ctype="text/plain"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            seen.append("GET " + self.path)
            if self.path == "/missing":
                return self._answer(404, b'{"error": "no table x"}', "application/json")
            if plan["fail"] > 0:
                plan["fail"] -= 1
                return self._answer(503, b"busy")
            self._answer(200)

        def do_POST(self):
            seen.append("POST " + self.path)
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            if self.path == "/query":
                return self._answer(400, ERROR_DOC, "application/x-votable+xml")
            if self.path == "/drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self._answer(503, b"busy")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_get_is_retried_until_it_succeeds(flaky):
    url, seen = flaky
    r = send(new_session(retries=3, backoff=0.01), "GET", url + "/x", timeout=5)
    assert r.text == "ok"
    assert seen == ["GET /x"] * 3


def test_post_is_never_repeated(flaky):
    url, seen = flaky
    with pytest.raises(ServerError) as info:
        send(new_session(retries=3, backoff=0.01), "POST", url + "/async", data={"a": "1"},
             timeout=5)
    assert info.value.status == 503
    assert seen == ["POST /async"]


def test_post_whose_connection_drops_is_not_resent(flaky):
    url, seen = flaky
    with pytest.raises(ServerError):
        send(new_session(retries=3, backoff=0.01), "POST", url + "/drop", data={"a": "1"},
             timeout=5)
    assert seen == ["POST /drop"]


def test_errors_carry_the_server_message(flaky):
    url, _ = flaky
    with pytest.raises(NotFoundError, match="no table x"):
        send(new_session(), "GET", url + "/missing", timeout=5)
    with pytest.raises(QueryError) as info:
        send(new_session(), "POST", url + "/query", timeout=5)
    err = info.value
    assert (err.message, err.line, err.column, err.query) == (
        "unknown column 'foo'", 1, 8, "SELECT foo FROM t")
    assert isinstance(err, ClientError) and err.status == 400
    assert str(err).splitlines()[-1].index("^") == str(err).splitlines()[-2].index("foo")


def test_every_request_carries_the_client_header():
    # The server accepts state-changing /api and /auth requests with credentials only
    # with JSON or this header (a cross-site page cannot make a browser send it).
    from taphouse.client.http import CLIENT_HEADER, new_session

    assert new_session().headers[CLIENT_HEADER]
