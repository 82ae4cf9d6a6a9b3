"""The page in a real browser (Debian chromium via Playwright) against live servers:
an astronomer's session from login to logout, a 100k-row result scrolled, the warning
before an unbounded query on a big table, and hostile metadata that must stay text.

Prints the issue's targets (first page bytes, time to interactive, scroll step) and
saves screenshots (directory printed at the end of the run).
"""

from __future__ import annotations

import io
import re

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from web_helpers import (
    CONE,
    PASSWORD,
    SLOW,
    XSS,
    check_safe,
    log_in,
    new_user,
    open_page,
    query_text,
    report,
    set_query,
    tap_count,
    wait_phase,
    wait_rows,
)

pytestmark = pytest.mark.slow


def settle_completion(page) -> None:
    """Let the completion list stop changing before Enter accepts it.

    CodeMirror swallows Enter for ``interactionDelay`` (75 ms) after the list opens or is
    re-filtered, so an Enter right after the last keystroke can be eaten (CI saw
    "phot_g_m" left uncompleted). Wait until the list has been the same for 200 ms.
    """
    page.wait_for_function("""() => new Promise(done => {
        const list = () => [...document.querySelectorAll('.cm-tooltip-autocomplete li')]
            .map(li => li.textContent + (li.getAttribute('aria-selected') || '')).join('|');
        const before = list();
        setTimeout(() => done(before !== '' && before === list()), 200);
    })""")


