"""Running a federated plan: choosing the join by size, shipping the local side in
blocks (an OVERFLOW halves the block, never joins silently), or pulling the remote side
once; the fetched rows become per-request tables for the local part.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from taphouse.adql.errors import AdqlError
from taphouse.catalogue.model import ColumnMeta, TableMeta, position_columns
from taphouse.federation.planner import (
    BLOCK_TABLE,
    KEY,
    LOCAL_TABLE,
    ONE,
    REMOTE_TABLE,
    FederatedPlan,
)
from taphouse.remotes.answers import RemoteAnswer, suspect_cut
from taphouse.remotes.client import RemoteTap
from taphouse.remotes.errors import RemoteQueryFailed, RemoteUnavailable
from taphouse.remotes.model import UPLOAD_INLINE

#: Blocks of at most this many rows go to the remote's /sync endpoint; larger ones run
#: as async jobs (the remote's request timeout would cut a long sync request).
SYNC_BLOCK_ROWS = 10_000
#: MAXREC asked for a block when the remote advertises no hard limit.
BLOCK_MAXREC = 1_000_000


class FederationError(AdqlError):
    """A federated join cannot run as asked; the message says which side and why (an
    ADQL error: the query's own, status 400)."""


@dataclass(frozen=True)
class FederationLimits:
    """The operator's limits on federated joins (see docs/settings.md)."""

    pull_max_rows: int = 100_000
    upload_max_rows: int = 1_000_000
    block_rows: int = 50_000
    max_requests: int = 1000
    trusted: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: object) -> FederationLimits:
        return cls(pull_max_rows=int(getattr(settings, "federation_pull_max_rows", 100_000)),
                   upload_max_rows=int(getattr(settings, "federation_upload_max_rows",
                                               1_000_000)),
                   block_rows=int(getattr(settings, "federation_block_rows", 50_000)),
                   max_requests=int(getattr(settings, "federation_max_requests", 1000)),
                   trusted=tuple(getattr(settings, "federation_trusted", ())))


@dataclass
class FederationStats:
    """What a federated join shipped and received (INFOs of the answer, the bench)."""

    strategy: str = ""
    blocks: int = 0
    halvings: int = 0
    rows_uploaded: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    remote_rows: int = 0
    remote_queries: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def infos(self) -> list[tuple[str, str]]:
        out = [("FEDERATION", self.strategy), ("REMOTE_ROWS", str(self.remote_rows)),
               ("BYTES_SENT", str(self.bytes_sent)),
               ("BYTES_RECEIVED", str(self.bytes_received))]
        if self.strategy == "upload":
            out += [("UPLOAD_ROWS", str(self.rows_uploaded)), ("UPLOAD_BLOCKS", str(self.blocks)),
                    ("UPLOAD_HALVINGS", str(self.halvings))]
        if self.remote_queries:
            out.append(("REMOTE_QUERY", self.remote_queries[0]))
        return out


@dataclass
class FederatedRows:
    """The fetched rows of a federated join, as the local part reads them."""

    adql: str  # the local part's ADQL (over TAP_UPLOAD tables)
    tables: dict[str, tuple[pa.Table, TableMeta]]
    stats: FederationStats


#: ``read_local(adql, max_rows)``: the rows and columns of a local ADQL query (at most
#: ``max_rows + 1``, so that a caller sees there are more).
ReadLocal = Callable[[str, int], tuple[pa.Table, list[ColumnMeta]]]


