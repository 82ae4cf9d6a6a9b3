"""Serving the built page: files read once, gzip-compressed once, with a strict
Content-Security-Policy and validators for caching.

The bundle is small (a few hundred KB) and changes only with the installed package, so
every file is held in memory with its gzip form; a request costs a dictionary lookup.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

#: The page's policy: scripts, styles and fetches only from this origin, nothing
#: inline, no eval, no plugins, never framed. ``{nonce}``: the editor's style element
#: (CodeMirror writes its styles into one) carries a nonce that is new in every page.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'{nonce};"
            " img-src 'self' data: blob:; connect-src 'self'; font-src 'self';"
            " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

#: What index.html holds where the server puts the page's nonce.
NONCE_MARK = b"__CSP_NONCE__"

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml",
          ".json": "application/json", ".txt": "text/plain; charset=utf-8"}
_COMPRESSIBLE = {".js", ".css", ".html", ".svg", ".json", ".txt"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


class WebPage:
    """The files of the built page, by path relative to the static directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(str(resources.files("taphouse.web") / "static"))
        self.files: dict[str, StaticFile] = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                self.files[path.relative_to(self.root).as_posix()] = _load(path)

    @property
    def built(self) -> bool:
        return "index.html" in self.files

    def response(self, name: str, request: Request) -> Response | None:
        """The file ``name`` as a response (304 when the client has it), or None."""
        f = self.files.get(name)
        if f is None:
            return None
        headers = {"Content-Security-Policy": PAGE_CSP.format(nonce=""),
                   "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
        if NONCE_MARK in f.body:
            # A page with a nonce is new every time: never cached, never a 304.
            nonce = secrets.token_urlsafe(18)
            headers["Content-Security-Policy"] = PAGE_CSP.format(nonce=f" 'nonce-{nonce}'")
            headers["Cache-Control"] = "no-store"
            return Response(f.body.replace(NONCE_MARK, nonce.encode()),
                            media_type=f.media_type, headers=headers)
        # Revalidate every time: file names carry no hash, and a 304 is cheap.
        headers.update({"ETag": f.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"})
        if request.headers.get("if-none-match") == f.etag:
            return Response(status_code=304, headers=headers)
        body = f.body
        if f.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body = f.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=f.media_type, headers=headers)


def _load(path: Path) -> StaticFile:
    body = path.read_bytes()
    media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
        "application/octet-stream"
    gzipped = None
    if path.suffix in _COMPRESSIBLE and len(body) > 256:
        gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return StaticFile(body, gzipped, media_type, etag)


def add_web_routes(app: FastAPI, page: WebPage | None = None) -> WebPage:
    """``/`` (the page) and ``/static/<file>`` (its assets)."""
    page = page or WebPage()

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index(request: Request) -> Response:
        resp = page.response("index.html", request)
        if resp is None:
            return Response("the web page is not built: run `npm ci && npm run build`"
                            " in web/", status_code=404, media_type="text/plain")
        return resp

    @app.api_route("/static/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def static(request: Request, name: str) -> Response:
        resp = page.response(name, request) if name != "index.html" else None
        if resp is None:
            raise HTTPException(404, f"no file {name!r} in the web page's assets")
        return resp

    return page
