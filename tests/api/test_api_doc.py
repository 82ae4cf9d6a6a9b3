"""docs/api.md lists every /api, /auth and /metrics route the application serves."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
PREFIXES = ("/api/", "/auth/", "/metrics")
SKIP = {"/api/docs", "/api/openapi.json"}  # the documentation pages themselves


def _normal(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def documented() -> set[tuple[str, str]]:
    text = DOC.read_text()
    index = text.split("## Endpoint index", 1)[1]
    block = re.search(r"```text\n(.*?)```", index, flags=re.S).group(1)
    out = set()
    for line in block.splitlines():
        m = re.match(r"(GET|POST|PUT|PATCH|DELETE)\s+(/\S*)", line)
        assert m, f"not an index line: {line!r}"
        out.add((m.group(1), _normal(m.group(2))))
    return out


def served(start_server) -> set[tuple[str, str]]:
    server = start_server()
    import httpx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = httpx.get(server.url + "/api/openapi.json", timeout=60).json()
    out = set()
    for path, ops in schema["paths"].items():
        if not path.startswith(PREFIXES) or path in SKIP:
            continue
        for method in ops:
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                out.add((method.upper(), _normal(path)))
    return out


def test_the_endpoint_index_matches_the_routes(start_server):
    doc, app = documented(), served(start_server)
    missing = sorted(app - doc)
    stale = sorted(doc - app)
    assert not missing, f"routes served but not in docs/api.md's Endpoint index: {missing}"
    assert not stale, f"docs/api.md lists routes the application does not serve: {stale}"
    assert ("GET", "/metrics") in app and ("GET", "/api/jobs") in app
