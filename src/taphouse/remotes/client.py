"""A client for one remote TAP service, over :mod:`taphouse.outbound` only.

Every URL it fetches (the registered base, job locations and result links the remote
returns) passes the outbound guard; credentials (request headers given by the caller)
are sent only to the registered origin (scheme, host and port), never to a URL the
remote points elsewhere. Connection failures are retried with backoff; every error
names the remote and quotes its own message when it sent one.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urljoin, urlsplit

from taphouse.outbound import Fetched, Outbound, OutboundError
from taphouse.remotes.answers import RemoteAnswer, cut_to, read_answer
from taphouse.remotes.errors import (
    RemoteError,
    RemoteQueryFailed,
    RemoteUnavailable,
)
from taphouse.remotes.model import Capabilities, RemoteColumn, RemoteTable
from taphouse.remotes.vosi import (
    MetadataLimits,
    clean,
    local,
    parse_capabilities,
    parse_tableset,
    parse_xml,
    split_name,
    unquote,
)

log = logging.getLogger("taphouse.remotes")

VOTABLE = "votable"
BINARY2 = "application/x-votable+xml;serialization=BINARY2"
PARQUET = "parquet"
_XLINK = "{http://www.w3.org/1999/xlink}href"
#: A run of this many characters of a credential is redacted wherever it stands.
_RUN = 10
_FINAL = {"COMPLETED", "ERROR", "ABORTED"}
#: The most bytes of a UWS job document (and of the answers to creating, starting and
#: deleting a job): a few kB in practice, the echoed query included (at most
#: query_max_chars); a remote's 150 MB job document, read at every poll, made the
#: server hold 1.4 GB and kept a query with a 3 s time limit for 50 s.
JOB_MAX_BYTES = 5 * 1024**2


_F = TypeVar("_F", bound=Callable[..., Any])


def _redacted(method: _F) -> _F:
    """A method of :class:`RemoteTap` whose errors are redacted (see ``redacting``)."""
    @functools.wraps(method)
    def wrapper(self: RemoteTap, *args: Any, **kwargs: Any) -> Any:
        with self.redacting():
            return method(self, *args, **kwargs)

    return cast(_F, wrapper)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of requests that failed to connect or lost their connection."""

    attempts: int = 3  # in all, the first included
    backoff: float = 0.5  # seconds before the first retry; doubles each time


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL: where credentials may go."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower().rstrip("."), parts.port or (
        443 if scheme == "https" else 80)


