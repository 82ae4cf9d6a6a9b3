"""Tidy result objects for discovery and listings, readable in a terminal (``repr``) and
in a notebook (``_repr_html_``)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items() if v)
    return str(value)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def text_table(rows: Sequence[Sequence[str]], header: Sequence[str], width: int = 60) -> str:
    """Aligned plain-text columns (cells clipped to ``width`` characters)."""
    cells = [[_clip(c, width) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()  # noqa: E731
    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def html_table(rows: Sequence[Sequence[str]], header: Sequence[str], caption: str = "") -> str:
    """An HTML table with every cell escaped."""
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>"
                                    for c in row) + "</tr>" for row in rows)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Record:
    """Base of the tidy objects: the fields named in ``_show`` make up a listing row."""

    _show: ClassVar[tuple[str, ...]] = ()

    def _row(self) -> list[str]:
        return [_text(getattr(self, f)) for f in self._show]

    def _pairs(self) -> list[tuple[str, str]]:
        return [(f.name, _text(getattr(self, f.name))) for f in fields(self)  # type: ignore[arg-type]
                if not f.name.startswith("_") and f.name != "columns"
                and getattr(self, f.name) not in (None, "", [], {})]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._pairs()[:4])
        return f"<{type(self).__name__} {inner}>"

    def _repr_html_(self) -> str:
        rows = [[k, v] for k, v in self._pairs()]
        return html_table(rows, ["field", "value"], caption=type(self).__name__)


@dataclass(repr=False)
class Database(Record):
    """A database (an ADQL schema) the caller may read."""

    name: str
    description: str = ""
    kind: str = "catalogue"
    tables: int | None = None
    _show: ClassVar[tuple[str, ...]] = ("name", "kind", "tables", "description")


@dataclass(repr=False)
class Column(Record):
    """One column of a table, with its VO metadata."""

    name: str
    datatype: str = ""
    unit: str = ""
    ucd: str = ""
    description: str = ""
    adql_name: str = ""
    arraysize: str | None = None
    xtype: str | None = None
    utype: str | None = None
    principal: bool = False
    indexed: bool = False
    bad_unit: bool = False
    frame: dict[str, Any] | None = None  # system, epoch, equinox, refposition
    time_system: dict[str, Any] | None = None  # timescale, refposition, timeorigin
    _show: ClassVar[tuple[str, ...]] = ("name", "datatype", "unit", "ucd", "description")


@dataclass(repr=False)
class TableInfo(Record):
    """A table's description; ``columns`` is filled by :meth:`Client.columns` /
    :meth:`UserSpace.describe`."""

    name: str
    database: str = ""
    qualified_name: str = ""
    description: str = ""
    nrows: int | None = None
    ra_column: str | None = None
    dec_column: str | None = None
    epoch: Any = None
    columns: list[Column] = field(default_factory=list)
    _show: ClassVar[tuple[str, ...]] = ("qualified_name", "nrows", "epoch", "description")

    def __repr__(self) -> str:
        head = f"<TableInfo {self.qualified_name or self.name}"
        if self.nrows is not None:
            head += f" ({self.nrows:,} rows)"
        head += ">"
        if self.description:
            head += f"\n  {self.description}"
        if self.columns:
            head += "\n" + Listing(self.columns, Column, "").text(indent="  ")
        return head

    def _repr_html_(self) -> str:
        title = self.qualified_name or self.name
        if self.nrows is not None:
            title += f" ({self.nrows:,} rows)"
        out = f"<p><b>{html.escape(title)}</b> {html.escape(self.description or '')}</p>"
        if self.columns:
            out += Listing(self.columns, Column, "")._repr_html_()
        return out


@dataclass(repr=False)
class UserTable(TableInfo):
    """A table in the caller's user space (``mydb``)."""

    schema: str = ""
    nbytes: int | None = None
    created: Any = None
    provenance: dict[str, Any] = field(default_factory=dict)
    shared_with: dict[str, list[str]] = field(default_factory=dict)
    job_id: str | None = None
    _show: ClassVar[tuple[str, ...]] = ("name", "nrows", "nbytes", "created", "shared_with",
                                        "description")

    def __repr__(self) -> str:
        return super().__repr__().replace("<TableInfo", "<UserTable", 1)


