"""VOSI documents: capabilities (with TAPRegExt), tables (VOSI-tables 1.1), availability,
and the DALI examples page."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from taphouse.catalogue.model import ColumnMeta, DatabaseMeta, TableMeta
from taphouse.settings import Settings

_XSI = "http://www.w3.org/2001/XMLSchema-instance"

# ADQL 2.1 optional features this service supports, by TAPRegExt feature type.
_FEATURES = {
    "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo": [
        "POINT", "CIRCLE", "BOX", "POLYGON", "CONTAINS", "INTERSECTS", "DISTANCE", "AREA",
        "CENTROID", "COORD1", "COORD2", "COORDSYS"],
    "ivo://ivoa.net/std/TAPRegExt#features-adql-string": ["LOWER", "UPPER", "ILIKE"],
    "ivo://ivoa.net/std/TAPRegExt#features-adql-offset": ["OFFSET"],
    "ivo://ivoa.net/std/TAPRegExt#features-adql-type": ["CAST"],
    "ivo://ivoa.net/std/TAPRegExt#features-adql-unit": ["IN_UNIT"],
    "ivo://ivoa.net/std/TAPRegExt#features-adql-common-table": ["WITH"],
    "ivo://ivoa.net/std/TAPRegExt#features-adql-sets": ["UNION", "EXCEPT", "INTERSECT"],
}

_SECURITY_IDS = {"anonymous": None, "basic": "ivo://ivoa.net/sso#BasicAA",
                 "token": "ivo://ivoa.net/sso#token"}


@dataclass(frozen=True)
class Interface:
    """One access URL of a TAP service and the security methods it accepts
    (``anonymous``, ``basic``, ``token``)."""

    url: str
    methods: tuple[str, ...] = ("anonymous", "basic", "token")

    def security_xml(self) -> str:
        out = []
        for method in self.methods:
            ivoid = _SECURITY_IDS[method]
            out.append("<securityMethod/>" if ivoid is None
                       else f'<securityMethod standardID="{ivoid}"/>')
        return "".join(out)

_FORMAT_IVOIDS = {
    "votable": "ivo://ivoa.net/std/TAPRegExt#output-votable-binary",
    "votable/b2": "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2",
    "votable/td": "ivo://ivoa.net/std/TAPRegExt#output-votable-td",
}


def capabilities(settings: Settings, base: str, *, extensions: Iterable[str] = (),
                 interfaces: Sequence[Interface] = ()) -> str:
    """The VOSI capabilities document of a TAP endpoint whose base URL is ``base``.

    ``interfaces``: the TAP interfaces (one per access URL and set of security methods;
    the first is this endpoint's). Default: ``base`` with anonymous, Basic and token.
    Every interface accepts Basic and tokens, so that pyvo's AuthSession sends
    credentials to all of them (e.g. /tables lists restricted tables)."""
    interfaces = tuple(interfaces) or (Interface(base),)
    own = interfaces[0]
    from taphouse.adql.udf import UDFS
    from taphouse.formats import FORMATS

    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"'
           f' xmlns:xsi="{_XSI}" xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0"'
           ' xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"'
           ' xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0">',
           '<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">']
    for iface in interfaces:
        out += ['<interface xsi:type="vs:ParamHTTP" role="std" version="1.1">',
                f'<accessURL use="base">{escape(iface.url)}</accessURL>',
                iface.security_xml(), "</interface>"]
    out += ["<language><name>ADQL</name>",
           '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>',
           '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.1">2.1</version>',
           "<description>ADQL 2.1; spatial predicates use a HEALPix index</description>"]
    out.append('<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-udf">')
    for udf in UDFS.values():
        out.append(f"<feature><form>{escape(udf.signature)}</form>"
                   f"<description>{escape(udf.description)}</description></feature>")
    out.append("</languageFeatures>")
    for ftype, forms in _FEATURES.items():
        out.append(f"<languageFeatures type={quoteattr(ftype)}>")
        out.extend(f"<feature><form>{f}</form></feature>" for f in forms)
        out.append("</languageFeatures>")
    # taphouse extension (userspace): DEST stores a result in the caller's schema.
    out.append('<languageFeatures type="ivo://taphouse/TAP#dest">'
               "<feature><form>DEST=mydb.&lt;table&gt; [DEST_MODE=create|replace|append]"
               "</form><description>taphouse extension, sync and async, logged-in users:"
               " every row of the result is stored as the table &lt;table&gt; of your own"
               " schema user_&lt;name&gt; (alias mydb), within your quota; the response"
               " is the MAXREC-limited result with INFO DEST_TABLE and DEST_ROWS. Async"
               " results are also kept as mydb.job_&lt;jobid&gt; until the job is"
               " destroyed.</description></feature></languageFeatures>")
    # taphouse extension: the internal HEALPix index column of tables with positions.
    out.append('<languageFeatures type="ivo://taphouse/TAP#healpix">'
               '<feature><form>"_healpix_29"</form><description>taphouse extension: every'
               " table with positions has an internal column, the nested HEALPix index at"
               " order 29 of its position (the rows are stored in this order; the name and"
               " value are those of HATS). It is not in SELECT *, TAP_SCHEMA or /tables;"
               ' name it as the delimited identifier "_healpix_29", e.g. for ranges of'
               " cells (the order-n cell c holds the values c * 4^(29-n) to"
               " (c + 1) * 4^(29-n) - 1).</description></feature></languageFeatures>")
    out.append("</language>")
    for fmt in FORMATS:
        ivoid = _FORMAT_IVOIDS.get(fmt.aliases[0] if fmt.aliases else "")
        attr = f" ivo-id={quoteattr(ivoid)}" if ivoid else ""
        out.append(f"<outputFormat{attr}><mime>{escape(fmt.mime)}</mime>")
        out.extend(f"<alias>{escape(a)}</alias>" for a in fmt.aliases)
        out.append("</outputFormat>")
    out.append('<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>')
    # TAP 1.1 makes HTTP upload mandatory where uploads exist: on by default, fetched
    # through taphouse.outbound (public addresses only); advertised only when on.
    if settings.upload_urls:
        out.append('<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-http"/>')
    retention = int(settings.job_retention)
    out += [f"<retentionPeriod><default>{retention}</default><hard>{retention}</hard>"
            "</retentionPeriod>",
            f"<executionDuration><default>{int(settings.exec_duration_default)}</default>"
            f"<hard>{int(settings.exec_duration_limit)}</hard></executionDuration>",
            f'<outputLimit><default unit="row">{settings.maxrec_default}</default>'
            f'<hard unit="row">{settings.maxrec_limit}</hard></outputLimit>',
            f'<uploadLimit><hard unit="byte">{settings.upload_max_bytes}</hard></uploadLimit>',
            "</capability>"]
    for std, path in [("ivo://ivoa.net/std/VOSI#capabilities", "capabilities"),
                      ("ivo://ivoa.net/std/VOSI#availability", "availability"),
                      ("ivo://ivoa.net/std/VOSI#tables-1.1", "tables"),
                      ("ivo://ivoa.net/std/DALI#examples", "examples")]:
        out.append(f'<capability standardID="{std}"><interface xsi:type="vs:ParamHTTP">'
                   f'<accessURL use="full">{escape(base)}/{path}</accessURL>'
                   f"{own.security_xml()}</interface></capability>")
    out.extend(extensions)
    out.append("</vosi:capabilities>")
    return "\n".join(out)


def availability(note: str = "service is accepting queries", *,
                 available: bool = True) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<avl:availability xmlns:avl="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
            f"<avl:available>{'true' if available else 'false'}</avl:available>"
            f"<avl:note>{escape(note)}</avl:note></avl:availability>")


# astroquery's TapPlus (written for ESA's TAP+) reads the attribute esatapplus:flags of
# every column and fails without it (astropy/astroquery#1597, closed as won't fix). The
# VODataService schema rejects the attribute (strict anyAttribute), so it is written only
# for that client (``tapplus=True``).
_ESA_NS = ' xmlns:esatapplus="http://esa.int/xml/EsaTapPlus"'


def _column_xml(c: ColumnMeta, tapplus: bool = False) -> str:
    std = ' std="true"' if c.std else ""
    esa = ' esatapplus:flags="0"' if tapplus else ""
    parts = [f"<column{std}{esa}>",
             f"<name>{escape(c.adql_name)}</name>"]
    if c.description:
        parts.append(f"<description>{escape(c.description)}</description>")
    if c.unit:
        parts.append(f"<unit>{escape(c.unit)}</unit>")
    if c.ucd:
        parts.append(f"<ucd>{escape(c.ucd)}</ucd>")
    if c.utype:
        parts.append(f"<utype>{escape(c.utype)}</utype>")
    attrs = ""
    if c.arraysize:
        attrs += f" arraysize={quoteattr(c.arraysize)}"
    if c.xtype:
        attrs += f" extendedType={quoteattr(c.xtype)}"
    parts.append(f'<dataType xsi:type="vs:VOTableType"{attrs}>{c.datatype}</dataType>')
    if c.indexed:
        parts.append("<flag>indexed</flag>")
    if c.principal:
        parts.append("<flag>primary</flag>")
    parts.append("</column>")
    return "".join(parts)


def _table_xml(t: TableMeta, detail: str, tapplus: bool = False) -> str:
    parts = ['<table type="table">', f"<name>{escape(t.qualified_name)}</name>"]
    if t.description:
        parts.append(f"<description>{escape(t.description)}</description>")
    if t.nrows:  # VODataService 1.2: what a federated join sizes a table by
        parts.append(f"<nrows>{int(t.nrows)}</nrows>")
    if detail != "min":
        parts.extend(_column_xml(c, tapplus) for c in t.columns)
        for key in t.extra.get("foreign_keys", []):
            parts.append(f"<foreignKey><targetTable>{escape(key['target'])}</targetTable>")
            parts.extend(f"<fkColumn><fromColumn>{escape(a)}</fromColumn>"
                         f"<targetColumn>{escape(b)}</targetColumn></fkColumn>"
                         for a, b in key["columns"])
            if key.get("description"):
                parts.append(f"<description>{escape(key['description'])}</description>")
            parts.append("</foreignKey>")
    parts.append("</table>")
    return "".join(parts)


def tableset(databases: list[DatabaseMeta], tables: list[TableMeta], detail: str = "max",
             tapplus: bool = False) -> str:
    """VOSI-tables 1.1 tableset of the given (already access-filtered) tables;
    ``tapplus`` adds the attribute astroquery's TapPlus needs."""
    from taphouse.adql.reserved import adql_schema

    descriptions = {d.name: d.description for d in databases}
    by_schema: dict[str, list[TableMeta]] = {}
    for t in tables:
        by_schema.setdefault(t.database, []).append(t)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0"'
           f' xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" xmlns:xsi="{_XSI}"'
           f'{_ESA_NS if tapplus else ""}>']
    for schema, ts in by_schema.items():
        out.append(f"<schema><name>{escape(adql_schema(schema))}</name>")
        if descriptions.get(schema):
            out.append(f"<description>{escape(descriptions[schema])}</description>")
        out.extend(_table_xml(t, detail, tapplus) for t in ts)
        out.append("</schema>")
    out.append("</vosi:tableset>")
    return "\n".join(out)


def single_table(t: TableMeta, tapplus: bool = False) -> str:
    body = _table_xml(t, "max", tapplus)[len('<table type="table">'):-len("</table>")]
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:table xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0"'
            f' xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" xmlns:xsi="{_XSI}"'
            f'{_ESA_NS if tapplus else ""} type="table">' + body + "</vosi:table>")


def examples(items: list[tuple[str, str, str, str]]) -> str:
    """DALI examples document: items are (id, name, description, ADQL)."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML+RDFa 1.1//EN"'
           ' "http://www.w3.org/MarkUp/DTD/xhtml-rdfa-2.dtd">',
           '<html xmlns="http://www.w3.org/1999/xhtml" version="XHTML+RDFa 1.1">',
           "<head><title>taphouse query examples</title></head>",
           '<body vocab="http://www.ivoa.net/rdf/examples#">',
           "<h1>Query examples</h1>"]
    for ident, name, description, query in items:
        out.append(f'<div typeof="example" id="{ident}" resource="#{ident}">'
                   f'<h2 property="name">{escape(name)}</h2>'
                   f"<p>{escape(description)}</p>"
                   f'<pre property="query">{escape(query)}</pre></div>')
    out.append("</body></html>")
    return "\n".join(out)
