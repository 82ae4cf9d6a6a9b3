"""ADQL 2.1 reserved words (section 2.1.2 of the Recommendation): SQL-92 keywords plus
the ADQL-specific function and geometry names. A column or table whose name is one of
these must be written as a delimited identifier ("size", "value")."""

from __future__ import annotations

import re

SQL_RESERVED = frozenset("""
absolute action add all allocate alter and any are as asc assertion at authorization avg
begin between bit bit_length both by cascade cascaded case cast catalog char character
character_length char_length check close coalesce collate collation column commit connect
connection constraint constraints continue convert corresponding count create cross current
current_date current_time current_timestamp current_user cursor date day deallocate dec
decimal declare default deferrable deferred delete desc describe descriptor diagnostics
disconnect distinct domain double drop else end end-exec escape except exception exec
execute exists external extract false fetch first float for foreign found from full get
global go goto grant group having hour identity immediate in indicator initially inner
input insensitive insert int integer intersect interval into is isolation join key
language last leading left level like local lower match max min minute module month names
national natural nchar next no not null nullif numeric octet_length of on only open option
or order outer output overlaps pad partial position precision prepare preserve primary
prior privileges procedure public read real references relative restrict revoke right
rollback rows schema scroll second section select session session_user set size smallint
some space sql sqlcode sqlerror sqlstate substring sum system_user table temporary then
time timestamp timezone_hour timezone_minute to trailing transaction translate translation
trim true union unique unknown update upper usage user using value values varchar varying
view when whenever where with work write year zone
""".split())

ADQL_RESERVED = frozenset("""
abs acos area asin atan atan2 bigint box ceiling centroid circle contains coord1 coord2
coordsys cos cot degrees distance exp floor ilike intersects log log10 mod pi point polygon
power radians region rand round sin sqrt tan top truncate
""".split())

RESERVED = SQL_RESERVED | ADQL_RESERVED

_REGULAR = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def is_reserved(name: str) -> bool:
    return name.lower() in RESERVED


def adql_schema(name: str) -> str:
    """A schema as written in ADQL: a local database's name (bare or quoted), or a remote
    service's schema ``REMOTE.schema`` (taphouse.remotes.catalog), which is kept as it is
    already written in ADQL (local database names never contain a dot)."""
    return name if "." in name else adql_identifier(name)


def adql_identifier(name: str) -> str:
    """The name as it must be written in ADQL: bare where it can be, quoted otherwise."""
    if _REGULAR.match(name) and not is_reserved(name) and name == name.lower():
        return name
    return '"' + name.replace('"', '""') + '"'
