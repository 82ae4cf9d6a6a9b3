"""What the platform knows about a remote TAP service: its capabilities, its tables and
columns (as the remote names them), and its registration."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

#: A remote's registered name: a lower-case ADQL regular identifier.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: Names a remote may not take (ADQL schemas of the platform itself).
RESERVED_NAMES = ("tap_schema", "ivoa", "mydb", "tap_upload")
RESERVED_PREFIXES = ("user_", "tap_", "archived_")
AUTH_KINDS = ("none", "basic", "bearer")

TAP_STANDARD = "ivo://ivoa.net/std/TAP"
UPLOAD_INLINE = "ivo://ivoa.net/std/TAPRegExt#upload-inline"
UPLOAD_HTTP = "ivo://ivoa.net/std/TAPRegExt#upload-http"


@dataclass
class Capabilities:
    """What a remote TAP service advertises in its VOSI capabilities (TAPRegExt)."""

    languages: list[str] = field(default_factory=list)  # e.g. ["ADQL-2.0", "ADQL-2.1"]
    features: dict[str, list[str]] = field(default_factory=dict)  # type -> forms
    upload_methods: list[str] = field(default_factory=list)  # ivo-ids
    output_formats: list[str] = field(default_factory=list)  # MIME types
    output_aliases: list[str] = field(default_factory=list)  # short names (votable/b2)
    maxrec_default: int | None = None
    maxrec_hard: int | None = None
    upload_limit_rows: int | None = None
    upload_limit_bytes: int | None = None
    modes: list[str] = field(default_factory=lambda: ["sync", "async"])

    @property
    def adql_versions(self) -> list[str]:
        return [lang.split("-", 1)[1] for lang in self.languages
                if lang.upper().startswith("ADQL-")]

    @property
    def uploads(self) -> bool:
        return bool(self.upload_methods)

    def supports_format(self, word: str) -> bool:
        """Whether an output format containing ``word`` (``parquet``, ``binary2``) is
        advertised."""
        return any(word in f.lower() for f in self.output_formats + self.output_aliases)

    def preferred_format(self) -> str:
        """The RESPONSEFORMAT to ask for: VO-Parquet when offered (fastest to read),
        then BINARY2 VOTable, then the service's default VOTable."""
        for mime in self.output_formats:
            if "parquet" in mime.lower():
                return mime
        for mime in self.output_formats:
            if "serialization=binary2" in mime.lower().replace(" ", ""):
                return mime
        if "votable/b2" in self.output_aliases:
            return "votable/b2"
        return "votable"

    def has_feature(self, form_start: str) -> bool:
        """Whether a language feature whose form starts with ``form_start`` (e.g.
        ``CONTAINS``, ``OFFSET``) is advertised."""
        start = form_start.upper()
        return any(f.upper().startswith(start) for forms in self.features.values()
                   for f in forms)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"adql_versions": self.adql_versions}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Capabilities:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class RemoteColumn:
    """One column of a remote table; ``name`` as the remote writes it."""

    name: str
    datatype: str | None = None
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    principal: bool = False
    indexed: bool = False
    std: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items()
                if v not in (None, False)} | {"name": self.name}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RemoteColumn:
        return cls(**d)


@dataclass
class RemoteTable:
    """One remote table: ``schema`` and ``name`` unqualified, as the remote writes them."""

    schema: str
    name: str
    description: str | None = None
    table_type: str = "table"
    nrows: int | None = None
    columns: list[RemoteColumn] = field(default_factory=list)

    def adql_name(self, remote: str) -> str:
        """How a query names this table: ``remote.schema.table``."""
        return f"{remote}.{self.schema}.{self.name}"


@dataclass
class Remote:
    """A registered remote TAP service and its health.

    ``owner_id`` is None for a remote the operator registered (visible to everybody, or
    to ``groups`` when set), or the user id of the user who registered it for
    themselves. ``state``: ``ok`` (last refresh worked), ``failing`` (the last refresh
    failed: ``last_error`` says why; the cached metadata is kept).
    """

    id: int
    name: str
    url: str
    auth: str = "none"
    owner_id: int | None = None
    groups: tuple[str, ...] = ()
    title: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    metadata_source: str = ""  # "vosi" or "tap_schema"
    state: str = "ok"
    last_error: str | None = None
    checked_at: str | None = None
    refreshed_at: str | None = None
    created: str | None = None
    created_by: str | None = None
    table_count: int = 0
    timeout: float | None = None

    def to_json(self, *, admin: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "url": self.url, "title": self.title,
            "state": self.state, "last_error": self.last_error,
            "checked_at": self.checked_at, "refreshed_at": self.refreshed_at,
            "tables": self.table_count, "metadata_source": self.metadata_source,
            "capabilities": self.capabilities.to_dict(),
        }
        if admin:
            out |= {"auth": self.auth, "groups": list(self.groups), "created": self.created,
                    "created_by": self.created_by, "owner_id": self.owner_id,
                    "timeout": self.timeout}
        return out


__all__ = ["Capabilities", "RemoteColumn", "RemoteTable", "Remote", "NAME_PATTERN",
           "RESERVED_NAMES", "RESERVED_PREFIXES", "AUTH_KINDS", "TAP_STANDARD"]
