"""DALI request parameters: names case-insensitive, GET and POST alike, uploads as parts.

The body is read as it arrives: form fields are kept in memory (at most
:data:`FIELDS_MAX_BYTES` in all), each file part goes straight to a file of its own
under the data directory's ``tmp/`` (never whole in memory). The request's file parts
together may have at most ``max_bytes``; with a :class:`~taphouse.admission.ByteBudget`
the bytes also count against the caller's upload bytes in flight until
:meth:`TapParams.close`. Going over either limit stops reading at once (413).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import ClientDisconnect, Request

from taphouse.admission import ByteBudget, TooLarge
from taphouse.tap.errors import TapError

#: Most bytes of form fields (names and values) in one request: a QUERY of the longest
#: accepted length, percent-encoded, fits several times over.
FIELDS_MAX_BYTES = 2 * 1024 * 1024
_MAX_PARTS = 100
_MAX_FIELDS = 1000


@dataclass
class TapParams:
    """Parameters of one request: ``values`` maps lower-case names to all their values;
    ``parts`` holds the multipart file parts by their form name (case kept, as UPLOAD
    refers to them by ``param:NAME``) as files under the data directory's ``tmp/``;
    :meth:`close` deletes the ones nobody took (:meth:`take_part`)."""

    values: dict[str, list[str]] = field(default_factory=dict)
    parts: dict[str, Path] = field(default_factory=dict)
    part_types: dict[str, str] = field(default_factory=dict)
    _budget: ByteBudget | None = None
    _key: str = ""
    _held: int = 0

    def get(self, name: str, default: str | None = None) -> str | None:
        vals = self.values.get(name.lower())
        return vals[-1] if vals else default

    def getall(self, name: str) -> list[str]:
        return list(self.values.get(name.lower(), []))

    def add(self, name: str, value: str) -> None:
        self.values.setdefault(name.lower(), []).append(value)

    def flat(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.values.items() if v}

    def take_part(self, name: str) -> Path:
        """The file of part ``name``, no longer deleted by :meth:`close` (the caller
        moved or will delete it)."""
        return self.parts.pop(name)

    def close(self) -> None:
        """Delete the part files and give the caller's upload bytes back."""
        for path in self.parts.values():
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self.parts.clear()
        if self._budget is not None and self._held:
            self._budget.give_back(self._key, self._held)
            self._held = 0


async def read_params(request: Request, *, max_bytes: int, spool_dir: Path | None = None,
                      budget: ByteBudget | None = None, key: str = "") -> TapParams:
    """Collect query-string and body parameters (urlencoded or multipart).

    Parameters
    ----------
    max_bytes
        Most bytes of file parts in the request (HTTP 413 beyond).
    spool_dir
        Where file parts are written (the server process's area under the data
        directory's ``tmp/``, ``Platform.scratch``); the system's temporary directory
        when None.
    budget, key
        The caller's upload bytes in flight, and the caller's key in it.
    """
    params = TapParams(_budget=budget, _key=key)
    for k, value in request.query_params.multi_items():
        params.add(k, value)
    if request.method != "POST":
        return params
    ctype = request.headers.get("content-type", "")
    multipart = ctype.startswith("multipart/form-data")
    if not multipart and not ctype.startswith("application/x-www-form-urlencoded"):
        return params
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FIELDS_MAX_BYTES:
        raise TooLarge(f"the request body has {declared} bytes; uploads may have at most"
                       f" {max_bytes} bytes per request")
    reader = _BodyReader(params, max_bytes, spool_dir)
    try:
        if multipart:
            await reader.multipart(request, ctype)
        else:
            await reader.urlencoded(request)
    except BaseException as exc:
        reader.abandon()
        params.close()
        if isinstance(exc, ClientDisconnect):
            raise TapError("the client went away while sending the request") from None
        if isinstance(exc, OSError):
            raise TapError(f"cannot store the upload: {exc.strerror or exc}", 507) from None
        raise
    return params