@dataclass(repr=False)
class Quota(Record):
    """Use of the caller's user space against its limits."""

    rows_used: int = 0
    rows_limit: int | None = None
    bytes_used: int = 0
    bytes_limit: int | None = None
    tables: int = 0
    #: Of bytes_used: replaced or dropped versions still on disk, deleted at
    #: retained_until at the earliest.
    bytes_retained: int = 0
    retained_until: str | None = None

    def __repr__(self) -> str:
        def part(used: int, limit: int | None, what: str) -> str:
            if not limit:
                return f"{used:,} {what}"
            return f"{used:,} of {limit:,} {what} ({100 * used / limit:.1f} %)"

        return (f"<Quota {part(self.rows_used, self.rows_limit, 'rows')}, "
                f"{part(self.bytes_used, self.bytes_limit, 'bytes')}, {self.tables} tables>")


@dataclass(repr=False)
class PersonalToken(Record):
    """A personal token: for a script or notebook, with its own name, scopes and expiry
    (``client.create_token``). ``token`` (the secret) is known only right after
    creation: keep it then, e.g. as ``TAPHOUSE_TOKEN``; it is never shown again."""

    id: int
    name: str = ""
    kind: str = "personal"
    scopes: list[str] = field(default_factory=list)
    issued_at: str | None = None
    expires_at: str | None = None
    last_used: str | None = None
    revoked: bool = False
    current: bool = False
    token: str | None = None
    _show: ClassVar[tuple[str, ...]] = ("id", "name", "kind", "scopes", "issued_at",
                                        "expires_at", "last_used")

    def __repr__(self) -> str:
        # The secret is never part of a printout (notebooks are shared and saved).
        inner = ", ".join(f"{k}={v!r}" for k, v in self._pairs() if k != "token")
        return f"<PersonalToken {inner}>"

    def _pairs(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in super()._pairs() if k != "token"]


class Listing(list):
    """A list of tidy objects that prints as a table."""

    def __init__(self, items: Iterable[Any], kind: type, title: str = "") -> None:
        super().__init__(items)
        self.kind = kind
        self.title = title

    def _header(self) -> list[str]:
        shown: Sequence[str] = getattr(self.kind, "_show")  # noqa: B009  (each model's)
        return list(shown)

    def text(self, indent: str = "") -> str:
        rows = [item._row() for item in self]
        body = text_table(rows, self._header())
        return "\n".join(indent + line for line in body.splitlines())

    def __repr__(self) -> str:
        head = f"{self.title} ({len(self)})\n" if self.title else ""
        return head + self.text()

    def _repr_html_(self) -> str:
        return html_table([item._row() for item in self], self._header(), caption=self.title)

    def names(self) -> list[str]:
        """The ``name`` (or ``id``) of each item."""
        return [str(getattr(i, "name", None) or getattr(i, "id", "")) for i in self]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for item in self:
                if key in {getattr(item, "name", None), getattr(item, "qualified_name", None),
                           getattr(item, "id", None)}:
                    return item
            raise KeyError(f"{key!r} is not in this listing; names: {', '.join(self.names())}")
        return super().__getitem__(key)


_T = TypeVar("_T")


def build(kind: type[_T], data: dict[str, Any], **extra: Any) -> _T:
    """An instance of dataclass ``kind`` from a JSON object, ignoring unknown keys."""
    names = {f.name for f in fields(kind)  # type: ignore[arg-type]  # a dataclass
             if not f.name.startswith("_")}
    values = {k: v for k, v in data.items() if k in names}
    values.update(extra)
    for key in ("description", "unit", "ucd", "datatype"):
        if key in names and values.get(key) is None and key in data:
            values[key] = ""
    if "columns" in values:
        # The JSON columns as Column objects (printing a table shows them as rows).
        values["columns"] = [c if isinstance(c, Column) else column_from(c)
                             for c in values["columns"] or [] if isinstance(c, (dict, Column))]
    return kind(**values)


def column_from(data: dict[str, Any]) -> Column:
    col = build(Column, data)
    if not col.adql_name:
        col.adql_name = col.name
    return col


__all__ = ["Database", "Column", "TableInfo", "UserTable", "Quota", "PersonalToken",
           "Listing", "Record",
           "build", "column_from", "text_table", "html_table"]