class RemoteTap:
    """One remote TAP service.

    Parameters
    ----------
    name
        The registered name, used in every message.
    url
        The service's base URL (``.../tap``).
    outbound
        The guarded HTTP client; its policy holds this remote's timeout and size limit.
    credentials
        Headers that authenticate to the remote (``Authorization``), sent only to the
        origin of ``url``.
    retry
        Retries on connection failures.
    query_timeout
        Seconds an async query may take on the remote in all (it is deleted after).
    """

    def __init__(self, name: str, url: str, outbound: Outbound, *,
                 credentials: Mapping[str, str] | None = None,
                 retry: RetryPolicy = RetryPolicy(), query_timeout: float = 600.0,
                 sleep: Callable[[float], None] = time.sleep,
                 maxrec_hard: int | None = None) -> None:
        self.name = name
        #: The remote's advertised MAXREC hard limit (never asked past), if known.
        self.maxrec_hard = maxrec_hard
        self.url = url.rstrip("/")
        self.outbound = outbound
        self._credentials = dict(credentials or {})
        self._secret_texts = _secret_texts(self._credentials.values())
        self._grams = {t[i:i + _RUN] for t in self._secret_texts
                       for i in range(len(t) - _RUN + 1)}
        self.retry = retry
        self.query_timeout = query_timeout
        self._sleep = sleep
        self._origin = origin(self.url)

    def __repr__(self) -> str:  # never shows credentials
        return f"RemoteTap({self.name!r}, {self.url!r})"

    def redact(self, text: str) -> str:
        """``text`` without this remote's credentials (in any form the remote saw), nor
        any run of :data:`_RUN` characters of one: an echo cut by an excerpt's length
        limit, or with its ``=`` padding escaped, is not the whole credential."""
        for secret in self._secret_texts:
            text = text.replace(secret, "********")
        grams = self._grams
        if not grams or len(text) < _RUN:
            return text
        covered = [False] * len(text)
        for i in range(len(text) - _RUN + 1):
            if text[i:i + _RUN] in grams:
                covered[i:i + _RUN] = [True] * _RUN
        if not any(covered):
            return text
        out, i = [], 0
        while i < len(text):
            if covered[i]:
                while i < len(text) and covered[i]:
                    i += 1
                out.append("********")
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    @contextmanager
    def redacting(self) -> Iterator[None]:
        """Errors raised inside never quote this remote's credentials: a remote may echo
        the Authorization header it received in the error message it sends back, and that
        message reaches users and logs. (The public methods apply it themselves.)"""
        try:
            yield
        except RemoteError as exc:
            if self._secret_texts:
                exc.message = self.redact(exc.message)
                exc.args = (exc.message,)
            raise

    # --- HTTP --------------------------------------------------------------------------
    def _headers(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._credentials and origin(url) == self._origin:
            headers.update(self._credentials)
        return headers

    def fetch(self, url: str, *, method: str = "GET", form: Mapping[str, str] | None = None,
              what: str, max_bytes: int | None = None, retry: bool = True,
              files: Mapping[str, bytes] | None = None) -> Fetched:
        """One request to the remote (guarded, retried on connection failures); raises
        :class:`RemoteUnavailable` naming the remote. ``files`` (VOTable documents by
        part name) make it a multipart/form-data request (TAP_UPLOAD)."""
        body = None
        extra: dict[str, str] = {}
        if files:
            body, extra["Content-Type"] = multipart(form or {}, files)
        elif form is not None:
            body = urlencode(form).encode()
            extra["Content-Type"] = "application/x-www-form-urlencoded"
        attempts = self.retry.attempts if retry else 1
        delay = self.retry.backoff
        for attempt in range(1, attempts + 1):
            try:
                return self.outbound.fetch(url, method=method, body=body,
                                           headers=self._headers(url, extra),
                                           max_bytes=max_bytes)
            except OutboundError as exc:
                if exc.retryable and attempt < attempts:
                    log.info("remote %s: %s failed (%s); retry %d in %.1f s", self.name,
                             what, exc.message, attempt, delay)
                    self._sleep(delay)
                    delay *= 2
                    continue
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise RemoteUnavailable(f"remote {self.name!r}: {what} failed{tries}:"
                                        f" {exc.message}", retryable=exc.retryable) from None
        raise AssertionError("unreachable")

    def _ok(self, fetched: Fetched, what: str) -> Fetched:
        if fetched.status >= 400:
            detail = _error_text(fetched.body)
            error = RemoteUnavailable(f"remote {self.name!r}: {what} answered HTTP"
                                      f" {fetched.status}" + (f": {detail}" if detail else ""))
            error.http_status = fetched.status
            raise error
        return fetched

    # --- metadata ----------------------------------------------------------------------
    @_redacted
    def capabilities(self, max_bytes: int = 5 * 1024**2) -> Capabilities:
        """The VOSI capabilities; :class:`RemoteUnavailable` if this is no TAP service."""
        url = self.url + "/capabilities"
        what = f"remote {self.name!r}: {url}"
        fetched = self._ok(self.fetch(url, what="GET capabilities", max_bytes=max_bytes),
                           "GET capabilities")
        return parse_capabilities(fetched.body, what)

    @_redacted
    def tableset(self, limits: MetadataLimits, max_bytes: int) -> list[RemoteTable]:
        """The tables of the VOSI ``/tables`` document."""
        url = self.url + "/tables"
        fetched = self._ok(self.fetch(url, what="GET tables", max_bytes=max_bytes),
                           "GET tables")
        return parse_tableset(fetched.body, f"remote {self.name!r}: {url}", limits)

    @_redacted
    def tap_schema(self, limits: MetadataLimits, max_bytes: int) -> list[RemoteTable]:
        """The tables and columns of the remote's TAP_SCHEMA (two sync queries)."""
        tables_q = ("SELECT schema_name, table_name, table_type, description"
                    " FROM TAP_SCHEMA.tables")
        columns_q = ("SELECT table_name, column_name, datatype, arraysize, xtype, unit,"
                     " ucd, utype, description, principal, indexed, std"
                     " FROM TAP_SCHEMA.columns")
        cap = limits.max_tables + 1
        tables = self.query_sync(tables_q, maxrec=cap, max_bytes=max_bytes).require_complete()
        if tables.rows > limits.max_tables:
            raise RemoteUnavailable(f"remote {self.name!r} has more than"
                                    f" {limits.max_tables} tables: more than this platform"
                                    " keeps")
        out: dict[str, RemoteTable] = {}
        for row in tables.table.to_pylist():
            schema = clean(_text(row.get("schema_name")), limits.max_name)
            qualified = clean(_text(row.get("table_name")), limits.max_name)
            if not qualified:
                continue
            schema_name, table_name = split_name(qualified, schema)
            out[qualified.lower()] = RemoteTable(
                schema=schema_name, name=table_name,
                description=clean(_text(row.get("description")), limits.max_text),
                table_type=clean(_text(row.get("table_type")), 40) or "table")
        columns = self.query_sync(columns_q, maxrec=limits.max_tables * limits.max_columns,
                                  max_bytes=max_bytes).require_complete()
        for row in columns.table.to_pylist():
            table = out.get((_text(row.get("table_name")) or "").lower())
            name = clean(_text(row.get("column_name")), limits.max_name)
            if table is None or not name or not unquote(name):
                continue
            name = unquote(name)
            if len(table.columns) >= limits.max_columns:
                raise RemoteUnavailable(f"remote {self.name!r}: table {table.name!r} has"
                                        f" more than {limits.max_columns} columns")
            table.columns.append(RemoteColumn(
                name=name, datatype=clean(_text(row.get("datatype")), 40),
                arraysize=clean(_text(row.get("arraysize")), 40),
                xtype=clean(_text(row.get("xtype")), 80),
                unit=clean(_text(row.get("unit")), 80), ucd=clean(_text(row.get("ucd")), 200),
                utype=clean(_text(row.get("utype")), 200),
                description=clean(_text(row.get("description")), limits.max_text),
                principal=_flag(row.get("principal")), indexed=_flag(row.get("indexed")),
                std=_flag(row.get("std"))))
        return list(out.values())

    # --- queries -----------------------------------------------------------------------
    def _params(self, adql: str, maxrec: int | None, fmt: str,
                uploads: Mapping[str, bytes] | None = None) -> dict[str, str]:
        params = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql,
                  "RESPONSEFORMAT": fmt}
        if maxrec is not None:
            params["MAXREC"] = str(int(maxrec))
        if uploads:
            params["UPLOAD"] = ";".join(f"{name},param:{name}" for name in uploads)
        return params

    def _ask(self, maxrec: int | None) -> int | None:
        """The MAXREC sent for ``maxrec`` rows: one more, so that an answer cut at
        exactly ``maxrec`` without an OVERFLOW status shows it (:func:`cut_to`); not
        past the remote's hard limit (there, callers use :func:`suspect_cut`)."""
        if maxrec is None or maxrec <= 0 or (self.maxrec_hard is not None
                                             and maxrec >= self.maxrec_hard):
            return maxrec
        return maxrec + 1

    @_redacted
    def query_sync(self, adql: str, *, maxrec: int | None = None, fmt: str = VOTABLE,
                   max_bytes: int | None = None,
                   uploads: Mapping[str, bytes] | None = None) -> RemoteAnswer:
        """Run ``adql`` on the remote's ``/sync`` endpoint; the answer keeps OVERFLOW.
        ``uploads``: TAP_UPLOAD tables (VOTable documents by table name), sent inline."""
        start = time.monotonic()
        url = self.url + "/sync"
        ask = self._ask(maxrec)
        fetched = self.fetch(url, method="POST", form=self._params(adql, ask, fmt, uploads),
                             what="a synchronous query", max_bytes=max_bytes, files=uploads)
        if fetched.status in (404, 405, 501):  # no sync endpoint: an async-only service
            self._ok(fetched, "a synchronous query")
        answer = cut_to(self._answer(adql, fetched, "the synchronous query", ask), maxrec)
        answer.seconds = time.monotonic() - start
        return answer

    @_redacted
    def query_async(self, adql: str, *, maxrec: int | None = None, fmt: str = VOTABLE,
                    max_bytes: int | None = None, timeout: float | None = None,
                    cancelled: Callable[[], bool] | None = None,
                    poll: float = 10.0,
                    uploads: Mapping[str, bytes] | None = None) -> RemoteAnswer:
        """Run ``adql`` as a UWS job on the remote: create and start it, wait for it
        (UWS 1.1 blocking polls of at most ``poll`` seconds), fetch its result, delete
        it. ``cancelled()`` is asked between polls: true aborts and deletes the job.
        ``uploads`` as for :meth:`query_sync`."""
        start = time.monotonic()
        limit = self.query_timeout if timeout is None else timeout
        deadline = start + limit
        ask = self._ask(maxrec)
        params = self._params(adql, ask, fmt, uploads) | {"PHASE": "RUN"}
        created = self.fetch(self.url + "/async", method="POST", form=params,
                             what="creating an async job", retry=True, files=uploads,
                             max_bytes=JOB_MAX_BYTES)
        if created.status >= 400:
            self._raise_document(adql, created, "creating an async job")
        job_url = created.url
        if job_url.rstrip("/") == self.url + "/async":
            raise RemoteUnavailable(f"remote {self.name!r}: creating an async job did not"
                                    " redirect to the job (no job URL)")
        try:
            job = self._job(job_url, 0)
            if job.phase in ("PENDING", "HELD"):
                # Not started by PHASE=RUN at creation (some services ignore it).
                self._ok(self.fetch(job_url + "/phase", method="POST",
                                    form={"PHASE": "RUN"}, what="starting the job",
                                    max_bytes=JOB_MAX_BYTES), "starting the job")
            while job.phase not in _FINAL:
                if cancelled is not None and cancelled():
                    raise RemoteError(f"the query on remote {self.name!r} was cancelled")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RemoteUnavailable(
                        f"remote {self.name!r} did not finish the query within {limit:g}"
                        " seconds; the job there was deleted")
                wait = max(1, int(min(poll, left)))
                job = self._job(job_url, wait, job.phase)
            if job.phase == "ERROR":
                self._job_error(adql, job_url, job)
            if job.phase == "ABORTED":
                raise RemoteQueryFailed(f"remote {self.name!r} aborted the query")
            result_url = job.result_url or job_url + "/results/result"
            fetched = self.fetch(result_url, what="fetching the result", max_bytes=max_bytes)
            answer = cut_to(self._answer(adql, fetched, "the result", ask), maxrec)
            answer.mode, answer.job_url = "async", job_url
            answer.seconds = time.monotonic() - start
            return answer
        finally:
            self._delete(job_url)

    def _job(self, job_url: str, wait: int, phase: str | None = None) -> _Job:
        url = job_url
        if wait:
            url += "?" + urlencode({"WAIT": wait} | ({"PHASE": phase} if phase else {}))
        fetched = self._ok(self.fetch(url, what="reading the job", max_bytes=JOB_MAX_BYTES),
                           "reading the job")
        return _parse_job(fetched.body, job_url, f"remote {self.name!r}: job {job_url}")

    def _job_error(self, adql: str, job_url: str, job: _Job) -> None:
        message = job.error
        try:
            fetched = self.fetch(job_url + "/error", what="reading the job's error",
                                 max_bytes=1024**2, retry=False)
            if fetched.status < 400:
                self._answer(adql, fetched, "the job's error")
        except RemoteQueryFailed:
            raise
        except RemoteError:
            pass
        raise RemoteQueryFailed(f"remote {self.name!r} reported an error: "
                                f"{clean(message, 2000) or '(no message)'}")

    def _delete(self, job_url: str) -> None:
        try:
            self.fetch(job_url, method="POST", form={"ACTION": "DELETE"},
                       what="deleting the job", retry=False, max_bytes=JOB_MAX_BYTES)
        except RemoteError as exc:  # the remote destroys it later by itself
            log.info("remote %s: could not delete job %s: %s", self.name, job_url, exc)

    def _answer(self, adql: str, fetched: Fetched, what: str,
                maxrec: int | None = None) -> RemoteAnswer:
        if fetched.status >= 400:
            self._raise_document(adql, fetched, what)
        return read_answer(self.name, adql, fetched.body, fetched.content_type,
                           f"remote {self.name!r}: {what}", maxrec)

    def _raise_document(self, adql: str, fetched: Fetched, what: str) -> None:
        """An HTTP error with a DALI error document quotes the remote's message."""
        body = fetched.body
        if body.lstrip()[:1] == b"<" and b"QUERY_STATUS" in body:
            read_answer(self.name, adql, body, fetched.content_type,
                        f"remote {self.name!r}: {what}")
        detail = _error_text(body)
        raise RemoteQueryFailed(f"remote {self.name!r}: {what} answered HTTP"
                                f" {fetched.status}" + (f": {detail}" if detail else ""))