class _BodyReader:
    """Feeds the request body to python-multipart, writing file parts to disk."""

    def __init__(self, params: TapParams, max_bytes: int, spool_dir: Path | None) -> None:
        self.params = params
        self.max_bytes = max_bytes
        self.spool_dir = spool_dir
        self.file_bytes = 0
        self.field_bytes = 0
        self.fields = 0
        self._name = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._file: Any = None
        self._file_path: Path | None = None
        self._part_name = ""

    # --- limits -----------------------------------------------------------------------
    def _count_field(self, n: int) -> None:
        self.field_bytes += n
        if self.field_bytes > FIELDS_MAX_BYTES:
            raise TooLarge(f"the request's form fields have more than {FIELDS_MAX_BYTES}"
                           " bytes; send tables as upload parts (UPLOAD=name,param:part)")

    def _count_file(self, n: int) -> None:
        self.file_bytes += n
        if self.file_bytes > self.max_bytes:
            raise TooLarge(f"the uploads of this request have more than {self.max_bytes}"
                           f" bytes; the limit is {self.max_bytes} per request")
        p = self.params
        if p._budget is not None:
            p._budget.take(p._key, n)
            p._held += n

    # --- urlencoded -------------------------------------------------------------------
    async def urlencoded(self, request: Request) -> None:
        import python_multipart

        def on_field_start() -> None:
            self._name, self._value = bytearray(), bytearray()

        def on_field_name(data: bytes, start: int, end: int) -> None:
            self._count_field(end - start)
            self._name += data[start:end]

        def on_field_data(data: bytes, start: int, end: int) -> None:
            self._count_field(end - start)
            self._value += data[start:end]

        def on_field_end() -> None:
            self._add_field(unquote_plus(self._name.decode("latin-1")),
                            unquote_plus(self._value.decode("latin-1")))

        parser = python_multipart.QuerystringParser({
            "on_field_start": on_field_start, "on_field_name": on_field_name,
            "on_field_data": on_field_data, "on_field_end": on_field_end})
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()

    def _add_field(self, name: str, value: str) -> None:
        self.fields += 1
        if self.fields > _MAX_FIELDS:
            raise TapError(f"more than {_MAX_FIELDS} parameters in one request")
        self.params.add(name, value)

    # --- multipart --------------------------------------------------------------------
    async def multipart(self, request: Request, ctype: str) -> None:
        import python_multipart
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(ctype)
        boundary = options.get(b"boundary")
        if not boundary:
            raise TapError("cannot read the request body: multipart without a boundary")
        parser = python_multipart.MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_part_data": self._part_data,
            "on_part_end": self._part_end, "on_header_field": self._header_field_cb,
            "on_header_value": self._header_value_cb, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished})
        try:
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except FormParserError as exc:
            raise TapError(f"cannot read the request body: {exc}") from None

    def _part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()
        self._file = None

    def _header_field_cb(self, data: bytes, start: int, end: int) -> None:
        self._count_field(end - start)
        self._header_field += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._count_field(end - start)
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field, self._header_value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part_name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if self.max_bytes <= 0:
                raise TooLarge("this request takes no upload parts")
            if len(self.params.parts) >= _MAX_PARTS:
                raise TapError(f"more than {_MAX_PARTS} upload parts in one request")
            if self.spool_dir is not None:
                self.spool_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="upload-", dir=self.spool_dir)
            self._file = os.fdopen(fd, "wb")
            self._file_path = Path(name)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._count_file(end - start)
            self._file.write(data[start:end])
        else:
            self._count_field(end - start)
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            old = self.params.parts.pop(self._part_name, None)
            if old is not None:  # the same name twice: the last one counts
                old.unlink(missing_ok=True)
            self.params.parts[self._part_name] = self._file_path  # type: ignore[assignment]
            ctype = self._headers.get(b"content-type", b"").decode("latin-1")
            self.params.part_types[self._part_name] = ctype
        else:
            self._add_field(self._part_name, self._value.decode("utf-8", "replace"))

    def abandon(self) -> None:
        """Reading failed: close and delete the part being written."""
        if self._file is not None:
            self._file.close()
            self._file = None
            if self._file_path is not None:
                self._file_path.unlink(missing_ok=True)
