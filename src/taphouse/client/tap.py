"""The query API shared by the client (main TAP service) and workspaces."""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from pyvo.dal.query import UploadList
from pyvo.io.uws import parse_job

from taphouse.client.errors import ClientError, QueryError, QueryTimeout
from taphouse.client.http import send
from taphouse.client.jobs import Job
from taphouse.client.models import Listing
from taphouse.client.output import as_table, result_format, upload_format, upload_parquet

if TYPE_CHECKING:
    from taphouse.client.client import Client

_VOTABLE_SUFFIXES = {".xml", ".vot", ".votable"}
# Files the service recognises by their first bytes, whatever the declared type.
_SENT_AS_IS = {".parquet", ".pq", ".fits", ".fit"}


class TapEndpoint:
    """A TAP service reachable with the client's session: ``query``, ``submit``,
    ``jobs``, ``job``, and ``service`` (a :class:`pyvo.dal.TAPService` on the same
    session, for anything pyvo offers)."""

    def __init__(self, client: Client, tap_url: str) -> None:
        self.client = client
        self.tap_url = tap_url.rstrip("/")

    @property
    def service(self) -> Any:
        """A :class:`pyvo.dal.TAPService` for this endpoint, sharing the login."""
        from pyvo.dal import TAPService

        return TAPService(self.tap_url, session=self.client.session)

    # --- queries ---------------------------------------------------------------------
    def submit(self, adql: str, *, maxrec: int | None = None, into: str | None = None,
               mode: str = "create", uploads: Mapping[str, Any] | None = None,
               timeout: float | None = None, run: bool = True,
               responseformat: str = "votable") -> Job:
        """Create an async job for ``adql`` (started unless ``run=False``); returns at once.

        See :meth:`query` for the parameters. The creation request is never repeated
        automatically, so a flaky network cannot start a query twice.
        """
        data: dict[str, str] = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql,
                                "RESPONSEFORMAT": responseformat}
        if run:
            data["PHASE"] = "RUN"
        if maxrec is not None:
            data["MAXREC"] = str(int(maxrec))
        if into:
            data["DEST"] = into if "." in into else f"mydb.{into}"
            data["DEST_MODE"] = mode
        if timeout is not None:
            data["EXECUTIONDURATION"] = str(max(1, math.ceil(timeout)))
        files = None
        if uploads:
            upload_list = UploadList.fromdict({k: _upload_content(v) for k, v in uploads.items()})
            data["UPLOAD"] = upload_list.param()
            files = {u.name: (f"{u.name}.xml", u.fileobj(), "application/x-votable+xml")
                     for u in upload_list if u.is_inline} or None
        try:
            r = send(self.client.session, "POST", self.tap_url + "/async", data=data,
                     files=files, allow_redirects=False, timeout=self.client.timeout)
        except QueryError as exc:
            exc.query = exc.query or adql
            raise
        location = r.headers.get("Location")
        if r.is_redirect and location:
            url = urljoin(r.url, location)
            job = Job(self, url.rstrip("/").rsplit("/", 1)[-1], url=url)
        else:
            summary = parse_job(io.BytesIO(r.content))
            job = Job(self, summary.jobid, summary=summary)
        job._query = adql
        return job

    def query(self, adql: str, *, maxrec: int | None = None, into: str | None = None,
              uploads: Mapping[str, Any] | None = None, timeout: float | None = None,
              output: str = "astropy", mode: str = "create",
              progress: bool | Callable | None = None) -> Any:
        """Run an ADQL query as an async job and return its result.

        Parameters
        ----------
        adql
            The ADQL 2.1 query.
        maxrec
            At most this many rows (default: the service's default). A truncated
            result is never silent: :class:`MaxrecWarning` is issued.
        into
            Also store the result as a table in your user space (``mydb.<into>``).
        uploads
            Tables to use in the query as ``TAP_UPLOAD.<name>``: name -> astropy Table,
            pandas DataFrame, file path (VOTable, FITS, CSV, Parquet) or URL.
        timeout
            Total budget in seconds for running and downloading; past it the job is
            aborted and :class:`QueryTimeout` raised.
        output
            ``"astropy"`` (Table with units), ``"pandas"``, ``"polars"`` or ``"pyarrow"``.
        mode
            With ``into``: ``"create"``, ``"replace"`` or ``"append"``.
        progress
            True: progress bar with phase and elapsed time; False: none; a callable
            ``progress(job, phase, elapsed)``. None: the client's default.

        Returns
        -------
        astropy.table.Table (or the ``output`` type); ``meta`` holds ``job_id``,
        ``query`` and, with ``into``, ``dest_table`` and ``dest_rows``.

        Raises
        ------
        QueryError
            The server refused or failed the query; ``str()`` shows a caret at the
            position named by the server.
        QueryTimeout, QueryAborted, AuthError, ServerError
        KeyboardInterrupt
            Interrupting the wait aborts the job on the server first.
        """
        start = time.monotonic()
        # VO-Parquet when pyarrow is there, for every output (astropy included): reading
        # a VOTable costs ~30x more than reading Parquet and converting it (output.py).
        fmt = result_format(output)
        job = self.submit(adql, maxrec=maxrec, into=into, mode=mode, uploads=uploads,
                          timeout=timeout, responseformat=fmt)
        job.wait(timeout=timeout, progress=progress)
        remaining = None
        if timeout is not None:
            remaining = timeout - (time.monotonic() - start)
            if remaining <= 0:
                raise QueryTimeout(f"job {job.id} finished but the {timeout:g} s budget was"
                                   f" used up before its result could be fetched (fetch it"
                                   f" with client.job({job.id!r}).results())")
        return job.results(output=output, timeout=remaining)

    # --- jobs ----------------------------------------------------------------------------
    def jobs(self, *, phase: str | list[str] | None = None, last: int | None = None) -> Listing:
        """Your query jobs, newest first (the ``last`` newest with ``last``), as a
        printable listing of :class:`Job` with phase, creation time, rows and ADQL text.

        Every TAP job of yours is listed, whichever endpoint (main or workspace) ran it.
        """
        if self.client.auth.token is None and self.client.auth.lost is None:
            # Anonymous: no job is anybody's (as in the UWS job list).
            return Listing([], Job, title=f"jobs at {self.tap_url} (anonymous: none listed)")
        params: list[tuple[str, str]] = [("kind", "tap")]
        for p in [phase] if isinstance(phase, str) else (phase or []):
            params.append(("phase", p.upper()))
        if last is not None:
            params.append(("last", str(int(last))))
        r = send(self.client.session, "GET", self.client.url + "/api/jobs", params=params,
                 timeout=self.client.timeout)
        out = [Job.from_listing(self, entry) for entry in r.json()]
        return Listing(out, Job, title=f"jobs at {self.tap_url}")

    def job(self, job_id: str) -> Job:
        """The job with this id (e.g. from an earlier Python session)."""
        job = Job(self, job_id)
        job.refresh()
        return job