def test_astronomer_session(demo_server, new_page, artefacts, tmp_path):
    server = demo_server
    name = new_user(server)
    page, watch = new_page()
    open_page(page, server)

    # Targets: bytes of the first page and time until the editor takes input.
    timing = page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const assets = performance.getEntriesByType('resource')
            .filter(r => r.name.includes('/static/'));
        return {nav: nav.toJSON(), bytes: nav.transferSize + assets.reduce((s, r) => s + r.transferSize, 0),
                raw: nav.decodedBodySize + assets.reduce((s, r) => s + r.decodedBodySize, 0),
                files: assets.length,
                interactive: performance.getEntriesByName('taphouse-interactive')[0].startTime};
    }""")
    report(f"first page: {timing['bytes'] / 1024:.0f} KB transferred ({timing['raw'] / 1024:.0f} KB"
           f" uncompressed, {timing['files'] + 1} files); target <= 300 KB")
    report(f"interactive after {timing['interactive']:.0f} ms; target <= 1000 ms")
    print(timing["nav"])
    assert 0 < timing["bytes"] <= 300 * 1024
    page.wait_for_selector(".db-row[data-db=gaia]")  # the table browser is the first panel
    page.screenshot(path=str(artefacts / "01-start.png"))

    log_in(page, name)
    assert page.inner_text(".whoami") == f"Logged in as {name}"

    # A cone query written with completion: the table, then a column.
    page.click(".cm-content")
    page.keyboard.type("SELECT source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_b")
    option = page.wait_for_selector(".cm-tooltip-autocomplete li[aria-selected]")
    assert option.inner_text().startswith("dr3_bright")
    page.wait_for_selector(".cm-completionInfo")
    assert "Gaia DR3" in page.inner_text(".cm-completionInfo")
    page.screenshot(path=str(artefacts / "02-completion-table.png"))
    settle_completion(page)
    page.keyboard.press("Enter")
    page.keyboard.type(" WHERE phot_g_m")
    option = page.wait_for_selector(".cm-tooltip-autocomplete li[aria-selected]")
    assert option.inner_text().startswith("phot_g_mean_mag")
    page.screenshot(path=str(artefacts / "03-completion-column.png"))
    settle_completion(page)
    page.keyboard.press("Enter")
    page.keyboard.type(" < 9 AND 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 3))")
    assert query_text(page) == CONE

    # Run it (Ctrl-Enter): phase, elapsed and rows, then the grid.
    page.keyboard.press("Control+Enter")
    wait_phase(page, "COMPLETED")
    expected = tap_count(server, CONE)
    assert expected > 50
    wait_rows(page, expected)
    assert f"{expected:,} rows" in page.inner_text(".job-status")
    headers = page.eval_on_selector_all(".grid-head .grid-col", "els => els.map(e => e.innerText)")
    assert headers == ["source_id", "ra\ndeg", "dec\ndeg", "phot_g_mean_mag\nmag"]
    first = page.eval_on_selector_all(".grid-canvas .grid-row:not([hidden])",
                                      "rows => rows[0].innerText")
    assert re.match(r"1\s+\d{15,19}\s+5\d\.\d+", first)
    # 64-bit identifiers stay exact (JSON numbers beyond 2**53).
    ids = httpx.post(server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY": CONE,
                                                     "RESPONSEFORMAT": "csv"}).text.split("\n")[1]
    assert first.split()[1] == ids.split(",")[0]
    page.screenshot(path=str(artefacts / "04-result.png"))

    # Sorted by magnitude (click the header), brightest first.
    page.click(".grid-head .grid-col:nth-child(5)")
    mags = page.eval_on_selector_all(
        ".grid-canvas .grid-row:not([hidden])",
        "rows => rows.map(r => Number(r.children[4].textContent))")
    assert mags[:5] == sorted(mags[:5])
    assert mags[0] == min(mags)

    # Downloads: a Blob from a fetch with the bearer header, never a URL with a token.
    magic = {"votable": b"<?xml", "csv": b"source_id,ra,dec", "fits": b"SIMPLE",
             "parquet": b"PAR1"}
    for fmt, start in magic.items():
        with page.expect_download() as info:
            page.click(f"button[data-format={fmt}]")
        download = info.value
        assert download.url.startswith("blob:")
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        assert path.read_bytes().startswith(start), fmt
    assert (tmp_path / next(p.name for p in tmp_path.iterdir() if p.suffix == ".csv")) \
        .read_text().count("\n") == expected + 1

    # Keep it as a table in mydb.
    page.click("#keep")
    page.fill("#keep-name", "pleiades_bright")
    page.screenshot(path=str(artefacts / "05-keep.png"))
    page.click("#dialog-ok")
    page.wait_for_function(
        "() => document.querySelector('.result-note')?.textContent.includes('Kept as')")
    assert f"pleiades_bright ({expected:,} rows)" in page.inner_text(".result-note")
    assert page.inner_text(".result-title").startswith(f"{expected:,} rows")  # still shown
    with httpx.Client(base_url=server.url, auth=(name, PASSWORD), timeout=60,
                      headers={"X-Taphouse": "tests"}) as api:
        kept = api.get("/api/usertables/pleiades_bright").json()
        assert kept["nrows"] == expected
        jobs = api.get("/api/jobs").json()
    assert [j["query"] for j in jobs[:2]] == [CONE, CONE]
    assert jobs[0]["dest"] == "mydb.pleiades_bright"

    # The history: both jobs, newest first; Edit puts the text back.
    page.click("button[data-panel=history]")
    page.wait_for_selector(".history-item")
    items = page.query_selector_all(".history-item")
    assert len(items) == 2
    assert all(CONE in i.inner_text() for i in items)
    assert "COMPLETED" in items[1].inner_text() and f"{expected:,} rows" in items[1].inner_text()
    page.screenshot(path=str(artefacts / "06-history.png"))
    set_query(page, "")
    items[1].query_selector("text=Edit").click()
    assert query_text(page) == CONE
    items[1].query_selector("text=Re-run").click()
    page.wait_for_function("() => document.querySelectorAll('.history-item').length === 3")
    wait_phase(page, "COMPLETED")
    wait_rows(page, expected)

    # A careless click: nothing to run.
    set_query(page, "   ")
    page.click("#run")
    assert "Write a query first" in page.inner_text(".error-box")

    # An error shows where it is: line 2, at the unknown column.
    set_query(page, "SELECT TOP 5 ra,\n  dex FROM gaia.dr3_bright")
    page.click("#run")
    wait_phase(page, "ERROR")
    assert "dex" in page.inner_text(".error-box")
    marked = page.wait_for_selector(".cm-lintRange-error")
    assert marked.inner_text() == "dex"
    assert page.evaluate("document.querySelector('.cm-lintRange-error').closest('.cm-line')"
                         ".textContent") == "  dex FROM gaia.dr3_bright"
    page.screenshot(path=str(artefacts / "07-error.png"))

    # A long query can be aborted.
    set_query(page, SLOW)
    page.click("#run")
    wait_phase(page, "EXECUTING")
    page.click("#abort")
    wait_phase(page, "ABORTED")

    # Delete from the history.
    page.wait_for_selector(".history-item")
    before = len(page.query_selector_all(".history-item"))
    page.query_selector(".history-item").query_selector("text=Delete").click()
    page.wait_for_function(f"() => document.querySelectorAll('.history-item').length === {before - 1}")
    with httpx.Client(base_url=server.url, auth=(name, PASSWORD), timeout=60,
                      headers={"X-Taphouse": "tests"}) as api:
        assert len(api.get("/api/jobs").json()) == before - 1

    # Log out: anonymous again, nothing of the user's left on the page.
    page.click("#logout")
    page.wait_for_selector("#login")
    assert page.query_selector_all(".history-item") == []
    assert page.inner_text(".result-title") == "No result yet"
    page.screenshot(path=str(artefacts / "08-logged-out.png"))
    check_safe(watch, page)


def test_scroll_100k_rows(demo_server, new_page, artefacts):
    page, watch = new_page()
    open_page(page, demo_server)
    set_query(page, "SELECT TOP 100000 source_id, ra, dec, phot_g_mean_mag, phot_bp_mean_mag,"
                     " phot_rp_mean_mag, hip FROM gaia.dr3_bright")
    page.evaluate("""() => { window.__long = [];
        new PerformanceObserver(l => window.__long.push(...l.getEntries().map(e => e.duration)))
            .observe({type: 'longtask'}); }""")
    page.keyboard.press("Control+Enter")
    wait_phase(page, "COMPLETED", timeout=120_000)
    wait_rows(page, 100_000)
    longest = page.evaluate("Math.max(0, ...window.__long)")
    report(f"100,000 rows loaded (fetched and parsed in a worker): longest main-thread task"
           f" {longest:.0f} ms")
    result = page.evaluate("""() => {
        const scroller = document.querySelector('.grid-scroll');
        const times = [];
        let most = 0;
        for (let i = 0; i < 400; i++) {
            const t0 = performance.now();
            // A wheel's worth of rows, now and then a jump (a dragged scroll bar).
            scroller.scrollTop += (i % 25 === 24) ? 97_000 : 130;
            if (scroller.scrollTop >= scroller.scrollHeight - scroller.clientHeight) scroller.scrollTop = 0;
            scroller.dispatchEvent(new Event('scroll'));
            document.querySelector('.grid-canvas').getBoundingClientRect();  // style and layout
            void scroller.querySelector('.grid-row:not([hidden]):last-child')?.offsetTop;
            times.push(performance.now() - t0);
            most = Math.max(most, document.querySelectorAll('.grid-row').length);
        }
        times.sort((a, b) => a - b);
        return {median: times[200], p95: times[380], most};
    }""")
    report(f"scroll step over 100,000 rows: median {result['median']:.2f} ms, 95th percentile"
           f" {result['p95']:.2f} ms, at most {result['most']} rows in the DOM;"
           " target median < 16 ms, <= ~200 rows")
    assert result["most"] <= 200
    # The last row is there, and paging moves by a page.
    page.click("button[title='last rows']")
    page.wait_for_function("() => document.querySelector('.grid-status').textContent.endsWith('of 100,000')")
    numbers = page.eval_on_selector_all(".grid-canvas .grid-row:not([hidden]) .grid-index",
                                        "els => els.map(e => Number(e.textContent))")
    assert max(numbers) == 100_000
    page.screenshot(path=str(artefacts / "09-100k-end.png"))
    page.click("button[title='first rows']")
    page.click("button[title='next page']")
    status = page.inner_text(".grid-status")
    assert not status.startswith("rows 1–"), status
    check_safe(watch, page)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    """A server with a 1.1M-row catalogue table whose description is an XSS attempt."""
    from servers import start_live
    from taphouse.catalogue.ingest import ingest_files

    data = tmp_path_factory.mktemp("hostile")
    server = start_live(data / "data")
    n = 1_100_000
    path = data / "numbers.parquet"
    pq.write_table(pa.table({"n": np.arange(n, dtype=np.int64),
                             "x": np.linspace(0, 1, n)}), path)
    ingest_files(server.platform.catalogue, [path], "big", "numbers", description=XSS)
    yield server
    server.stop()


def test_warning_before_unbounded_query_on_big_table(hostile_server, new_page, artefacts):
    page, watch = new_page()
    open_page(page, hostile_server)
    set_query(page, "SELECT * FROM big.numbers")
    page.keyboard.press("Control+Enter")
    dialog = page.wait_for_selector("dialog[open]")
    assert "1,100,000 rows" in dialog.inner_text()
    assert "neither TOP nor WHERE" in dialog.inner_text()
    page.screenshot(path=str(artefacts / "10-big-query-warning.png"))
    page.click("#dialog-cancel")
    assert page.query_selector("dialog[open]") is None
    assert page.inner_text(".job-status") == ""  # nothing ran
    set_query(page, "SELECT TOP 3 n FROM big.numbers ORDER BY n")
    page.keyboard.press("Control+Enter")
    wait_rows(page, 3)
    assert page.query_selector("dialog[open]") is None
    check_safe(watch, page)


def test_hostile_metadata_and_values_stay_text(hostile_server, new_page, artefacts):
    server = hostile_server
    name = new_user(server)
    t = Table({"v": [XSS, "plain"], "k": [1, 2]})
    t["v"].description = XSS
    buf = io.BytesIO()
    t.write(buf, format="votable")
    with httpx.Client(base_url=server.url, auth=(name, PASSWORD), timeout=60,
                      headers={"X-Taphouse": "tests"}) as api:
        r = api.put("/api/usertables/xss", params={"format": "votable", "description": XSS},
                    content=buf.getvalue())
        assert r.status_code == 201, r.text

    page, watch = new_page()
    open_page(page, server)
    log_in(page, name)

    # Descriptions in completion: a catalogue table's and a user table's.
    page.click(".cm-content")
    page.keyboard.type("SELECT * FROM big.num")
    page.wait_for_selector(".cm-completionInfo")
    assert XSS in page.inner_text(".cm-completionInfo")
    page.keyboard.press("Escape")
    set_query(page, "")
    page.keyboard.type("SELECT * FROM mydb.xs")
    page.wait_for_selector(".cm-completionInfo")
    assert XSS in page.inner_text(".cm-completionInfo")
    page.screenshot(path=str(artefacts / "11-xss-description.png"))
    page.keyboard.press("Escape")

    # A value and a column description in the grid, the query text in the history.
    query = f"SELECT v, k FROM mydb.xss WHERE v <> '{XSS}' OR k = 1"
    set_query(page, query)
    page.keyboard.press("Control+Enter")
    wait_rows(page, 2)
    cells = page.eval_on_selector_all(".grid-canvas .grid-row:not([hidden])",
                                      "rows => rows.map(r => r.children[1].textContent)")
    assert XSS in cells
    # (astropy's VOTable writer wraps long descriptions: compare words.)
    title = page.get_attribute(".grid-head .grid-col:nth-child(2)", "title")
    assert " ".join(XSS.split()) in " ".join(title.split())
    page.click("button[data-panel=history]")
    page.wait_for_selector(".history-item")
    assert query in page.inner_text(".history-item")

    # An error message that repeats hostile text.
    set_query(page, 'SELECT "<img src=x onerror=window.__xss=3>" FROM mydb.xss')
    page.keyboard.press("Control+Enter")
    wait_phase(page, "ERROR")
    assert "<img" in page.inner_text(".error-box")
    page.screenshot(path=str(artefacts / "12-xss-error.png"))

    # Nothing was parsed as markup: the page has no image, frame or inline script.
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed,"
                         " script:not([src])').length") == 0
    check_safe(watch, page)


def _first_token(watch, page) -> str:
    """The login's token: from the /auth/token answer, or, when a loaded machine let
    that body go before the watcher read it, from the first request that carried it."""
    for _ in range(100):
        if watch.tokens:
            return watch.tokens[0]
        for r in watch.requests:
            auth = r.headers.get("authorization", "")
            if auth.startswith("Bearer "):
                return auth[len("Bearer "):]
        page.wait_for_timeout(100)
    raise AssertionError("no token seen after the login")


def test_login_outlives_its_first_token(start_server, new_page):
    """A page left open past the token's lifetime trades it for a new one in time
    (POST /auth/refresh at the server's refresh_before), so the user stays logged in."""
    server = start_server(token_lifetime=8.0)
    name = new_user(server)
    page, watch = new_page()
    open_page(page, server)
    log_in(page, name)
    first = _first_token(watch, page)
    page.wait_for_timeout(10_000)  # past the first token's expiry (events keep coming)
    refreshes = [r for r in watch.requests if r.url.endswith("/auth/refresh")]
    assert refreshes, "the page did not refresh its token"
    set_query(page, "SELECT TOP 2 table_name FROM tap_schema.tables")
    page.keyboard.press("Control+Enter")
    wait_rows(page, 2)
    assert page.inner_text(".whoami") == f"Logged in as {name}"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        r = api.get("/auth/whoami", headers={"Authorization": f"Bearer {first}"})
        assert r.status_code == 401  # the first token has expired
    check_safe(watch, page)
