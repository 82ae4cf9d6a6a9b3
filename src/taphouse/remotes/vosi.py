"""Reading a remote's VOSI documents (capabilities, tableset) as untrusted input.

Remote metadata is parsed with defusedxml (no DTDs, no entities, no external
references) after a size check by the caller; every text is cleaned (control
characters removed, length capped) and kept as plain text, so whatever markup a remote
puts in a description reaches users only through writers that escape it. Limits on the
number of schemas, tables and columns keep one remote from filling the metadata store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from taphouse.remotes.errors import RemoteUnavailable
from taphouse.remotes.model import (
    TAP_STANDARD,
    Capabilities,
    RemoteColumn,
    RemoteTable,
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


@dataclass(frozen=True)
class MetadataLimits:
    """How much of a remote's metadata is kept."""

    max_tables: int = 20_000
    max_columns: int = 2_000  # per table
    max_text: int = 4_000  # characters of one description
    max_name: int = 256  # characters of a name


def clean(text: str | None, limit: int) -> str | None:
    """Plain text from an untrusted document: whitespace trimmed, control characters
    removed, at most ``limit`` characters (None when empty)."""
    if text is None:
        return None
    text = _CONTROL.sub("", text).strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_xml(body: bytes, what: str) -> Element:
    """The root of an untrusted XML document; a clear error naming ``what`` if it is not
    well-formed or uses DTDs or entities."""
    try:
        root: Element = fromstring(body, forbid_dtd=True, forbid_entities=True,
                                   forbid_external=True)
        return root
    except DefusedXmlException:
        raise RemoteUnavailable(f"{what} declares a DTD or entities: refused (remote"
                                " documents may not)") from None
    except (ParseError, ValueError) as exc:
        raise RemoteUnavailable(f"{what} is not well-formed XML ({exc})") from None


def local(tag: object) -> str:
    """An element's name without its namespace."""
    text = str(tag)
    return text.rsplit("}", 1)[-1]


def _children(elem: Element, name: str) -> Iterator[Element]:
    for child in elem:
        if local(child.tag) == name:
            yield child


def _child_text(elem: Element, name: str) -> str | None:
    for child in _children(elem, name):
        return child.text
    return None


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None


def _limit(text: str | None) -> int | None:
    """A limit a remote advertises: a whole number of at least 1, else unknown (a
    remote saying -5 or 0 was sent MAXREC=-5 and every query to it failed)."""
    value = _int(text)
    return value if value is not None and value >= 1 else None


# --- capabilities ----------------------------------------------------------------------
def parse_capabilities(body: bytes, what: str) -> Capabilities:
    """The TAP capability of a VOSI capabilities document; raises
    :class:`RemoteUnavailable` when the document has none (not a TAP service)."""
    root = parse_xml(body, what)
    if local(root.tag) != "capabilities":
        raise RemoteUnavailable(f"{what} is not a VOSI capabilities document (its root"
                                f" element is {clean(local(root.tag), 40)!r})")
    tap = [c for c in _children(root, "capability")
           if (c.get("standardID") or "").split("#")[0] == TAP_STANDARD]
    if not tap:
        raise RemoteUnavailable(f"{what} advertises no TAP capability"
                                f" ({TAP_STANDARD}): not a TAP service")
    cap = tap[0]
    caps = Capabilities()
    for lang in _children(cap, "language"):
        name = clean(_child_text(lang, "name"), 40) or "?"
        versions = [clean(v.text, 20) for v in _children(lang, "version")]
        caps.languages += [f"{name}-{v}" for v in versions if v] or [name]
        for group in _children(lang, "languageFeatures"):
            ftype = clean(group.get("type"), 200) or ""
            forms = [clean(_child_text(f, "form"), 200) for f in _children(group, "feature")]
            caps.features.setdefault(ftype, []).extend(f for f in forms if f)
    for fmt in _children(cap, "outputFormat"):
        mime = clean(_child_text(fmt, "mime"), 200)
        if mime:
            caps.output_formats.append(mime)
        caps.output_aliases += [a for a in (clean(x.text, 80) for x in _children(fmt, "alias"))
                                if a]
    caps.upload_methods = [m for m in (clean(u.get("ivo-id"), 200)
                                       for u in _children(cap, "uploadMethod")) if m]
    for limit in _children(cap, "outputLimit"):
        for kind, attr in (("default", "maxrec_default"), ("hard", "maxrec_hard")):
            for elem in _children(limit, kind):
                if (elem.get("unit") or "row") == "row":
                    setattr(caps, attr, _limit(elem.text))
    for limit in _children(cap, "uploadLimit"):
        for elem in _children(limit, "hard"):
            if (elem.get("unit") or "row") == "row":
                caps.upload_limit_rows = _limit(elem.text)
            elif elem.get("unit") == "byte":
                caps.upload_limit_bytes = _limit(elem.text)
    return caps


