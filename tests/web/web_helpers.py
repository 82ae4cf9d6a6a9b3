"""Helpers of the web page's tests (import as ``from web_helpers import report``)."""

from __future__ import annotations

from typing import Any

import httpx

from accounts import PASSWORD
from accounts import new_user as _new_user

#: Lines printed in the summary after the run (the targets the browser tests measure).
REPORT: list[str] = []


def report(line: str) -> None:
    """A line for the summary printed after the run (targets, artefacts)."""
    REPORT.append(line)
    print(line)


# --- driving the page (shared by the browser tests) ------------------------------------
CONE = ("SELECT source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright WHERE phot_g_mean_mag"
        " < 9 AND 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 3))")
SLOW = ("SELECT COUNT(*) AS n FROM hipparcos.hip2 AS h, gaia.dr3_bright AS g"
        " WHERE SIN(h.ra + g.ra) > 0.9999999")
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def new_user(server: Any) -> str:
    """A fresh account ``w...`` (password :data:`accounts.PASSWORD`)."""
    return _new_user(server, "w")


def open_page(page: Any, server: Any) -> None:
    page.goto(server.url + "/")
    page.wait_for_selector("html[data-ready] .cm-content")


def log_in(page: Any, name: str) -> None:
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")
    page.wait_for_selector("#logout")


def set_query(page: Any, text: str) -> None:
    page.click(".cm-content")
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)
    page.keyboard.press("Escape")  # close a completion list the text may have opened


def query_text(page: Any) -> str:
    return page.evaluate(
        "[...document.querySelectorAll('.cm-line')].map(l => l.textContent).join('\\n')")


def wait_phase(page: Any, phase: str, timeout: float = 60_000) -> None:
    """Wait until the run bar shows ``phase`` or a final phase, which must be ``phase``."""
    page.wait_for_function(
        "p => [p, 'COMPLETED', 'ERROR', 'ABORTED'].includes("
        "document.querySelector('.job-status .phase')?.textContent)", arg=phase, timeout=timeout)
    shown = page.inner_text(".job-status .phase")
    assert shown == phase, f"{shown}: {page.inner_text('.error-box')}"


def wait_rows(page: Any, n: int) -> None:
    page.wait_for_function(
        "t => document.querySelector('.result-title')?.textContent.startsWith(t)",
        arg=f"{n:,} rows")


def tap_count(server: Any, query: str) -> int:
    r = httpx.post(server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY": query,
                                                   "RESPONSEFORMAT": "json"}, timeout=60)
    return int(r.json()["rows"])


def check_safe(watch: Any, page: Any) -> None:
    """No script ran that the page did not ship, the token stayed in memory, and the page
    fetched nothing from anywhere but its server (it works offline)."""
    origin = "/".join(page.url.split("/", 3)[:3]) + "/"
    assert all(r.url.startswith((origin, "blob:", "data:")) for r in watch.requests)
    assert watch.errors == []
    assert watch.dialogs == []
    assert watch.csp_violations() == []
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    for token in watch.tokens:
        assert all(token not in r.url for r in watch.requests)
    for r in watch.requests:
        path = httpx.URL(r.url).path
        # (A redirect's follow-up is sent with the same headers; Playwright does not
        # show them, so only the requests the page made itself are checked.)
        if (r.resource_type == "fetch" and r.redirected_from is None
                and path.startswith(("/api", "/auth", "/tap"))):
            assert r.headers.get("x-taphouse") == "1", r.url
