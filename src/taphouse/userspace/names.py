"""Names in the user space: user schemas ``user_<name>``, table names, ``DEST`` targets."""

from __future__ import annotations

import re

from taphouse.adql.reserved import is_reserved
from taphouse.userspace.errors import UnknownTable, UserSpaceError, WriteForbidden

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: ADQL alias of the caller's own schema (never stored anywhere).
MYDB = "mydb"
SCHEMA_PREFIX = "user_"
#: Prefix of the tables that keep async job results (``job_<jobid>``).
JOB_PREFIX = "job_"


#: Longest user-space name: a table name is also a directory name in the data directory
#: (most file systems stop at 255 bytes) and an identifier in PostgreSQL (63).
MAX_NAME_LENGTH = 63


def check_identifier(name: str, what: str) -> str:
    """A user or table name: ``^[a-z][a-z0-9_]*$``, at most :data:`MAX_NAME_LENGTH`
    characters, and not an ADQL reserved word."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserSpaceError(
            f"invalid {what} name {name!r}: use a lower-case letter, then lower-case letters,"
            " digits or '_'")
    if len(name) > MAX_NAME_LENGTH:
        raise UserSpaceError(f"invalid {what} name {name[:20]}...: use at most"
                             f" {MAX_NAME_LENGTH} characters, not {len(name)}")
    if is_reserved(name):
        raise UserSpaceError(f"invalid {what} name {name!r}: it is an ADQL reserved word")
    return name


def check_table_name(name: str) -> str:
    return check_identifier(name, "table")


def user_schema(username: str) -> str:
    """The schema (database) of a user: ``user_<name>``."""
    return SCHEMA_PREFIX + username


def job_table(job_id: str) -> str:
    """The table that keeps the result of async job ``job_id``."""
    return JOB_PREFIX + job_id.lower().replace("-", "_")


def parse_dest(dest: str, username: str, *, visible: set[str],
               catalogues: set[str]) -> str:
    """The table name of a ``DEST`` target in the caller's own schema.

    ``dest`` is ``mydb.<table>`` or ``user_<name>.<table>`` (the caller's own). A
    catalogue database the caller can see answers 403, another user's schema they
    can read (shared) 403 too, anything else "unknown schema", so a private schema of
    someone else looks exactly like one that does not exist.
    """
    text = dest.strip()
    schema, sep, table = text.rpartition(".")
    if not sep:
        raise UserSpaceError(f"DEST {dest!r}: give schema and table, e.g. DEST=mydb.{text or 't1'}")
    schema = schema.strip().strip('"').lower()
    table = table.strip().strip('"')
    own = user_schema(username)
    if schema not in (MYDB, own):
        if schema in catalogues and schema in visible:
            raise WriteForbidden(f"DEST {dest!r}: {schema} is a catalogue database and"
                                 " read-only; store results in mydb.<table>")
        if schema in visible:
            raise WriteForbidden(f"DEST {dest!r}: {schema} is not your schema (shared"
                                 " tables are read-only); store results in mydb.<table>")
        raise UnknownTable(f"DEST {dest!r}: unknown schema {schema!r}; store results in"
                           " mydb.<table>", status=400)
    return check_table_name(table)