@dataclass
class _Job:
    phase: str
    error: str | None
    result_url: str | None


def _parse_job(body: bytes, job_url: str, what: str) -> _Job:
    root = parse_xml(body, what)
    if local(root.tag) != "job":
        raise RemoteUnavailable(f"{what} is not a UWS job document")
    phase, error, result = None, None, None
    for child in root:
        name = local(child.tag)
        if name == "phase":
            phase = (child.text or "").strip().upper()
        elif name == "errorSummary":
            for sub in child:
                if local(sub.tag) == "message":
                    error = sub.text
        elif name == "results":
            for res in child:
                href = res.get(_XLINK)
                if href and (res.get("id") == "result" or result is None):
                    result = urljoin(job_url + "/", href)
    if not phase:
        raise RemoteUnavailable(f"{what} has no phase")
    return _Job(phase, error, result)


def multipart(form: Mapping[str, str], files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body (and its Content-Type) of form fields and VOTable
    files (TAP_UPLOAD inline: each file's part name is the one ``UPLOAD`` names)."""
    import secrets

    boundary = "taphouse-" + secrets.token_hex(16)
    out = bytearray()
    for name, value in form.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                f"\r\n\r\n").encode() + value.encode() + b"\r\n"
    for name, data in files.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}";'
                f' filename="{name}.vot"\r\nContent-Type: application/x-votable+xml'
                "\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _secret_texts(values: Iterable[str]) -> list[str]:
    """The forms a credential header value can be quoted in: whole, its token, and for
    Basic the decoded ``user:password`` and the password (longest first)."""
    out: set[str] = set()
    for value in values:
        out.add(value)
        scheme, _, token = value.partition(" ")
        if token:
            out.add(token)
        if scheme.lower() == "basic" and token:
            try:
                pair = base64.b64decode(token, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                continue
            out.add(pair)
            password = pair.partition(":")[2]
            if len(password) >= 4:
                out.add(password)
    return sorted((t for t in out if len(t) >= 4), key=len, reverse=True)


def _error_text(body: bytes) -> str | None:
    """A short plain-text excerpt of an error body (markup removed)."""
    import re

    text = body[:4000].decode("utf-8", "replace")
    text = re.sub(r"<[^>]*>", " ", text)
    return clean(" ".join(text.split()), 300)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _flag(value: object) -> bool:
    try:
        return bool(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return str(value).strip().lower() in ("true", "t")


__all__ = ["RemoteTap", "RetryPolicy", "origin", "multipart", "VOTABLE", "BINARY2", "PARQUET"]
