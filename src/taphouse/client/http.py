"""HTTP plumbing: a requests session with retries on idempotent requests only, and the
mapping of error answers (JSON ``{"error": ...}`` or DALI error VOTables) to exceptions."""

from __future__ import annotations

import io
import re
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from taphouse.client.errors import (
    AuthError,
    ClientError,
    NotFoundError,
    QueryError,
    ServerError,
)

#: Requests that may be repeated after a transient failure. A POST (a new job, a phase
#: change, a login) or a PUT (a table write) is never re-sent after it may have reached
#: the server; a refused connection is retried for any method, as nothing was sent.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})

_AT = re.compile(r"\(at line (\d+)(?:, column (\d+))?\)\s*$")

#: Sent with every request: the server accepts a request that changes something on
#: /api and /auth only with a JSON body or this header, which a web page on another
#: site cannot make a browser send (a defence against cross-site request forgery).
CLIENT_HEADER = "X-Taphouse"


def new_session(retries: int = 4, backoff: float = 0.5, user_agent: str = "") -> requests.Session:
    """A session whose adapter retries idempotent requests with exponential backoff.

    Parameters
    ----------
    retries
        How often a transient failure (refused or reset connection, HTTP 502/503/504)
        is retried.
    backoff
        First delay in seconds; it doubles with each retry.
    """
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                  backoff_factor=backoff, status_forcelist=(502, 503, 504),
                  allowed_methods=IDEMPOTENT, raise_on_status=False,
                  respect_retry_after_header=True)
    session = requests.Session()
    session.headers[CLIENT_HEADER] = "client"
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if user_agent:
        session.headers["User-Agent"] = f"{user_agent} {session.headers['User-Agent']}"
    return session


def send(session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    """One request; network failures become :class:`ServerError`, error answers the
    matching :class:`ClientError`."""
    try:
        response = session.request(method, url, **kwargs)
    except requests.Timeout as exc:
        raise ServerError(f"{method} {url} timed out: {exc}") from exc
    except requests.RequestException as exc:
        raise ServerError(f"cannot reach {url}: {exc}") from exc
    if response.status_code >= 400:
        raise error_from_response(response)
    return response


def error_from_response(response: requests.Response, query: str | None = None) -> ClientError:
    """The exception for an error answer, carrying the server's message."""
    status = response.status_code
    message, infos = _error_message(response)
    where = f" ({response.request.method} {response.url})" if response.request else ""
    if not message:
        message = f"HTTP {status} {response.reason or ''}".strip() + where
    if status == 401 or status == 403:
        return AuthError(message, status=status)
    if status == 429:
        retry = response.headers.get("Retry-After")
        return AuthError(message + (f" (retry after {retry} s)" if retry else ""), status=status)
    if status == 404:
        return NotFoundError(message, status=status)
    if status >= 500:
        return ServerError(message, status=status)
    if infos is not None:
        return query_error(message, infos, query=query, status=status)
    return ClientError(message, status=status)


def query_error(message: str, infos: dict[str, str], *, query: str | None = None,
                status: int | None = None, job_id: str | None = None) -> QueryError:
    """A :class:`QueryError` from a DALI error document's message and INFOs."""
    line = _int(infos.get("ERROR_LINE"))
    column = _int(infos.get("ERROR_COLUMN"))
    m = _AT.search(message)
    if m:
        message = message[: m.start()].rstrip()
        line = line or _int(m.group(1))
        column = column or _int(m.group(2))
    return QueryError(message, query=query or infos.get("QUERY"), line=line, column=column,
                      status=status, job_id=job_id)


def votable_infos(content: bytes) -> tuple[str, dict[str, str]] | None:
    """``(QUERY_STATUS message, {INFO name: value})`` of a VOTable error document, or
    None if ``content`` is not a VOTable."""
    from astropy.io.votable import parse

    head = content[:2048].lstrip()
    if not (head.startswith(b"<?xml") or head.startswith(b"<VOTABLE")):
        return None
    try:
        import warnings

        from taphouse.client.output import refuse_stream_href

        refuse_stream_href(content)  # astropy would open the link (raised: raw text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vot = parse(io.BytesIO(content), verify="ignore")
    except Exception:  # not a parseable VOTable: report the raw text instead
        return None
    infos: dict[str, str] = {}
    message = ""
    for info in _all_infos(vot):
        infos[info.name] = info.value
        if info.name == "QUERY_STATUS":
            message = (info.content or "").strip() or message
    return message, infos


def _all_infos(vot: Any) -> list[Any]:
    out = list(getattr(vot, "infos", []))
    for res in vot.resources:
        out.extend(res.infos)
    return out


def _error_message(response: requests.Response) -> tuple[str, dict[str, str] | None]:
    ctype = response.headers.get("Content-Type", "")
    content = response.content or b""
    if "json" in ctype:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            msg = body.get("error") or body.get("detail") or body.get("message")
            if msg:
                return str(msg), None
    parsed = votable_infos(content)
    if parsed is not None:
        return parsed
    text = content.decode("utf-8", "replace").strip()
    return text[:2000], None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


__all__ = ["new_session", "send", "error_from_response", "query_error", "votable_infos",
           "IDEMPOTENT"]
