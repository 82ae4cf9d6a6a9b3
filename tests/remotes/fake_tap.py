"""A small in-process TAP service for the tests that misbehaves on request: overflow,
slowness, dropped connections, error documents, hostile metadata, odd job locations.

It records every request (method, path, headers, form) so tests can assert what the
platform sent. ``FakeTap.routes`` maps a path to a function ``(handler, form) ->
(status, headers, body)`` or to a special action; tests replace entries.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CAPABILITIES = b"""<?xml version="1.0"?>
<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0">
<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">
<interface role="std"><accessURL use="base">http://x/tap</accessURL></interface>
<language><name>ADQL</name><version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>
<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">
<feature><form>CONTAINS</form></feature><feature><form>POINT</form></feature>
<feature><form>CIRCLE</form></feature></languageFeatures></language>
<outputFormat><mime>application/x-votable+xml</mime></outputFormat>
<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>
<outputLimit><default unit="row">20</default><hard unit="row">100</hard></outputLimit>
</capability>
</vosi:capabilities>"""

TABLES = b"""<?xml version="1.0"?>
<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0"
  xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<schema><name>cat</name>
<table type="table"><name>cat.stars</name>
<description>Stars &lt;script&gt;alert(1)&lt;/script&gt; with&#127; control</description>
<column><name>id</name><dataType xsi:type="vs:VOTableType">long</dataType>
<flag>indexed</flag></column>
<column><name>RAJ2000</name><unit>deg</unit><ucd>pos.eq.ra;meta.main</ucd>
<dataType xsi:type="vs:VOTableType">double</dataType></column>
</table></schema>
</vosi:tableset>"""


def votable(rows: list[tuple[int, float]], status: str | None = None,
            trailing: str | None = None) -> bytes:
    """A small TABLEDATA result with columns id, raj2000."""
    trs = "".join(f"<TR><TD>{i}</TD><TD>{r}</TD></TR>" for i, r in rows)
    head = f'<INFO name="QUERY_STATUS" value="{status}"/>' if status else ""
    tail = f'<INFO name="QUERY_STATUS" value="{trailing}"/>' if trailing else ""
    return (f'<?xml version="1.0"?><VOTABLE version="1.4"'
            f' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">{head}'
            '<TABLE><FIELD name="id" datatype="long"/><FIELD name="raj2000" datatype="double"'
            f' unit="deg"/><DATA><TABLEDATA>{trs}</TABLEDATA></DATA></TABLE>{tail}'
            '</RESOURCE></VOTABLE>').encode()


def error_document(message: str) -> bytes:
    from xml.sax.saxutils import escape

    return (f'<?xml version="1.0"?><VOTABLE version="1.4"'
            f' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
            f'<INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>'
            '</RESOURCE></VOTABLE>').encode()


def job_document(job_id: str, phase: str, result_href: str | None = None,
                 error: str | None = None) -> bytes:
    results = (f'<uws:results><uws:result id="result" xlink:href="{result_href}"/>'
               "</uws:results>") if result_href else "<uws:results/>"
    summary = (f'<uws:errorSummary type="fatal"><uws:message>{error}</uws:message>'
               "</uws:errorSummary>") if error else ""
    return (f'<?xml version="1.0"?><uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"'
            f' xmlns:xlink="http://www.w3.org/1999/xlink"><uws:jobId>{job_id}</uws:jobId>'
            f"<uws:phase>{phase}</uws:phase>{results}{summary}</uws:job>").encode()


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    form: dict[str, str]
    host: str


@dataclass
class FakeTap:
    """The service; ``url`` is its base (``http://127.0.0.1:<port>/tap``)."""

    routes: dict[str, Callable[[Seen], Reply | str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tap"

    def paths(self, method: str | None = None) -> list[str]:
        return [s.path for s in self.seen if method is None or s.method == method]

    def start(self) -> FakeTap:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                form = {k: v[-1] for k, v in parse_qs(raw).items()}
                seen = Seen(method, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()}, form,
                            self.headers.get("host", ""))
                fake.seen.append(seen)
                route = fake.routes.get(parts.path)
                if route is None:
                    self._send(404, {"Content-Type": "text/plain"}, b"not found")
                    return
                reply = route(seen)
                if reply == "drop":  # promise a body, send half, close
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/"
                                     b"x-votable+xml\r\nContent-Length: 5000\r\n\r\n<?xml")
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if reply == "reset":  # close without any answer
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                assert not isinstance(reply, str)
                self._send(*reply)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.routes.setdefault("/tap/capabilities", lambda s: (200, XML, CAPABILITIES))
        self.routes.setdefault("/tap/tables", lambda s: (200, XML, TABLES))
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


XML = {"Content-Type": "text/xml"}
VOT = {"Content-Type": "application/x-votable+xml"}


def slow(seconds: float, reply: Reply) -> Callable[[Seen], Reply]:
    def route(seen: Seen) -> Reply:
        time.sleep(seconds)
        return reply
    return route