# --- tables ----------------------------------------------------------------------------
def parse_tableset(body: bytes, what: str, limits: MetadataLimits) -> list[RemoteTable]:
    """The tables of a VOSI tableset document (schemas with tables with columns)."""
    root = parse_xml(body, what)
    name = local(root.tag)
    if name == "table":
        schemas: list[tuple[str | None, Element]] = [(None, root)]
    elif name == "tableset":
        schemas = [(_child_text(s, "name"), s) for s in _children(root, "schema")]
    else:
        raise RemoteUnavailable(f"{what} is not a VOSI tableset (its root element is"
                                f" {clean(name, 40)!r})")
    tables: list[RemoteTable] = []
    for schema_name, schema in schemas:
        elems = [schema] if local(schema.tag) == "table" else list(_children(schema, "table"))
        for elem in elems:
            if len(tables) >= limits.max_tables:
                raise RemoteUnavailable(f"{what} describes more than {limits.max_tables}"
                                        " tables: more than this platform keeps")
            table = _table(elem, schema_name, limits, what)
            if table is not None:
                tables.append(table)
    return tables


def split_name(qualified: str, schema: str | None) -> tuple[str, str]:
    """(schema, table) of a remote table name, which TAP services usually qualify
    (``schema.table``)."""
    if schema and qualified.lower().startswith(schema.lower() + "."):
        return schema, qualified[len(schema) + 1:]
    if "." in qualified:
        first, rest = qualified.split(".", 1)
        return (schema or first), rest
    return (schema or "default"), qualified


def _table(elem: Element, schema: str | None, limits: MetadataLimits,
           what: str) -> RemoteTable | None:
    raw = clean(_child_text(elem, "name"), limits.max_name)
    if raw is None:
        return None
    schema_name, table_name = split_name(raw, clean(schema, limits.max_name))
    columns: list[RemoteColumn] = []
    for col in _children(elem, "column"):
        if len(columns) >= limits.max_columns:
            raise RemoteUnavailable(f"{what}: table {raw!r} has more than"
                                    f" {limits.max_columns} columns")
        column = _column(col, limits)
        if column is not None:
            columns.append(column)
    nrows = _int(_child_text(elem, "nrows"))
    return RemoteTable(schema=schema_name, name=table_name,
                       description=clean(_child_text(elem, "description"), limits.max_text),
                       table_type=clean(elem.get("type"), 40) or "table",
                       nrows=nrows, columns=columns)


def unquote(name: str) -> str:
    """A name as the remote's data calls it: VOSI and TAP_SCHEMA write names as ADQL does,
    so a delimited identifier (such as ``"dec"``) comes with its quotes (and doubled
    quotes inside)."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


def _column(elem: Element, limits: MetadataLimits) -> RemoteColumn | None:
    name = clean(_child_text(elem, "name"), limits.max_name)
    if not name or not unquote(name):
        return None
    name = unquote(name)
    datatype = arraysize = xtype = None
    for dt in _children(elem, "dataType"):
        datatype = clean(dt.text, 40)
        arraysize = clean(dt.get("arraysize"), 40)
        xtype = clean(dt.get("extendedType") or dt.get("xtype"), 80)
    flags = {clean(f.text, 40) for f in _children(elem, "flag")}
    return RemoteColumn(
        name=name, datatype=datatype, arraysize=arraysize, xtype=xtype,
        unit=clean(_child_text(elem, "unit"), 80), ucd=clean(_child_text(elem, "ucd"), 200),
        utype=clean(_child_text(elem, "utype"), 200),
        description=clean(_child_text(elem, "description"), limits.max_text),
        principal="principal" in flags, indexed="indexed" in flags, std="std" in flags)


def richness(tables: list[RemoteTable]) -> tuple[int, int]:
    """How much a description says: (columns described, tables); more is richer."""
    return (sum(len(t.columns) for t in tables), len(tables))


__all__ = ["parse_capabilities", "parse_tableset", "parse_xml", "clean", "MetadataLimits",
           "split_name", "richness", "unquote"]
