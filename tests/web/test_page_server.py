"""The page as the server sends it: at /, assets under /static, compressed, cached by
ETag, with a Content-Security-Policy that allows no inline or eval'd script; and the
page's sources never hand service text to the HTML parser."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "taphouse" / "web" / "static"

#: The first page's budget (bytes transferred), from the [web-1] issue.
FIRST_PAGE_BUDGET = 300 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from servers import start_live

    s = start_live(tmp_path_factory.mktemp("page"))
    yield s
    s.stop()


def _csp(headers: httpx.Headers) -> dict[str, str]:
    policy = headers["content-security-policy"]
    return {d.split()[0]: d for d in (p.strip() for p in policy.split(";")) if d}


def test_page_and_policy(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = _csp(r.headers)
    assert csp["default-src"] == "default-src 'self'"
    assert csp["script-src"] == "script-src 'self'"
    assert "unsafe" not in r.headers["content-security-policy"]
    assert csp["object-src"] == "object-src 'none'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    nonce = re.search(r"'nonce-([^']+)'", csp["style-src"]).group(1)
    assert f'<meta name="csp-nonce" content="{nonce}">' in r.text
    assert "__CSP_NONCE__" not in r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    # A new nonce for every page.
    again = httpx.get(server.url + "/")
    assert re.search(r"'nonce-([^']+)'", again.headers["content-security-policy"]).group(1) != nonce
    assert httpx.head(server.url + "/").status_code == 200
    # Every asset the page names is served.
    for ref in re.findall(r'(?:src|href)="(static/[^"]+)"', r.text):
        assert httpx.get(f"{server.url}/{ref}").status_code == 200, ref


def test_assets_compressed_and_revalidated(server):
    total = len(httpx.get(server.url + "/").content)
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        r = httpx.get(f"{server.url}/static/{name}", headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert r.headers["content-encoding"] == "gzip"
        assert r.content == (STATIC / name).read_bytes()  # httpx decoded it
        size = int(r.headers["content-length"])
        assert size < len(r.content) / 2
        total += size
        etag = r.headers["etag"]
        again = httpx.get(f"{server.url}/static/{name}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and not again.content
        plain = httpx.get(f"{server.url}/static/{name}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == r.content
    assert total <= FIRST_PAGE_BUDGET, total


@pytest.mark.parametrize("path", ["/static/nothing.js", "/static/../server.py",
                                  "/static/%2e%2e/server.py", "/static/index.html",
                                  "/static/", "/static/..%2F..%2Fpyproject.toml"])
def test_unknown_assets_are_404(server, path):
    r = httpx.get(server.url + path)
    assert r.status_code == 404
    assert "text/html" not in r.headers.get("content-type", "")


def test_built_page_is_in_the_package():
    """setuptools ships static/ (package data), so `pip install` serves the page."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["taphouse"]
    assert "web/static/*" in patterns
    assert {"index.html", "app.js", "app.css"} <= {p.name for p in STATIC.iterdir()}
    assert len(gzip.compress((STATIC / "app.js").read_bytes())) < FIRST_PAGE_BUDGET


def test_sources_never_parse_service_text_as_html():
    """Every string from the service is inserted as text: the page's own code uses no
    HTML-parsing sink (the bundle's libraries are CodeMirror's, which build nodes too)."""
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|"
                       r"createContextualFragment|\beval\(|new Function\(|srcdoc")
    sources = sorted((ROOT / "web" / "src").glob("*.ts"))
    assert sources
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not sinks.search(line), f"{path.name}:{number}: {line.strip()}"
