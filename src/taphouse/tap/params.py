"""DALI request parameters: names case-insensitive, GET and POST alike, uploads as parts."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.requests import Request

from taphouse.tap.errors import TapError


@dataclass
class TapParams:
    """Parameters of one request: ``values`` maps lower-case names to all their values;
    ``parts`` holds the multipart file parts by their form name (case kept, as UPLOAD
    refers to them by ``param:NAME``)."""

    values: dict[str, list[str]] = field(default_factory=dict)
    parts: dict[str, bytes] = field(default_factory=dict)
    part_types: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        vals = self.values.get(name.lower())
        return vals[-1] if vals else default

    def getall(self, name: str) -> list[str]:
        return list(self.values.get(name.lower(), []))

    def add(self, name: str, value: str) -> None:
        self.values.setdefault(name.lower(), []).append(value)

    def flat(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.values.items() if v}


async def read_params(request: Request, *, max_bytes: int) -> TapParams:
    """Collect query-string and body parameters (urlencoded or multipart)."""
    params = TapParams()
    for key, value in request.query_params.multi_items():
        params.add(key, value)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            try:
                form = await request.form(max_files=100, max_fields=1000,
                                          max_part_size=max_bytes)
            except Exception as exc:  # malformed bodies come in many shapes
                raise TapError(f"cannot read the request body: {exc}") from None
            try:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        data = await value.read()
                        if len(data) > max_bytes:
                            raise TapError(f"upload part {key!r} has {len(data)} bytes;"
                                           f" the limit is {max_bytes}", 413)
                        params.parts[key] = data
                        params.part_types[key] = value.content_type or ""
                    else:
                        params.add(key, value)
            finally:
                await form.close()
    return params
