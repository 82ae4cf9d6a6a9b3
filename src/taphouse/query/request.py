"""A query request: the DALI/TAP parameters that matter, validated and normalised
(:class:`QuerySpec`), as sync requests send them and async jobs store them."""

from __future__ import annotations

from dataclasses import dataclass, field

from taphouse.adql import AdqlError
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import check_name
from taphouse.formats import FormatError, get_writer
from taphouse.query.errors import QueryError
from taphouse.settings import Settings

LANGS = {"adql", "adql-2.0", "adql-2.1"}


@dataclass
class QuerySpec:
    """A validated query request (the parameters that matter, normalised)."""

    query: str
    maxrec: int
    responseformat: str = "votable"
    uploads: list[tuple[str, str]] = field(default_factory=list)  # (table name, URI)
    runid: str | None = None
    dest: str | None = None
    dest_mode: str = "create"

    def to_params(self) -> dict[str, str]:
        out = {"LANG": "ADQL", "QUERY": self.query, "MAXREC": str(self.maxrec),
               "RESPONSEFORMAT": self.responseformat}
        if self.uploads:
            out["UPLOAD"] = ";".join(f"{n},{u}" for n, u in self.uploads)
        if self.runid:
            out["RUNID"] = self.runid
        if self.dest:
            out["DEST"] = self.dest
            out["DEST_MODE"] = self.dest_mode
        return out


def parse_query_spec(values: dict[str, str], settings: Settings, *,
                     require_query: bool = True) -> QuerySpec:
    """Validate DALI/TAP parameters (``values`` keyed lower-case)."""
    lang = values.get("lang")
    if lang is None and require_query:
        raise QueryError("missing parameter LANG (use LANG=ADQL)")
    if lang is not None and lang.strip().lower() not in LANGS:
        raise QueryError(f"unsupported LANG {lang!r}: this service speaks ADQL, ADQL-2.0, ADQL-2.1")
    query = values.get("query")
    if (query is None or not query.strip()) and require_query:
        raise QueryError("missing parameter QUERY")
    if query is not None and len(query) > settings.query_max_chars:
        raise QueryError(f"QUERY has {len(query)} characters; the limit is"
                       f" {settings.query_max_chars}: upload long value lists as a table"
                       " (UPLOAD) and join with it")
    maxrec_text = values.get("maxrec")
    if maxrec_text is None or maxrec_text.strip() == "":
        maxrec = settings.maxrec_default
    else:
        try:
            maxrec = int(maxrec_text)
        except ValueError:
            raise QueryError(f"MAXREC must be a non-negative integer, not {maxrec_text!r}") from None
        if maxrec < 0:
            raise QueryError(f"MAXREC must be a non-negative integer, not {maxrec_text!r}")
        maxrec = min(maxrec, settings.maxrec_limit)
    fmt = values.get("responseformat") or values.get("format") or "votable"
    try:
        get_writer(fmt)
    except FormatError as exc:
        raise QueryError(str(exc)) from None
    uploads = parse_upload_param(values.get("upload"))
    dest = values.get("dest") or None
    dest_mode = (values.get("dest_mode") or "create").lower()
    if dest_mode not in {"create", "replace", "append"}:
        raise QueryError(f"DEST_MODE must be create, replace or append, not {dest_mode!r}")
    return QuerySpec(query=query or "", maxrec=maxrec, responseformat=fmt, uploads=uploads,
                     runid=values.get("runid"), dest=dest, dest_mode=dest_mode)


_METADATA_QUERY_CHARS = 4000


def reads_only_metadata(spec: QuerySpec) -> bool:
    """Whether a query reads TAP_SCHEMA and nothing else (no catalogue table, upload or
    DEST): such queries are admitted apart from data queries, so that browsing the
    metadata never waits behind them. Decided from the parsed query (cheap for the short
    texts clients send; longer ones count as data queries)."""
    if spec.uploads or spec.dest or len(spec.query) > _METADATA_QUERY_CHARS \
            or "tap_schema" not in spec.query.lower():
        return False  # (decided without parsing: this runs on the event loop)
    from sqlglot import exp

    from taphouse.adql import parse

    try:
        tree = parse(spec.query)
    except AdqlError:
        return False
    tables = list(tree.find_all(exp.Table))
    return bool(tables) and all(t.db.lower() == "tap_schema" for t in tables)


def check_dest_scope(identity: Identity, values: dict[str, str]) -> None:
    """``DEST`` writes a table: refuse it to credentials without the ``write`` scope
    (a read-only token). Checked when a request names DEST, because an async job runs
    later with its owner's full rights."""
    if values.get("dest") and not identity.anonymous:
        from taphouse.auth.authenticator import require_scope

        require_scope(identity, "write")
    check_upload_sources(identity, values.get("upload"))


def check_upload_sources(identity: Identity, upload: str | None) -> None:
    """Code in a compute sandbox (a job or notebook token, ``Identity.method`` "sandbox")
    reaches the platform's API and nothing else: it may not make the server fetch a URL
    for it (UPLOAD=t,http...). Checked when a request names UPLOAD, like DEST, because an
    async job runs later with its owner's identity, not the sandbox's."""
    from taphouse.auth.authenticator import SANDBOX_METHOD

    if identity.method != SANDBOX_METHOD or not upload:
        return
    for name, uri in parse_upload_param(upload):
        if not uri.startswith("param:"):
            raise QueryError(f"UPLOAD {name}: code in a sandbox may upload only tables it"
                             " sends with the request (param:NAME), not fetch a URL", 403)


def parse_upload_param(text: str | None) -> list[tuple[str, str]]:
    """``UPLOAD=name,uri;name2,uri2`` -> [(name, uri), ...] with names checked."""
    if not text:
        return []
    result = []
    for item in text.split(";"):
        if not item.strip():
            continue
        name, sep, uri = item.partition(",")
        if not sep or not uri.strip():
            raise QueryError(f"bad UPLOAD item {item!r}: expected NAME,URI (e.g. t1,param:t1)")
        try:
            lname = check_name(name.strip(), "upload table")
        except Exception as exc:
            raise QueryError(str(exc)) from None
        result.append((lname, uri.strip()))
    return result
