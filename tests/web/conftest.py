"""Browser tests of the page: Debian's chromium, driven by Playwright for Python (never a
downloaded browser), against live servers on 127.0.0.1.

- ``browser``: one headless chromium per session;
- ``artefacts``: the directory screenshots go to (``$TAPHOUSE_ARTEFACTS/web``, by default
  ``.artefacts/web`` in the repository, git-ignored), printed at the end of the run with
  the measured targets (``web_helpers.report``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TAPHOUSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

_artefact_dir: list[Path] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from web_helpers import REPORT

    if not REPORT and not _artefact_dir:
        return
    terminalreporter.section("web page (tests/web)")
    for line in REPORT:
        terminalreporter.write_line(line)
    for d in _artefact_dir:
        terminalreporter.write_line(f"screenshots: {d}")


@pytest.fixture(scope="session")
def artefacts() -> Path:
    root = Path(os.environ.get("TAPHOUSE_ARTEFACTS") or Path(__file__).parents[2] / ".artefacts")
    path = root / "web"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    _artefact_dir.append(path)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class PageWatch:
    """What a page did: requests (URL, headers), console errors, CSP violations,
    JavaScript dialogs (alert/confirm would be an XSS sign)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[Any] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.tokens: list[str] = []
        page.on("request", lambda r: self.requests.append(r))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        page.on("response", self._response)
        # CSP violations are reported in the page; collect them before any script runs.
        page.add_init_script(
            "window.__csp = []; document.addEventListener('securitypolicyviolation',"
            " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")

    def _console(self, msg: Any) -> None:
        # Chrome logs every 4xx answer to fetch; those the page expects are its business.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            self.errors.append(f"console: {msg.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _response(self, response: Any) -> None:
        if response.url.endswith("/auth/token") and response.status == 200:
            try:
                self.tokens.append(response.json()["access_token"])
            except Exception:  # noqa: BLE001  (the body may be gone already)
                pass

    def csp_violations(self) -> list[str]:
        return self.page.evaluate("window.__csp")


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """``page, watch = new_page()``: a fresh context (no shared storage) per call."""
    contexts: list[Any] = []

    def make(width: int = 1400, height: int = 900) -> tuple[Any, PageWatch]:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return page, PageWatch(page)

    yield make
    for c in contexts:
        c.close()
