"""A small standard TAP service for the tests that is not taphouse and follows other
servers' conventions: async (UWS) only — ``/sync`` does not exist —, VOTable results
in TABLEDATA or BINARY serialisation (never BINARY2, never Parquet), its own MAXREC
default and hard limit, an upload row limit, uploads refusable, row counts in its VOSI
tableset. Queries run in DuckDB after a small ADQL rewrite (TOP, CONTAINS of a POINT in
a CIRCLE).

It records every job (ADQL, MAXREC, the uploaded tables as astropy tables) so that the
tests can assert what the platform shipped.
"""

from __future__ import annotations

import io
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import pyarrow as pa
import sqlglot
from astropy.io import votable
from astropy.table import MaskedColumn, Table
from sqlglot import exp


@dataclass
class Job:
    id: str
    adql: str
    maxrec: int
    uploads: dict[str, Table]
    phase: str = "PENDING"
    error: str | None = None
    result: bytes | None = None
    rows: int = 0
    overflow: bool = False


@dataclass
class StandardTap:
    """The service; ``start()`` binds a free port on 127.0.0.1."""

    table: pa.Table  # served as cat.stars
    maxrec_default: int = 100
    maxrec_hard: int = 1000
    upload_rows: int | None = 50  # None: uploads refused
    serialization: str = "tabledata"  # or "binary"
    jobs: list[Job] = field(default_factory=list)

    def start(self) -> StandardTap:
        self._db = duckdb.connect()
        self._db.execute("CREATE SCHEMA cat")
        self._db.register("stars_arrow", self.table)
        self._db.execute("CREATE TABLE cat.stars AS SELECT * FROM stars_arrow")
        self._lock = threading.Lock()
        service = self

        class Handler(_Handler):
            tap = service

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/tap"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._db.close()

    # --- documents -----------------------------------------------------------------------
    def capabilities(self) -> bytes:
        upload = ('<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>'
                  if self.upload_rows is not None else "")
        upload_limit = (f'<uploadLimit><hard unit="row">{self.upload_rows}</hard></uploadLimit>'
                        if self.upload_rows is not None else "")
        mime = "application/x-votable+xml"
        return f"""<?xml version="1.0"?>
<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0">
<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">
<interface role="std"><accessURL use="base">{self.url}</accessURL></interface>
<language><name>ADQL</name><version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>
<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">
<feature><form>POINT</form></feature><feature><form>CIRCLE</form></feature>
<feature><form>CONTAINS</form></feature></languageFeatures></language>
<outputFormat><mime>{mime}</mime><alias>votable</alias></outputFormat>
<outputFormat><mime>{mime};serialization=BINARY</mime></outputFormat>
{upload}
<outputLimit><default unit="row">{self.maxrec_default}</default>
<hard unit="row">{self.maxrec_hard}</hard></outputLimit>
{upload_limit}
</capability>
</vosi:capabilities>""".encode()

    def tables(self) -> bytes:
        types = {"int64": "long", "double": "double", "float": "float", "int32": "int"}
        cols = "".join(f"<column><name>{f.name}</name><dataType xsi:type=\"vs:VOTableType\">"
                       f"{types.get(str(f.type), 'char')}</dataType></column>"
                       for f in self.table.schema)
        return f"""<?xml version="1.0"?>
<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0"
  xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<schema><name>cat</name><table type="table"><name>cat.stars</name>
<nrows>{self.table.num_rows}</nrows>{cols}</table></schema>
</vosi:tableset>""".encode()

    # --- running a job ------------------------------------------------------------------
    def run(self, job: Job) -> None:
        try:
            if job.uploads and self.upload_rows is None:
                raise ValueError("this service does not accept uploads")
            for name, table in job.uploads.items():
                if len(table) > self.upload_rows:  # type: ignore[operator]
                    raise ValueError(f"upload {name} has {len(table)} rows; the limit is"
                                     f" {self.upload_rows}")
            sql = to_duckdb(job.adql)
            with self._lock:
                cur = self._db.cursor()
                for name, table in job.uploads.items():
                    cur.register(f"upload_{name.lower()}", _arrow(table))
                result = cur.sql(sql).to_arrow_table()
                cur.close()
            job.overflow = result.num_rows > job.maxrec
            result = result.slice(0, job.maxrec)
            job.rows = result.num_rows
            job.result = self._votable(result, job.overflow)
            job.phase = "COMPLETED"
        except Exception as exc:  # noqa: BLE001  (any failure is the job's error)
            job.phase, job.error = "ERROR", str(exc).splitlines()[0]

    def _votable(self, result: pa.Table, overflow: bool) -> bytes:
        table = Table(result.to_pydict()) if result.num_columns else Table()
        for name in table.colnames:
            col = table[name]
            if col.dtype.kind == "f":
                continue
            mask = [v is None for v in result.column(name).to_pylist()]
            if any(mask):
                table[name] = MaskedColumn(col, mask=mask)
        vot = votable.from_table(table)
        resource = vot.resources[0]
        status = "OVERFLOW" if overflow else "OK"
        resource.infos.append(votable.tree.Info(name="QUERY_STATUS", value=status))
        buf = io.BytesIO()
        vot.to_xml(buf, tabledata_format=self.serialization)
        return buf.getvalue()