def _upload_content(value: Any) -> Any:
    """What pyvo's Upload accepts: an in-memory file or a URL. Tables are sent as
    VO-Parquet when pyarrow is installed (the service reads it with pyarrow, units, UCDs
    and descriptions included; astropy takes seconds per 100,000 rows to write a VOTable
    and the service as long to read one with variable-length strings), else as a
    BINARY2 VOTable. (Written here, as pyvo 1.9's own ``Table.write(output=...)`` call
    fails with astropy 8.)"""
    content = _upload_source(value)
    if isinstance(content, str | io.IOBase):  # (a Table has a read() too)
        return content
    if upload_format() == "parquet":
        try:
            return upload_parquet(content)
        except Exception:  # noqa: BLE001 - columns Arrow cannot hold (mixins): VOTable
            pass
    buf = io.BytesIO()
    content.write(buf, format="votable", tabledata_format="binary2")
    buf.seek(0)
    return buf


def _upload_source(value: Any) -> Any:
    if isinstance(value, (str, os.PathLike)):
        text = str(value)
        if text.startswith(("http://", "https://", "ivo://")):
            return text
        path = Path(text).expanduser()
        if not path.is_file():
            raise ClientError(f"upload {text!r} is neither a file nor a URL")
        if path.suffix.lower() in _VOTABLE_SUFFIXES | _SENT_AS_IS:
            return io.BytesIO(path.read_bytes())
        from astropy.table import Table

        return Table.read(path)
    if hasattr(value, "read") and not isinstance(value, type) and callable(value.read) \
            and not hasattr(value, "colnames"):
        data = value.read()
        return io.BytesIO(data.encode() if isinstance(data, str) else data)
    if isinstance(value, bytes):
        return io.BytesIO(value)
    return as_table(value)


__all__ = ["TapEndpoint"]
