"""Your user space (the ADQL schema ``mydb``): list, describe, upload, download, drop,
rename, share."""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from taphouse.client.http import send
from taphouse.client.models import Listing, UserTable, build
from taphouse.client.output import (
    arrow_output,
    as_table,
    convert,
    parse_votable,
    read_parquet,
    result_format,
    upload_format,
    upload_parquet,
)

if TYPE_CHECKING:
    from taphouse.client.client import Client

FORMATS = {".xml": "votable", ".vot": "votable", ".votable": "votable", ".csv": "csv",
           ".parquet": "parquet", ".pq": "parquet", ".fits": "fits", ".fit": "fits",
           ".fits.gz": "fits"}
MIME = {"votable": "application/x-votable+xml", "csv": "text/csv",
        "parquet": "application/vnd.apache.parquet", "fits": "application/fits"}


def table_name(name: Any) -> str:
    """The bare table name from ``name``, ``mydb.name``, ``user_x.name`` or a UserTable."""
    if isinstance(name, UserTable):
        return name.name
    text = str(name)
    return text.split(".", 1)[1] if "." in text else text


class UserSpace:
    """The tables you own (and see as ``mydb.<table>`` in ADQL). ``client.mydb``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _url(self, name: Any, suffix: str = "") -> str:
        return f"{self.client.url}/api/usertables/{quote(table_name(name), safe='')}{suffix}"

    def _read_url(self, name: Any, suffix: str = "") -> str:
        # Reading also reaches a table another user shared with you, by its full name
        # ("user_ada.t"); "mydb.t" and "t" are your own.
        text = name.qualified_name or name.name if isinstance(name, UserTable) else str(name)
        if "." not in text or text.split(".", 1)[0].lower() == "mydb":
            return self._url(name, suffix)
        return f"{self.client.url}/api/usertables/{quote(text, safe='')}{suffix}"

    def _send(self, method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.client.timeout)
        return send(self.client.session, method, url, **kwargs)

    def list(self) -> Listing:
        """Your tables, with sizes, provenance and shares."""
        r = self._send("GET", f"{self.client.url}/api/usertables")
        return Listing([build(UserTable, t) for t in r.json()], UserTable, title="mydb")

    def __iter__(self) -> Iterator[UserTable]:
        return iter(self.list())

    def __repr__(self) -> str:
        return repr(self.list())

    def _repr_html_(self) -> str:
        return self.list()._repr_html_()

    def describe(self, name: Any) -> UserTable:
        """One table with its columns (yours, or ``"user_x.t"`` shared with you)."""
        body = self._send("GET", self._read_url(name)).json()
        return build(UserTable, body)

    def upload(self, name: str, data: Any, *, mode: str = "create", format: str | None = None,
               description: str | None = None) -> UserTable:
        """Store a table as ``mydb.<name>``.

        Parameters
        ----------
        name
            Table name.
        data
            An astropy Table, a pandas or polars DataFrame, an Arrow table, a file path
            (VOTable, CSV, Parquet, FITS), or bytes / a binary file object with ``format``.
        mode
            ``"create"`` (fail if it exists), ``"replace"`` or ``"append"``.
        format
            The file format when it cannot be told from a file name.
        description
            Set the table's description.
        """
        body, fmt = _payload(data, format)
        r = self._send("PUT", self._url(name), params={"mode": mode, "format": fmt},
                       data=body, headers={"Content-Type": MIME.get(fmt, "application/octet-stream")})
        if hasattr(body, "close"):
            body.close()
        table = build(UserTable, r.json())
        if description is not None:
            table = self._patch(table_name(name), {"description": description})
        return table

    def _patch(self, name: str, changes: dict[str, Any]) -> UserTable:
        r = self._send("PATCH", self._url(name), json=changes)
        return build(UserTable, r.json())

    def download(self, name: Any, *, output: str = "astropy", path: str | os.PathLike | None = None,
                 format: str = "votable") -> Any:
        """A table's rows (yours, or ``"user_x.t"`` shared with you) as an astropy Table
        (or ``output``), or written to ``path`` in
        ``format`` (any TAP RESPONSEFORMAT the server offers); returns the path then."""
        if path is not None:
            r = self._send("GET", self._read_url(name, "/data"), params={"format": format},
                           stream=True)
            with open(path, "wb") as f:
                for chunk in r.iter_content(1 << 20):
                    f.write(chunk)
            return Path(path)
        fmt = result_format(output)
        r = self._send("GET", self._read_url(name, "/data"), params={"format": fmt})
        if r.content[:4] == b"PAR1":
            arrow, header, _, _ = read_parquet(r.content)
            return arrow_output(arrow, output, header, {})
        table, _, _ = parse_votable(r.content)
        if table is None:
            from astropy.table import Table

            table = Table()
        return convert(table, output)

    def drop(self, name: Any) -> None:
        """Delete a table."""
        self._send("DELETE", self._url(name))

    def rename(self, name: Any, new_name: str) -> UserTable:
        """Give a table a new name."""
        return self._patch(table_name(name), {"name": new_name})

    def share(self, name: Any, *, users: Sequence[str] = (),
              groups: Sequence[str] = ()) -> dict[str, builtins.list[str]]:
        """Let these users and groups read the table (replaces the previous list; pass
        nothing to stop sharing)."""
        r = self._send("PUT", self._url(name, "/shares"),
                       json={"users": [*users], "groups": [*groups]})
        shares: dict[str, builtins.list[str]] = r.json()
        return shares

    def shares(self, name: Any) -> dict[str, builtins.list[str]]:
        """Who the table is shared with."""
        shares: dict[str, builtins.list[str]] = self._send("GET", self._url(name, "/shares")).json()
        return shares


def _payload(data: Any, fmt: str | None) -> tuple[Any, str]:
    if isinstance(data, (str, os.PathLike)):
        path = Path(data).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no file {str(path)!r} to upload")
        if fmt is None:
            name = path.name.lower()
            fmt = next((f for s, f in FORMATS.items() if name.endswith(s)), None)
            if fmt is None:
                raise ValueError(f"cannot tell the format of {path.name!r}: pass"
                                 " format='votable'|'csv'|'parquet'|'fits'")
        return open(path, "rb"), fmt  # noqa: SIM115  (closed after the request)
    if isinstance(data, (bytes, bytearray, io.IOBase)):
        if fmt is None:
            raise ValueError("pass format='votable'|'csv'|'parquet'|'fits' with raw data")
        return data, fmt
    table = as_table(data)
    if upload_format() == "parquet":  # see client/output.py: far faster both ends
        try:
            return upload_parquet(table).getvalue(), "parquet"
        except Exception:  # noqa: BLE001 - columns Arrow cannot hold (mixins): VOTable
            pass
    buf = io.BytesIO()
    table.write(buf, format="votable", tabledata_format="binary2")
    return buf.getvalue(), "votable"


__all__ = ["UserSpace", "table_name"]