def to_duckdb(adql: str) -> str:
    """The service's own ADQL subset in DuckDB SQL."""
    top = None
    m = re.match(r"\s*SELECT\s+(DISTINCT\s+)?TOP\s+(\d+)\s", adql, re.I)
    if m:
        top = int(m.group(2))
        adql = adql[:m.start(2) - 4 - len(m.group(1) or "")] + "SELECT " + (
            m.group(1) or "") + adql[m.end():]
    tree = sqlglot.parse_one(adql)

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.EQ):
            call = node.expression if isinstance(node.this, exp.Literal) else node.this
            if isinstance(call, (exp.Anonymous, exp.Contains)) and (
                    str(call.this).upper() == "CONTAINS" or isinstance(call, exp.Contains)):
                point, circle = _args(call)
                a, b = _args(point)
                c, d, r = _args(circle)
                return exp.condition(
                    f"DEGREES(2 * ASIN(SQRT(POWER(SIN(RADIANS(({d.sql()}) - ({b.sql()})) / 2), 2)"
                    f" + COS(RADIANS({b.sql()})) * COS(RADIANS({d.sql()}))"
                    f" * POWER(SIN(RADIANS(({c.sql()}) - ({a.sql()})) / 2), 2))))"
                    f" <= {r.sql()}")
        if isinstance(node, exp.Table) and node.db.upper() == "TAP_UPLOAD":
            return exp.Table(this=exp.to_identifier(f"upload_{node.name.lower()}"),
                             alias=node.args.get("alias"))
        return node

    tree = tree.transform(rewrite)
    sql = tree.sql(dialect="duckdb")
    return sql + (f" LIMIT {top}" if top is not None else "")


def _args(call: exp.Expression) -> list[exp.Expression]:
    if isinstance(call, exp.Contains):
        return [call.this, call.expression]
    return list(call.expressions)


def _arrow(table: Table) -> pa.Table:
    cols = {}
    for name in table.colnames:
        col = table[name]
        values = col.tolist()
        if hasattr(col, "mask"):
            values = [None if m else v for v, m in zip(values, col.mask.tolist(), strict=True)]
        cols[name] = values
    return pa.table(cols)


class _Handler(BaseHTTPRequestHandler):
    tap: StandardTap

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/xml",
              location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)

    def _job(self, path: str) -> tuple[Job | None, str]:
        parts = path[len("/tap/async/"):].split("/", 1)
        job = next((j for j in self.tap.jobs if j.id == parts[0]), None)
        return job, parts[1] if len(parts) > 1 else ""

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/tap/capabilities":
            return self._send(200, self.tap.capabilities())
        if path == "/tap/tables":
            return self._send(200, self.tap.tables())
        if path.startswith("/tap/async/"):
            job, rest = self._job(path)
            if job is None:
                return self._send(404, b"no such job", "text/plain")
            if rest == "results/result" and job.result is not None:
                return self._send(200, job.result, "application/x-votable+xml")
            if rest == "error":
                return self._send(200, (job.error or "").encode(), "text/plain")
            if rest == "phase":
                return self._send(200, job.phase.encode(), "text/plain")
            return self._send(200, _job_xml(self.tap.url, job))
        return self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        form, files = self._form()
        if path == "/tap/async":
            uploads: dict[str, Table] = {}
            for spec in filter(None, form.get("UPLOAD", "").split(";")):
                name, _, uri = spec.partition(",")
                data = files.get(uri.removeprefix("param:"))
                if data is not None:
                    uploads[name] = votable.parse_single_table(io.BytesIO(data)).to_table()
            maxrec = min(int(form.get("MAXREC", self.tap.maxrec_default)), self.tap.maxrec_hard)
            job = Job(uuid.uuid4().hex[:10], form.get("QUERY", ""), maxrec, uploads)
            self.tap.jobs.append(job)
            if form.get("PHASE", "").upper() == "RUN":
                job.phase = "EXECUTING"
                self.tap.run(job)
            return self._send(303, location=f"{self.tap.url}/async/{job.id}")
        if path.startswith("/tap/async/"):
            job, rest = self._job(path)
            if job is None:
                return self._send(404, b"no such job", "text/plain")
            if rest == "phase" and form.get("PHASE", "").upper() == "RUN":
                self.tap.run(job)
            elif form.get("ACTION", "").upper() == "DELETE":
                job.phase = "ARCHIVED"
                return self._send(303, location=f"{self.tap.url}/async")
            return self._send(303, location=f"{self.tap.url}/async/{job.id}")
        return self._send(404, b"this service runs queries as async jobs only", "text/plain")

    def _form(self) -> tuple[dict[str, str], dict[str, bytes]]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            boundary = ctype.split("boundary=", 1)[1].encode()
            form, files = {}, {}
            for part in body.split(b"--" + boundary):
                head, _, data = part.partition(b"\r\n\r\n")
                m = re.search(rb'name="([^"]+)"(; filename="[^"]*")?', head)
                if not m:
                    continue
                data = data[:-2] if data.endswith(b"\r\n") else data
                if m.group(2):
                    files[m.group(1).decode()] = data
                else:
                    form[m.group(1).decode().upper()] = data.decode()
            return form, files
        qs = parse_qs(body.decode(), keep_blank_values=True)
        return {k.upper(): v[0] for k, v in qs.items()}, {}


def _job_xml(base: str, job: Job) -> bytes:
    results = (f'<uws:results><uws:result id="result" xlink:href="{base}/async/{job.id}'
               '/results/result"/></uws:results>' if job.result is not None else "")
    error = (f"<uws:errorSummary type=\"fatal\"><uws:message>{_xml(job.error)}</uws:message>"
             "</uws:errorSummary>" if job.error else "")
    return (f'<?xml version="1.0"?><uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"'
            f' xmlns:xlink="http://www.w3.org/1999/xlink"><uws:jobId>{job.id}</uws:jobId>'
            f"<uws:phase>{job.phase}</uws:phase>{results}{error}</uws:job>").encode()


def _xml(text: str | None) -> str:
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