def choose_strategy(plan: FederatedPlan, limits: FederationLimits) -> str:
    """``upload`` or ``pull`` from the sizes known before anything runs (recorded in
    ``plan.estimates``); raises :class:`FederationError` when neither can work."""
    caps = plan.remote.capabilities
    remote_table = plan.remote_side.remote
    assert remote_table is not None
    remote_rows = remote_table.nrows
    side = plan.upload_side
    local_rows = side.local.nrows if side is not None and side.local is not None else None
    accepts = UPLOAD_INLINE in caps.upload_methods
    # The table's row count bounds the side from above; its own WHERE terms may leave
    # few enough rows to ship (counted when it is read, :func:`run_plan`).
    local_over = local_rows is not None and local_rows > limits.upload_max_rows
    why_not = None
    if side is None:
        why_not = "no local table meets the remote table in a join condition"
    elif not accepts:
        why_not = f"remote {plan.remote.name!r} accepts no uploads"
    elif plan.upload_refused:
        why_not = plan.upload_refused
    elif local_over and not plan.local_terms:
        why_not = (f"{side.label()} has {local_rows} rows, more than the"
                   f" {limits.upload_max_rows} this service uploads")
    block = _block_rows(plan, limits)
    plan.estimates = {"local_rows": local_rows, "remote_rows": remote_rows,
                      "remote_maxrec": caps.maxrec_hard, "upload_block_rows": block,
                      "pull_max_rows": limits.pull_max_rows}
    if local_over and plan.local_terms:
        plan.estimates["local_rows_after_terms"] = (
            f"at most {local_rows}; more than {limits.upload_max_rows} is refused when read")
    small_remote = remote_rows is not None and remote_rows <= limits.pull_max_rows
    if why_not is None and not (small_remote and local_rows is not None
                                and remote_rows is not None and remote_rows <= local_rows):
        plan.estimates |= {"strategy": "upload",
                           "upload_blocks": -(-(local_rows or 0) // block) if local_rows
                           is not None else None}
        return "upload"
    plan.estimates["upload_not_possible"] = why_not
    if small_remote or remote_rows is None or plan.remote_terms:
        plan.estimates["strategy"] = "pull"
        return "pull"
    assert remote_table is not None
    raise FederationError(
        f"the remote side is too large: {plan.remote.name}.{remote_table.schema}."
        f"{remote_table.name} has about {remote_rows} rows (this service fetches at most"
        f" {limits.pull_max_rows} from a remote), and the local side cannot be shipped"
        f" there instead ({why_not}). Narrow the remote side with a WHERE term on its"
        " own columns (a region: CONTAINS(POINT(r.ra, r.dec), CIRCLE(...)), a magnitude"
        " cut)" + (f" or the local side with a WHERE term on its columns (to at most"
                   f" {limits.upload_max_rows} rows)" if local_over and accepts
                   and not plan.upload_refused else " or join a smaller local table"))


def run_plan(plan: FederatedPlan, strategy: str, client: RemoteTap, read_local: ReadLocal,
             limits: FederationLimits, *, cancelled: Callable[[], bool] | None = None,
             max_bytes: int | None = None) -> FederatedRows:
    """Run the remote part of ``plan`` (and, for an upload join, read the local side
    first); the answer's tables are registered for the local part. An upload the remote
    refuses at its first block turns into a pull when its side may be fetched."""
    stats = FederationStats(strategy=strategy)
    start = time.monotonic()
    runner = _Remote(client, plan, stats, cancelled, max_bytes, limits.max_requests)
    tables: dict[str, tuple[pa.Table, TableMeta]] = {}
    if strategy == "upload":
        side = plan.upload_side
        assert side is not None
        local, local_cols = read_local(plan.local_adql(), limits.upload_max_rows)
        if local.num_rows > limits.upload_max_rows:
            raise FederationError(
                f"the local side is too large: {side.label()} has more than"
                f" {limits.upload_max_rows} rows after its own WHERE terms (this service"
                f" ships at most {limits.upload_max_rows} to a remote). Narrow it with a"
                " WHERE term on its columns")
        local = local.append_column(KEY, pa.array(range(local.num_rows), pa.int64()))
        local_cols = [*local_cols, ColumnMeta(KEY, "long")]
        tables[LOCAL_TABLE] = (local, _meta(LOCAL_TABLE, local_cols, local.num_rows))
        upload_names = [KEY, *plan.upload_columns()]
        shipped = local.select(upload_names)
        shipped_cols = [next(c for c in local_cols if c.name == n) for n in upload_names]
        remote_cols = plan.remote_columns(plan.residual("upload"))
        adql = plan.upload_adql()
        try:
            answers = runner.upload_join(adql, shipped, shipped_cols,
                                         _block_rows(plan, limits))
        except RemoteQueryFailed as exc:
            if stats.blocks or not _pullable(plan, limits):
                raise
            # It lists uploads but refused the first block: its side is small enough
            # to be fetched once instead (a pull's own limits still apply).
            plan.estimates["upload_not_possible"] = (
                f"remote {plan.remote.name!r} refused the upload: {exc.message}")
            strategy = stats.strategy = "pull"
            del tables[LOCAL_TABLE]
        else:
            if not answers:
                answers = [runner.empty(plan.columns_adql(), with_key=True)]
            table, columns = _combine(answers, [KEY, *remote_cols], plan.remote.name,
                                      _declared(plan))
    if strategy == "pull":
        remote_cols = plan.remote_columns(plan.residual("pull"))
        answer = runner.pull(plan.pull_adql(), limits.pull_max_rows)
        table, columns = _combine([answer], remote_cols or [ONE], plan.remote.name,
                                  _declared(plan))
    stats.remote_rows = table.num_rows
    tables[REMOTE_TABLE] = (table, _meta(REMOTE_TABLE, columns, table.num_rows))
    stats.seconds = time.monotonic() - start
    from taphouse.remotes.pushdown import to_adql

    return FederatedRows(adql=to_adql(plan.residual(strategy)), tables=tables, stats=stats)


class _Remote:
    """The remote's side of one federated join: every request counted in ``stats``."""

    def __init__(self, client: RemoteTap, plan: FederatedPlan, stats: FederationStats,
                 cancelled: Callable[[], bool] | None, max_bytes: int | None,
                 max_requests: int = 1000) -> None:
        self.client = client
        self.max_requests = max_requests
        self.requests = 0
        self.plan = plan
        self.stats = stats
        self.cancelled = cancelled
        self.max_bytes = max_bytes
        self.fmt = plan.remote.capabilities.preferred_format()
        self.sync = True

    def query(self, adql: str, maxrec: int | None, rows_hint: int,
              uploads: dict[str, bytes] | None = None) -> RemoteAnswer:
        if self.cancelled is not None and self.cancelled():
            raise FederationError("query cancelled")
        self.requests += 1
        if self.requests > self.max_requests:
            raise FederationError(
                f"the join needs more than {self.max_requests} requests to remote"
                f" {self.plan.remote.name!r} (blocks of its upload limit, halved where its"
                " answers overflowed): narrow it (fewer local rows, a smaller radius)")
        if adql not in self.stats.remote_queries:
            self.stats.remote_queries.append(adql)
        self.stats.bytes_sent += sum(len(b) for b in (uploads or {}).values()) + len(adql)
        if self.sync and rows_hint <= SYNC_BLOCK_ROWS:
            try:
                answer = self.client.query_sync(adql, maxrec=maxrec, fmt=self.fmt,
                                                max_bytes=self.max_bytes, uploads=uploads)
                return self._received(answer)
            except RemoteUnavailable as exc:
                if getattr(exc, "http_status", None) not in (404, 405, 501):
                    raise
                self.sync = False  # an async-only service
        answer = self.client.query_async(adql, maxrec=maxrec, fmt=self.fmt,
                                         max_bytes=self.max_bytes, uploads=uploads,
                                         cancelled=self.cancelled)
        return self._received(answer)

    def _received(self, answer: RemoteAnswer) -> RemoteAnswer:
        """Count an answer; the answers of one join together stay within ``max_bytes``
        (each block's is, but a join of many blocks must not gather more)."""
        self.stats.bytes_received += answer.nbytes
        if self.max_bytes is not None and self.stats.bytes_received > self.max_bytes:
            raise FederationError(
                f"remote {self.plan.remote.name!r} sent more than {self.max_bytes} bytes in"
                f" all for this join (after {self.stats.blocks + 1} block(s)): more than"
                " this service takes from a remote for one query. Narrow the join (a"
                " smaller radius, a WHERE term on either table, fewer columns)")
        return answer

    def pull(self, adql: str, max_rows: int) -> RemoteAnswer:
        hard = self.plan.remote.capabilities.maxrec_hard
        maxrec = max_rows if hard is None else min(max_rows, hard)
        answer = self.query(adql, maxrec, maxrec)
        if maxrec == hard:  # not asked one row past: exactly that many may be cut
            suspect_cut(answer, hard)
        if answer.overflow:
            remote_table = self.plan.remote_side.remote
            assert remote_table is not None
            limit = (f"the remote's own limit of {hard} rows" if hard is not None
                     and hard < max_rows else f"the {max_rows} rows this service fetches")
            raise FederationError(
                f"the remote side is too large: {self.plan.remote.name}.{remote_table.schema}"
                f".{remote_table.name} has more rows than {limit} after its WHERE terms"
                f" were applied there ({adql}), and the local side cannot be shipped"
                f" instead ({self.plan.estimates.get('upload_not_possible')}). Narrow the"
                " remote side with a WHERE term on its own columns (a region, a"
                " magnitude cut)")
        return answer

    def empty(self, adql: str, *, with_key: bool) -> RemoteAnswer:
        """An answer with the remote columns and no rows (nothing to upload)."""
        answer = self.query(adql, 0, 0)
        if with_key:
            table = answer.table.slice(0, 0)
            answer.table = pa.table([pa.array([], pa.int64()), *table.columns],
                                    names=[KEY, *table.column_names])
            answer.columns = [ColumnMeta(KEY, "long"), *answer.columns]
        answer.overflow = False
        return answer

    def upload_join(self, adql: str, shipped: pa.Table, columns: list[ColumnMeta],
                    block_rows: int) -> list[RemoteAnswer]:
        """The crossmatch of every shipped row on the remote, block by block; a block
        whose answer overflows is halved and sent again."""
        caps = self.plan.remote.capabilities
        maxrec = caps.maxrec_hard or BLOCK_MAXREC
        answers: list[RemoteAnswer] = []
        pending = [(i, min(i + block_rows, shipped.num_rows))
                   for i in range(0, shipped.num_rows, block_rows)]
        while pending:
            lo, hi = pending.pop(0)
            block = shipped.slice(lo, hi - lo)
            side = self.plan.upload_side
            document = _votable(block, columns, side.label() if side else "the local table")
            limit = caps.upload_limit_bytes
            if limit is not None and len(document) > limit and hi - lo > 1:
                self.stats.halvings += 1
                mid = (lo + hi) // 2
                pending[:0] = [(lo, mid), (mid, hi)]
                continue
            answer = self.query(adql, maxrec, hi - lo, {BLOCK_TABLE: document})
            if caps.maxrec_hard:  # exactly the hard limit may be cut (no OVERFLOW said)
                suspect_cut(answer, caps.maxrec_hard)
            if answer.overflow:
                if hi - lo == 1:
                    side = self.plan.upload_side
                    label = side.label() if side is not None else "the local table"
                    raise FederationError(
                        f"remote {self.plan.remote.name!r} cut its answer at {answer.rows}"
                        f" rows (its limit: MAXREC {maxrec}) for a single row of {label}:"
                        " one local row matches more remote rows than the remote returns."
                        " Narrow the join (a smaller radius, or a WHERE term on the remote"
                        " table's columns)")
                self.stats.halvings += 1
                mid = (lo + hi) // 2
                pending[:0] = [(lo, mid), (mid, hi)]
                continue
            self.stats.blocks += 1
            self.stats.rows_uploaded += hi - lo
            answers.append(_keys_checked(answer, self.plan.remote.name, lo, hi))
        return answers


def _pullable(plan: FederatedPlan, limits: FederationLimits) -> bool:
    """Whether the remote side may be fetched instead of an upload the remote refused:
    not known to be larger than a pull takes (an unknown size is tried: the pull stops
    at its limit with an error saying so)."""
    table = plan.remote_side.remote
    rows = table.nrows if table is not None else None
    return rows is None or rows <= limits.pull_max_rows


def _block_rows(plan: FederatedPlan, limits: FederationLimits) -> int:
    caps = plan.remote.capabilities
    rows = limits.block_rows
    if caps.upload_limit_rows:
        rows = min(rows, caps.upload_limit_rows)
    return max(1, rows)


def _votable(block: pa.Table, columns: list[ColumnMeta], label: str = "the local table"
             ) -> bytes:
    """One upload block as a BINARY2 VOTable: nulls flagged, every type as the result
    writer writes it (which astropy-based services read). A value the writer cannot
    write is an error naming it (the writer ends such a document with an ERROR INFO and
    no rows: shipped, the remote reads an empty block and the answer is short)."""
    from taphouse.formats import ResultInfo, get_writer

    info = ResultInfo(query=None, limit=None, table_name=BLOCK_TABLE)
    writer = get_writer("votable/b2")
    document = b"".join(writer.write(iter(block.to_batches()), columns, info))
    if info.error is not None or info.rows != block.num_rows:
        raise FederationError(f"the rows of {label} cannot be uploaded to the remote as a"
                              f" VOTable: {info.error or 'rows were left out'}")
    return document


def _keys_checked(answer: RemoteAnswer, remote: str, lo: int, hi: int) -> RemoteAnswer:
    """``answer`` if every row key in it was sent in the block of keys ``lo .. hi-1``: a
    key of another block, or none of ours, would join another local row (a remote
    answering every block alike joined the first block's rows again)."""
    if answer.table.num_rows == 0 or answer.table.num_columns == 0:
        return answer
    try:
        keys = answer.table.column(_key_index(answer)).cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise RemoteUnavailable(f"remote {remote!r} answered values that are not the row"
                                " keys it was sent (its first column): refused") from None
    low, high = pc.min(keys).as_py(), pc.max(keys).as_py()
    if keys.null_count or low is None or low < lo or high >= hi:
        raise RemoteUnavailable(
            f"remote {remote!r} answered row keys it was not sent (keys {low} to {high}"
            + (" and none" if keys.null_count else "") + f" for a block of keys {lo} to"
            f" {hi - 1}): its answer is refused")
    return answer


def _key_index(answer: RemoteAnswer) -> int:
    """Where the row key is in an answer: the column called so, else the first."""
    names = [n.lower() for n in answer.table.column_names]
    return names.index(KEY) if names.count(KEY) == 1 else 0


#: Kinds of datatypes (VOTable's, and the ADQL types some services list in TAP_SCHEMA).
_KINDS = {**dict.fromkeys(("boolean",), "boolean"),
          **dict.fromkeys(("unsignedbyte", "short", "int", "long", "smallint", "integer",
                           "bigint"), "integer"),
          **dict.fromkeys(("float", "double", "real", "double precision"), "floating"),
          **dict.fromkeys(("char", "unicodechar", "varchar", "clob"), "text")}


def _kind(datatype: str | None) -> str | None:
    if not datatype:
        return None
    return _KINDS.get(datatype.lower().removeprefix("adql:").split("(")[0].strip())


def _in_asked_order(answer: RemoteAnswer, names: list[str], remote: str,
                    declared: dict[str, str | None]) -> tuple[pa.Table, list[ColumnMeta]]:
    """The answer's columns in the order asked (``names``). Names equal but for case
    are the same column, wherever the remote put it. Names of the remote's own are read
    by position. Either way each column's type must be of the kind its metadata
    (``declared``: lower-case name -> datatype) lists: values of one column are never
    joined under another's name, nor text under a number's."""
    got = [n.lower() for n in answer.table.column_names]
    want = [n.lower() for n in names]
    table, columns = answer.table, list(answer.columns)
    if got != want and sorted(got) == sorted(want) and len(set(got)) == len(got):
        order = [got.index(n) for n in want]  # its own order: matched by name
        table = table.select(order)
        columns = [columns[i] for i in order]
    elif got != want:
        misplaced = [n for i, n in enumerate(got) if n in want and want.index(n) != i]
        if misplaced:
            raise RemoteUnavailable(
                f"remote {remote!r} answered the columns"
                f" {', '.join(answer.table.column_names)} where {', '.join(names)} were asked"
                f" for ({misplaced[0]!r} not where asked): its answer is refused")
    for name, column in zip(names, columns, strict=True):
        expected, sent = _kind(declared.get(name.lower())), _kind(column.datatype)
        if expected and sent and expected != sent:
            raise RemoteUnavailable(
                f"remote {remote!r} answered a {column.datatype} column {column.name!r}"
                f" where it lists {name!r} as {declared.get(name.lower())} (not the column"
                " asked for, or not of the type its metadata lists): refused")
    return table.rename_columns(names), [dataclasses.replace(c, name=n) for c, n in
                                          zip(columns, names, strict=True)]


def _combine(answers: list[RemoteAnswer], names: list[str], remote: str,
             declared: dict[str, str | None] | None = None
             ) -> tuple[pa.Table, list[ColumnMeta]]:
    """The answers as one table with the expected column names: matched by name where
    the remote's names are those asked (whatever their case and order), by position,
    types checked against ``declared``, where it names them its own way."""
    tables, columns = [], None
    for answer in answers:
        if answer.table.num_columns != len(names):
            raise FederationError(f"remote {remote!r} answered {answer.table.num_columns}"
                                  f" columns where {len(names)} were asked for")
        table, cols = _in_asked_order(answer, names, remote, declared or {})
        tables.append(table)
        if columns is None:
            columns = cols
    assert columns is not None
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 \
        else tables[0]
    if KEY in names:
        try:
            keys = table.column(KEY).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise RemoteUnavailable(f"remote {remote!r} answered values that are not the row"
                                    " keys it was sent (its first column): refused") from None
        table = table.set_column(names.index(KEY), KEY, keys)
    return table, columns


def _declared(plan: FederatedPlan) -> dict[str, str | None]:
    """The remote table's column datatypes as its metadata lists them (lower-case
    names), and the row key's."""
    table = plan.remote_side.remote
    declared: dict[str, str | None] = {KEY: "long"}
    for column in table.columns if table is not None else []:
        declared.setdefault(column.name.lower().strip('"'), column.datatype)
    return declared


def _meta(name: str, columns: list[ColumnMeta], nrows: int) -> TableMeta:
    ra, dec = position_columns(columns)
    return TableMeta(database="tap_upload", name=name, columns=columns, kind="upload",
                     description=f"rows of a federated join ({name})", ra_column=ra,
                     dec_column=dec, nrows=nrows)


__all__ = ["FederationError", "FederationLimits", "FederationStats", "FederatedRows",
           "choose_strategy", "run_plan"]
