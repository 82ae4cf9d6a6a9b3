"""The API reference page at ``/api/docs``: plain HTML built from the OpenAPI document,
with no scripts and nothing loaded from elsewhere, so it works offline and under a
strict Content-Security-Policy. (FastAPI's Swagger UI loads its scripts from a CDN.)"""

from __future__ import annotations

from html import escape
from typing import Any

#: The page runs no script and loads nothing but its own inline style.
DOCS_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self';"
            " frame-ancestors 'none'")

_STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em;
       line-height: 1.4; color: #222; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
.op { margin: .6em 0 1em 0; }
.method { display: inline-block; min-width: 4.5em; font-weight: bold; font-family: monospace; }
code { background: #f4f4f4; padding: 0 .2em; }
.doc { margin: .2em 0 0 5em; white-space: pre-wrap; color: #444; }
"""

_GROUPS = [
    ("/auth", "Login and tokens (/auth)"),
    ("/api/admin", "Operator API (/api/admin, administrators, bearer tokens only)"),
    ("/api", "Platform API (/api)"),
    ("/tap", "TAP 1.1 service (/tap)"),
    ("/ws", "Workspace TAP services (/ws/<user>/<workspace>/tap)"),
]


def docs_html(openapi: dict[str, Any], *, title: str, base: str) -> str:
    """The reference page for an OpenAPI document (``app.openapi()``)."""
    groups: dict[str, list[str]] = {heading: [] for _, heading in _GROUPS}
    for path, operations in sorted(openapi.get("paths", {}).items()):
        heading = next((h for prefix, h in _GROUPS if path.startswith(prefix)), None)
        if heading is None:
            continue
        for method, op in operations.items():
            doc = (op.get("description") or op.get("summary") or "").strip()
            entry = (f'<div class="op"><span class="method">{escape(method.upper())}</span>'
                     f"<code>{escape(path)}</code>")
            if doc:
                entry += f'<div class="doc">{escape(doc)}</div>'
            groups[heading].append(entry + "</div>")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{escape(title)} API</title><style>{_STYLE}</style></head><body>",
             f"<h1>{escape(title)} API</h1>",
             "<p>Requests that change something send JSON (<code>Content-Type:"
             " application/json</code>) or an <code>X-Taphouse</code> header; log in at"
             f" <code>POST {escape(base)}/auth/token</code> and send"
             " <code>Authorization: Bearer &lt;token&gt;</code>. The machine-readable"
             f' description is <a href="{escape(base)}/api/openapi.json">openapi.json</a>;'
             " the Python client (<code>taphouse.connect()</code>) wraps all of this.</p>"]
    for heading, entries in groups.items():
        if entries:
            parts.append(f"<h2>{escape(heading)}</h2>")
            parts.extend(entries)
    parts.append("</body></html>")
    return "\n".join(parts)
