"""UWS 1.1 jobs of a TAP service, driven with thin calls on the client's session
(job documents parsed by :mod:`pyvo.io.uws`)."""

from __future__ import annotations

import html
import io
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyvo.io.uws import parse_job

from taphouse.client.errors import (
    ClientError,
    MaxrecWarning,
    QueryAborted,
    QueryError,
    QueryTimeout,
    ServerError,
)
from taphouse.client.http import query_error, send, votable_infos
from taphouse.client.output import (
    arrow_output,
    convert,
    parse_votable,
    read_parquet,
    user_stacklevel,
)
from taphouse.client.progress import Progress

if TYPE_CHECKING:
    from taphouse.client.tap import TapEndpoint

FINAL = frozenset({"COMPLETED", "ERROR", "ABORTED", "ARCHIVED"})
ACTIVE = frozenset({"QUEUED", "EXECUTING", "SUSPENDED", "UNKNOWN"})


class Job:
    """One async TAP job (UWS). Get one from ``client.submit``, ``client.job(id)`` or
    ``client.jobs()``; a new Python session can reattach to an earlier job by its id.

    Attributes
    ----------
    id
        The job identifier.
    url
        The job's UWS URL.
    """

    _show = ("id", "phase", "created", "rows", "query")

    def __init__(self, endpoint: TapEndpoint, job_id: str, *, url: str | None = None,
                 summary: Any = None) -> None:
        self.endpoint = endpoint
        self.id = job_id
        self.url = url or f"{endpoint.tap_url}/async/{job_id}"
        self._summary = summary
        self._query: str | None = None
        #: Rows of the result, when known from a listing (``client.jobs()``).
        self.rows: int | None = None

    @classmethod
    def from_listing(cls, endpoint: TapEndpoint, data: dict[str, Any]) -> Job:
        """A job from one entry of the JSON jobs API (``GET /api/jobs``): its phase,
        times, rows and ADQL text are known without fetching the UWS document."""
        job = cls(endpoint, str(data["id"]), summary=_Listed(data))
        job._query = data.get("query")
        job.rows = data.get("rows")
        return job

    # --- state -----------------------------------------------------------------------
    @property
    def _session(self) -> Any:
        return self.endpoint.client.session

    def refresh(self, *, wait: float | None = None, phase: str | None = None,
                timeout: float | None = None) -> Job:
        """Fetch the job document; with ``wait``, block up to that many seconds on the
        server until the phase changes from ``phase`` (UWS 1.1 WAIT)."""
        params: dict[str, str] = {}
        if wait is not None:
            params["WAIT"] = str(max(int(wait), 1))
            if phase:
                params["PHASE"] = phase
        read = (wait or 0) + (timeout or self.endpoint.client.timeout)
        r = send(self._session, "GET", self.url, params=params, timeout=read)
        self._summary = parse_job(io.BytesIO(r.content))
        return self

    def _doc(self) -> Any:
        if self._summary is None or not hasattr(self._summary, "parameters"):
            self.refresh()
        return self._summary

    @property
    def phase(self) -> str:
        """The current phase (fetched from the server unless the job is finished)."""
        if self._summary is None or self._summary.phase not in FINAL:
            self.refresh()
        phase: str = self._summary.phase
        return phase

    @property
    def query(self) -> str | None:
        """The ADQL text of the job."""
        if self._query is None:
            doc = self._doc()
            for p in doc.parameters or []:
                if (p.id_ or "").lower() == "query":
                    self._query = p.content
        return self._query

    @property
    def parameters(self) -> dict[str, str]:
        """The job parameters (lower-case names)."""
        return {(p.id_ or "").lower(): p.content for p in self._doc().parameters or []}

    @property
    def created(self) -> Any:
        return getattr(self._summary, "creationtime", None) if self._summary else None

    @property
    def started(self) -> Any:
        return getattr(self._doc(), "starttime", None)

    @property
    def ended(self) -> Any:
        return getattr(self._doc(), "endtime", None)

    @property
    def result_url(self) -> str:
        """URL of the result document (the UWS result named ``result``)."""
        for res in self._doc().results or []:
            if res.id_ == "result" and getattr(res, "href", None):
                href: str = res.href
                return href
        return self.url + "/results/result"

    # --- actions -----------------------------------------------------------------------
    def run(self) -> Job:
        """Start a PENDING job."""
        send(self._session, "POST", self.url + "/phase", data={"PHASE": "RUN"},
             timeout=self.endpoint.client.timeout)
        self._summary = None
        return self

    def abort(self) -> Job:
        """Ask the server to abort the job (repeated once if the connection fails: an
        abort is harmless to repeat)."""
        for attempt in range(3):
            try:
                send(self._session, "POST", self.url + "/phase", data={"PHASE": "ABORT"},
                     timeout=self.endpoint.client.timeout)
                break
            except ServerError:
                if attempt == 2:
                    raise
                time.sleep(0.5 * 2**attempt)
        self._summary = None
        return self

    def delete(self) -> None:
        """Destroy the job and its results on the server."""
        send(self._session, "DELETE", self.url, timeout=self.endpoint.client.timeout,
             allow_redirects=False)
        self._summary = None

    def error(self) -> QueryError | None:
        """The job's error (message, query, position) if it is in phase ERROR."""
        doc = self._doc()
        if doc.phase != "ERROR":
            return None
        summary = getattr(doc, "errorsummary", None)
        message = ""
        if summary is not None and summary.message is not None:
            message = getattr(summary.message, "content", None) or str(summary.message)
        infos: dict[str, str] = {}
        try:
            r = send(self._session, "GET", self.url + "/error",
                     timeout=self.endpoint.client.timeout)
            parsed = votable_infos(r.content)
            if parsed is not None:
                message = parsed[0] or message
                infos = parsed[1]
            elif r.text.strip():
                message = r.text.strip()
        except ClientError:
            pass
        return query_error(message or "the job failed without a message", infos,
                           query=self.query, job_id=self.id)

    def wait(self, timeout: float | None = None, *, progress: bool | Callable | None = None,
             abort_on_interrupt: bool = True) -> Job:
        """Block until the job is finished, showing its phase and elapsed time.

        Parameters
        ----------
        timeout
            Seconds to wait at most; then the job is aborted and
            :class:`QueryTimeout` raised.
        progress
            True for a tqdm bar (terminal or notebook), False for none, or a callable
            ``progress(job, phase, elapsed_seconds)`` called after every poll.
            None: the client's default.
        abort_on_interrupt
            On KeyboardInterrupt (Ctrl-C, the notebook's stop button) abort the job on
            the server before re-raising.

        Raises
        ------
        QueryError
            The job ended in ERROR (the message names the position in the query).
        QueryAborted
            The job was aborted.
        QueryTimeout
            ``timeout`` passed first.
        """
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        if progress is None:
            progress = self.endpoint.client.progress
        bar = Progress(self, progress)
        pause = 0.1
        try:
            phase = self.phase
            if phase == "PENDING":
                raise ClientError(f"job {self.id} is PENDING: call job.run() first")
            while phase not in FINAL:
                bar.update(phase, time.monotonic() - start)
                elapsed = time.monotonic() - start
                step = min(max(1.0, elapsed / 10), 10.0)
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._abort_quietly()
                        raise QueryTimeout(f"job {self.id} did not finish within {timeout:g} s"
                                           " and was aborted")
                    step = min(step, max(remaining, 1.0))
                t0 = time.monotonic()
                self.refresh(wait=step, phase=phase)
                new = self._summary.phase
                if new == phase and time.monotonic() - t0 < step / 2:
                    time.sleep(pause)  # the server answered before WAIT was over: back off
                    pause = min(pause * 2, 2.0)
                phase = new
            bar.update(phase, time.monotonic() - start)
        except KeyboardInterrupt:
            bar.close(f"interrupted: aborting job {self.id}")
            if abort_on_interrupt:
                self._abort_quietly()
            raise
        finally:
            bar.close()
        if phase == "ERROR":
            error = self.error()
            if deadline is not None and "execution duration limit" in str(error):
                # The server holds the job to the EXECUTIONDURATION sent with timeout=.
                raise QueryTimeout(f"job {self.id} did not finish within {timeout:g} s and"
                                   " was stopped by the server") from error
            raise error  # type: ignore[misc]
        if phase == "ABORTED":
            raise QueryAborted(f"job {self.id} was aborted")
        return self

    def _abort_quietly(self) -> None:
        try:
            self.abort()
        except ClientError:
            pass

    def results(self, output: str = "astropy", *, timeout: float | None = None) -> Any:
        """The result of a finished job as an astropy Table (or ``output``:
        ``"pandas"``, ``"polars"``, ``"pyarrow"``).

        Warns with :class:`MaxrecWarning` when the result was truncated at MAXREC.
        """
        phase = self.phase
        if phase == "ERROR":
            raise self.error()  # type: ignore[misc]
        if phase != "COMPLETED":
            raise ClientError(f"job {self.id} is {phase}, not COMPLETED: call job.wait() first")
        content = self._download(timeout)
        arrow = header = None
        if content[:4] == b"PAR1":
            # VO-Parquet: the rows as Arrow, the INFOs in the embedded VOTable header.
            arrow, header, infos, message = read_parquet(content)
            table = None
        else:
            table, infos, message = parse_votable(content)
        status = infos.get("QUERY_STATUS", "OK")
        if status == "ERROR":
            raise query_error(message or "the result document reports an error", infos,
                              query=self.query, job_id=self.id)
        if status == "OVERFLOW":
            maxrec = self.parameters.get("maxrec")
            said = f"MAXREC={maxrec}" if maxrec else "the service's default MAXREC"
            rows = arrow.num_rows if arrow is not None else len(table or [])
            warnings.warn(MaxrecWarning(
                f"the result was truncated at {rows:,} rows: {said} was hit."
                " Pass a larger maxrec=... to get more rows (the service may cap it)."),
                stacklevel=user_stacklevel())
        meta = {"job_id": self.id}
        if self.query:
            meta["query"] = self.query
        for key in ("DEST_TABLE", "DEST_ROWS"):
            if key in infos:
                meta[key.lower()] = infos[key]
        if arrow is not None:
            return arrow_output(arrow, output, header, meta)
        if table is None:
            from astropy.table import Table

            table = Table()
        table.meta.update(meta)
        return convert(table, output)

    def _download(self, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        read = self.endpoint.client.timeout if deadline is None else min(
            self.endpoint.client.timeout, max(timeout or 0.0, 1.0))
        r = send(self._session, "GET", self.result_url, stream=True, timeout=read)
        buf = io.BytesIO()
        try:
            for chunk in r.iter_content(1 << 20):
                buf.write(chunk)
                if deadline is not None and time.monotonic() > deadline:
                    raise QueryTimeout(f"downloading the result of job {self.id} took longer"
                                       f" than the {timeout:g} s left")
        finally:
            r.close()
        return buf.getvalue()

    # --- display -----------------------------------------------------------------------
    def _row(self) -> list[str]:
        phase = self._summary.phase if self._summary is not None else "?"
        created = self.created
        return [self.id, phase or "", "" if created is None else str(created),
                "" if self.rows is None else str(self.rows), self._query or ""]

    def __repr__(self) -> str:
        phase = self._summary.phase if self._summary is not None else "unknown phase"
        return f"<Job {self.id} {phase} at {self.url}>"

    def _repr_html_(self) -> str:
        row = self._row()
        return ("<p><b>Job</b> " + html.escape(row[0]) + " <code>" + html.escape(row[1])
                + "</code> " + html.escape(row[2]) + "<br><code>"
                + html.escape(self._query or "") + "</code></p>")


class _Listed:
    """The part of a UWS job summary a JSON listing entry gives (no parameters, so
    anything more fetches the job document)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.jobid = data.get("id")
        self.phase = data.get("phase")
        self.runid = data.get("run_id")
        self.creationtime = data.get("created")


__all__ = ["Job", "FINAL"]
