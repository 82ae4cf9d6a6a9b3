"""The page's data views in a real browser (Debian chromium via Playwright) against live
servers: the table browser of a 10,000-table service, uploading a CSV and querying it,
sharing a table and seeing it as the other user, a workspace's TAP URL used by pyvo,
the sky plot of a cone checked pixel by pixel against astropy's rotation and WCSLIB's
projections, quick charts, and hostile names everywhere the new views show them.

Prints the issue's targets (expanding a database of 1,000 tables, plotting 100,000
points) and saves screenshots (directory printed at the end of the run).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from typing import Any

import httpx
import numpy as np
import pytest
from web_helpers import (
    CONE,
    PASSWORD,
    XSS,
    check_safe,
    log_in,
    new_user,
    open_page,
    query_text,
    report,
    set_query,
    wait_phase,
    wait_rows,
)

pytestmark = pytest.mark.slow

#: (database, tables): 10,000 tables in all; "survey" has the 1,000 the target names.
MANY = [("survey", 1000), ("big", 3000)] + [(f"archive{i}", 1000) for i in range(6)]
POINT = (255, 209, 102)   # the sky plot's point colour (one colour)
SCATTER = (31, 111, 235)  # the scatter plot's


def _api(server: Any, user: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(user, PASSWORD), timeout=60,
                        headers={"X-Taphouse": "tests"})


def _panel(page: Any, panel: str) -> None:
    page.click(f"button[data-panel={panel}]")


# --- the table browser of a 10,000-table service --------------------------------------
@pytest.fixture(scope="module")
def many_server(tmp_path_factory):
    """A server with 10,000 tiny catalogue tables (hard links to one file, published
    through the catalogue store)."""
    from servers import publish_tiny_tables, start_live

    data = tmp_path_factory.mktemp("many")
    server = start_live(data / "data")
    for database, count in MANY:
        publish_tiny_tables(server.platform.catalogue, database, count, data,
                            description=f"{count:,} generated fields of the {database} survey")
    yield server
    server.stop()


def _expand(page: Any, database: str) -> tuple[float, float]:
    """Open a database in the browser; the page's own measures of it: click to its first
    tables drawn, and to the whole page of tables in the list."""
    page.click(f".db-row[data-db={database}]")
    names = [f"expand:{database}", f"expand-all:{database}"]
    page.wait_for_function("ns => ns.every(n => performance.getEntriesByName(n).length)", arg=names)
    return tuple(page.evaluate("ns => ns.map(n => performance.getEntriesByName(n)[0].duration)", names))


def test_browse_10000_tables(many_server, new_page, artefacts):
    server = many_server
    page, watch = new_page()
    open_page(page, server)
    page.wait_for_selector(".db-row")
    counts = page.eval_on_selector_all(".db-row", "rs => rs.map(r => [r.dataset.db,"
                                       " r.querySelector('.tree-count').textContent])")
    assert sorted(counts) == sorted([db, f"{n:,} tables"] for db, n in MANY)
    # Nothing of the 10,000 tables was loaded to show the databases.
    assert not [r for r in watch.requests if "/tables" in r.url]

    # The target: open a database of 1,000 tables (request + 1,000 rows drawn).
    times = [_expand(page, "survey")]
    rows = page.eval_on_selector_all(".db-row[data-db=survey] + .tree-children > .tree-table",
                                     "ls => ls.length")
    assert rows == 1000
    for db in ("archive0", "archive1", "archive2"):
        times.append(_expand(page, db))
    shown, every = [t[0] for t in times], [t[1] for t in times]
    report(f"expanding a database of 1,000 tables (10,000 in the service), click to its tables"
           f" drawn: {shown[0]:.0f} ms the first, median of {len(times)}"
           f" {statistics.median(shown):.0f} ms, most {max(shown):.0f} ms; target <= 300 ms")
    report(f"  ... and to all 1,000 in the list: median {statistics.median(every):.0f} ms,"
           f" most {max(every):.0f} ms")
    page.screenshot(path=str(artefacts / "20-browser-1000-tables.png"))

    # 3,000 tables: a page of 1,000, then more on request.
    _expand(page, "big")
    big = ".db-row[data-db=big] + .tree-children"
    assert page.eval_on_selector_all(f"{big} > .tree-table", "ls => ls.length") == 1000
    assert "2,000 left" in page.inner_text(f"{big} .tree-more")
    page.click(f"{big} .tree-more")
    page.wait_for_function("s => document.querySelectorAll(s).length === 2000",
                           arg=f"{big} > .tree-table")
    assert "1,000 left" in page.inner_text(f"{big} .tree-more")

    # A table deep in the list: its columns with units, UCDs and descriptions.
    toggle = page.locator(".tree-table[data-table='survey.t00742'] [data-action=columns]")
    toggle.scroll_into_view_if_needed()
    toggle.click()
    item = page.locator(".tree-table[data-table='survey.t00742']")
    item.locator("[data-column=mag]").wait_for()
    columns = item.locator(".column-row").all_inner_texts()
    assert [c.split()[0] for c in columns] == ["id", "ra", '"dec"', "mag"]
    ra = columns[1]
    assert "double" in ra and "deg" in ra and "pos.eq.ra;meta.main" in ra
    assert "Right ascension (ICRS)" in ra
    assert "phot.mag;em.opt.V" in columns[3] and "V magnitude" in columns[3]
    page.screenshot(path=str(artefacts / "21-browser-columns.png"))

    # The table's starter query, a column name inserted at the cursor, run.
    item.hover()
    item.locator("[data-action=query]").click()
    assert query_text(page) == "SELECT TOP 1000 *\nFROM survey.t00742"
    page.keyboard.press("Control+End")
    page.keyboard.type(" WHERE")
    item.locator("[data-column=mag]").click()
    page.keyboard.type(" > 10")
    assert query_text(page) == "SELECT TOP 1000 *\nFROM survey.t00742 WHERE mag > 10"
    page.keyboard.press("Control+Enter")
    wait_rows(page, 1)

    # Search by description, and by a column's description (the first 200 shown).
    page.fill(".browser-search", "field 742 of")
    page.wait_for_selector(".search-results:not([hidden]) .tree-table")
    found = page.eval_on_selector_all(".search-results .tree-table", "ls => ls.map(l => l.dataset.table)")
    assert "survey.t00742" in found and all(".t00742" in f for f in found)
    page.screenshot(path=str(artefacts / "22-browser-search.png"))
    page.fill(".browser-search", "V magnitude")
    page.wait_for_function("() => document.querySelector('.browser-message').textContent"
                           ".startsWith('The first 200')")
    assert "mag" in page.inner_text(".search-results .tree-matched")
    page.fill(".browser-search", "no such thing anywhere")
    page.wait_for_function("() => document.querySelector('.browser-message').textContent"
                           ".startsWith('No table')")
    page.press(".browser-search", "Escape")
    page.wait_for_selector(".tree:not(.search-results):not([hidden])")

    # Completion in a database whose tables were never listed: typed, loaded, offered.
    set_query(page, "")
    page.keyboard.type("SELECT * FROM archive5.t0099")
    page.wait_for_function("() => document.querySelector('.cm-tooltip-autocomplete"
                           " li[aria-selected]')?.innerText.startsWith('t0099')")
    options = page.eval_on_selector_all(".cm-tooltip-autocomplete .cm-completionLabel",
                                        "ls => ls.map(l => l.textContent)")
    assert options[:10] == [f"t{i:05d}" for i in range(990, 1000)]
    page.keyboard.press("Escape")
    check_safe(watch, page)


# --- my tables: upload, query, describe, rename, share, drop --------------------------
def _csv(n: int) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["name", "ra", "dec", "vmag"])
    rng = np.random.default_rng(7)
    for i in range(n):
        w.writerow([f"star {i}", round(56 + rng.random(), 6), round(24 + rng.random(), 6),
                    round(5 + 5 * rng.random(), 3)])
    return out.getvalue().encode()


def test_upload_csv_and_query_it(demo_server, new_page, artefacts):
    server = demo_server
    name = new_user(server)
    page, watch = new_page()
    open_page(page, server)
    log_in(page, name)
    _panel(page, "mytables")
    page.wait_for_selector(".quota-text")
    assert "0 of" in page.inner_text(".quota-text")
    page.click(".upload-box summary")
    # A hostile file name: shown as text, never as markup.
    filename = XSS.replace("/", "") + ".csv"
    page.set_input_files("#upload-file", files=[{"name": filename, "mimeType": "text/csv",
                                                 "buffer": _csv(250)}])
    suggested = page.input_value("#upload-name")
    assert suggested.startswith("img_src_x_onerror") and len(suggested) <= 63
    page.fill("#upload-name", "my_stars")
    page.fill("#upload-description", "Stars I measured " + XSS)
    page.screenshot(path=str(artefacts / "23-upload.png"))
    page.click("#upload-submit")
    page.wait_for_function("() => document.querySelector('.mytables-message').textContent"
                           ".startsWith('Uploaded')")
    assert page.inner_text(".mytables-message") == f"Uploaded {filename} as mydb.my_stars (250 rows)."
    item = page.locator(".mytable[data-table=my_stars]")
    assert "250 rows" in item.inner_text() and "Uploaded CSV" in item.inner_text()
    assert XSS in item.locator(".mytable-desc").inner_text()
    assert "1 table" in page.inner_text(".quota-text")
    page.screenshot(path=str(artefacts / "24-my-tables.png"))

    # Query it from its Query button.
    item.locator("[data-action=query]").click()
    assert query_text(page) == "SELECT TOP 1000 *\nFROM mydb.my_stars"
    page.keyboard.press("Control+Enter")
    wait_phase(page, "COMPLETED")
    wait_rows(page, 250)
    headers = page.eval_on_selector_all(".grid-head .grid-col", "els => els.map(e => e.innerText)")
    assert headers[:4] == ["name", "ra", "dec", "vmag"]
    # The table browser knows it too, as mydb.
    _panel(page, "tables")
    page.click(f".db-row[data-db=user_{name}]")
    page.wait_for_selector(f"[data-table='user_{name}.my_stars']")
    assert page.inner_text(f".db-row[data-db=user_{name}] .tree-name") == "mydb"

    # Describe, rename, then drop (each through an in-page dialog).
    _panel(page, "mytables")
    item = page.locator(".mytable[data-table=my_stars]")
    item.locator("[data-action=describe]").click()
    page.fill("#describe-text", "Pleiades stars, measured by hand")
    page.click("#dialog-ok")
    page.wait_for_function("() => document.querySelector('.mytable[data-table=my_stars] .mytable-desc')"
                           "?.textContent === 'Pleiades stars, measured by hand'")
    item.locator("[data-action=rename]").click()
    page.fill("#rename-name", "Not A Name")
    page.click("#dialog-ok")
    assert "lower-case letter" in page.inner_text(".dialog-problem")  # the dialog stays
    page.fill("#rename-name", "pleiades_mine")
    page.click("#dialog-ok")
    page.wait_for_selector(".mytable[data-table=pleiades_mine]")
    with _api(server, name) as api:
        t = api.get("/api/usertables/pleiades_mine").json()
        assert (t["nrows"], t["description"]) == (250, "Pleiades stars, measured by hand")
    page.locator(".mytable[data-table=pleiades_mine] [data-action=drop]").click()
    assert "250 rows" in page.inner_text("dialog[open]")
    page.click("#dialog-ok")
    page.wait_for_function("() => !document.querySelector('.mytable[data-table=pleiades_mine]')")
    with _api(server, name) as api:
        assert api.get("/api/usertables/pleiades_mine").status_code == 404
    assert page.evaluate("document.querySelectorAll('img:not(.cm-widgetBuffer), iframe,"
                         " script:not([src])').length") == 0
    check_safe(watch, page)


def test_share_a_table_and_see_it_as_the_other_user(demo_server, new_page, artefacts):
    server = demo_server
    owner, reader = new_user(server), new_user(server)
    with _api(server, owner) as api:
        for table in ("shared_stars", "private_stars"):
            r = api.put(f"/api/usertables/{table}", params={"format": "csv"}, content=_csv(40))
            assert r.status_code == 201, r.text

    page, watch = new_page()
    open_page(page, server)
    log_in(page, owner)
    _panel(page, "mytables")
    item = page.locator(".mytable[data-table=shared_stars]")
    item.locator("[data-action=share]").click()
    page.fill("#share-users", f"{reader}; Not-A-Name")
    page.click("#dialog-ok")
    page.wait_for_selector(".mytables-message.bad")
    assert "invalid user name 'not-a-name'" in page.inner_text(".mytables-message")
    with _api(server, owner) as api:
        assert api.get("/api/usertables/shared_stars/shares").json()["users"] == []
    item.locator("[data-action=share]").click()
    page.fill("#share-users", reader)
    page.click("#dialog-ok")
    page.wait_for_function("n => document.querySelector('.mytable[data-table=shared_stars] .shared')"
                           "?.textContent === 'Shared with ' + n", arg=reader)
    page.screenshot(path=str(artefacts / "25-shared.png"))
    check_safe(watch, page)

    other, other_watch = new_page()
    open_page(other, server)
    log_in(other, reader)
    row = other.locator(f".db-row[data-db=user_{owner}]")
    row.wait_for()
    assert f"shared by {owner}" in row.inner_text() and "1 table" in row.inner_text()
    row.click()
    shared = other.locator(f".tree-table[data-table='user_{owner}.shared_stars']")
    shared.wait_for()
    assert other.locator(f".tree-table[data-table='user_{owner}.private_stars']").count() == 0
    shared.hover()
    shared.locator("[data-action=query]").click()
    assert query_text(other) == f"SELECT TOP 1000 *\nFROM user_{owner}.shared_stars"
    other.keyboard.press("Control+Enter")
    wait_rows(other, 40)
    other.screenshot(path=str(artefacts / "26-shared-as-reader.png"))
    set_query(other, f"SELECT * FROM user_{owner}.private_stars")
    other.keyboard.press("Control+Enter")
    wait_phase(other, "ERROR")
    check_safe(other_watch, other)


# --- workspaces --------------------------------------------------------------------------
def test_workspace_tap_url_works_in_pyvo(demo_server, new_page, artefacts):
    import pyvo
    import requests

    server = demo_server
    name = new_user(server)
    page, watch = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    open_page(page, server)
    log_in(page, name)
    _panel(page, "workspaces")
    page.wait_for_selector("text=No workspaces yet.")
    page.click("#new-workspace")
    choices = page.eval_on_selector_all("dialog[open] .choice input", "bs => bs.map(b => b.value)")
    assert {"gaia", "hipparcos"} <= set(choices) and f"user_{name}" not in choices
    page.fill("#workspace-name", "gaia_only")
    page.check("dialog[open] .choice input[value=gaia]")
    page.screenshot(path=str(artefacts / "27-workspace-new.png"))
    page.click("#dialog-ok")
    ws = page.locator(".workspace[data-workspace=gaia_only]")
    ws.wait_for()
    assert ws.locator(".chip").all_inner_texts() == ["gaia", "mydb"]
    url = ws.locator(".tap-url").input_value()
    assert url == f"{server.url}/ws/{name}/gaia_only/tap"
    ws.locator("[data-action=copy]").click()
    page.wait_for_function("() => document.querySelector('.copied').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == url
    page.screenshot(path=str(artefacts / "28-workspace.png"))

    # The URL as TOPCAT or pyvo would use it: only the workspace's databases.
    session = requests.Session()
    session.auth = (name, PASSWORD)
    service = pyvo.dal.TAPService(url, session=session)
    rows = service.search("SELECT TOP 3 source_id, ra FROM gaia.dr3_bright").to_table()
    assert len(rows) == 3
    schemas = {name.split(".")[0] for name in service.tables.keys()}
    assert "gaia" in schemas and "hipparcos" not in schemas
    with pytest.raises(pyvo.dal.DALQueryError):
        service.search("SELECT TOP 1 * FROM hipparcos.hip2")

    ws.locator("[data-action=delete]").click()
    page.click("#dialog-ok")
    page.wait_for_selector("text=Deleted the workspace gaia_only.")
    assert page.locator(".workspace").count() == 0
    with pytest.raises(pyvo.dal.DALQueryError, match="no workspace"):
        service.search("SELECT TOP 1 source_id FROM gaia.dr3_bright")
    check_safe(watch, page)


# --- the sky plot and charts ---------------------------------------------------------------
def _expected_xy(ra, dec, view: dict) -> tuple[np.ndarray, np.ndarray]:
    """Where a point must be drawn (CSS pixels in the canvas), computed independently of
    the page: astropy rotates the sky so the view's centre is at (0, 0) (SkyOffsetFrame)
    and WCSLIB projects (FITS AIT is Hammer-Aitoff, MOL Mollweide), east to the left."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord, SkyOffsetFrame
    from astropy.wcs import WCS

    centre = SkyCoord(view["ra0"] * u.deg, view["dec0"] * u.deg)
    offset = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg).transform_to(
        SkyOffsetFrame(origin=centre))
    code = {"hammer": "AIT", "mollweide": "MOL"}[view["projection"]]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = [f"RA---{code}", f"DEC--{code}"]
    wcs.wcs.crval = [0, 0]
    wcs.wcs.crpix = [1, 1]
    wcs.wcs.cdelt = [-1, 1]  # degrees per unit, east to the left
    x, y = wcs.wcs_world2pix(offset.lon.wrap_at(180 * u.deg).deg, offset.lat.deg, 0)
    radian = np.degrees(1.0)  # the page's units are the sphere's radius
    return view["cx"] + view["scale"] * x / radian, view["cy"] - view["scale"] * y / radian


def _pixels(page: Any, canvas: str, points: list[tuple[float, float]], around: int = 1) -> list:
    """The colours of the canvas around each point ((2*around+1)^2 pixels each)."""
    return page.evaluate("""([sel, pts, a]) => {
        const c = document.querySelector(sel);
        const ctx = c.getContext('2d');
        const dpr = c.width / c.clientWidth;
        return pts.map(([x, y]) => {
            const d = ctx.getImageData(Math.floor(x * dpr) - a, Math.floor(y * dpr) - a, 2 * a + 1, 2 * a + 1).data;
            const out = [];
            for (let i = 0; i < d.length; i += 4) out.push([d[i], d[i + 1], d[i + 2]]);
            return out;
        });
    }""", [canvas, points, around])


def _view_changed(page: Any, before: dict) -> None:
    """Wait for the sky plot to draw a view other than ``before`` (zoom and pan draw at
    the next animation frame)."""
    page.wait_for_function("""b => {
        const v = JSON.parse(document.querySelector('.sky-canvas').dataset.view);
        return v.scale !== b.scale || v.cx !== b.cx || v.cy !== b.cy; }""", arg=before)


def _check_points(page: Any, ra, dec, colour, *, label: str) -> dict:
    view = json.loads(page.get_attribute(".sky-canvas", "data-view"))
    x, y = _expected_xy(ra, dec, view)
    box = page.evaluate("(() => { const c = document.querySelector('.sky-canvas');"
                        " return [c.clientWidth, c.clientHeight]; })()")
    inside = [(float(a), float(b)) for a, b in zip(x, y, strict=True)
              if 4 < a < box[0] - 4 and 4 < b < box[1] - 4]
    assert len(inside) >= min(len(x), 10), label
    found = _pixels(page, ".sky-canvas", inside)
    missing = [p for p, px in zip(inside, found, strict=True) if list(colour) not in px]
    assert not missing, f"{label}: no point drawn at {missing[:5]}"
    # And not everywhere: places 12 px from every point are not point-coloured.
    empty = [(a + 12, b) for a, b in inside
             if np.min(np.hypot(x - a - 12, y - b)) > 8 and 4 < a + 12 < box[0] - 4]
    assert empty, label
    assert all(list(colour) not in px for px in _pixels(page, ".sky-canvas", empty, around=0)), label
    return view


def test_sky_plot_of_a_cone(demo_server, new_page, artefacts):
    server = demo_server
    r = httpx.post(server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY": CONE,
                                                   "RESPONSEFORMAT": "csv"}, timeout=60)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    ra = np.array([float(t["ra"]) for t in rows])
    dec = np.array([float(t["dec"]) for t in rows])
    page, watch = new_page()
    open_page(page, server)
    set_query(page, CONE)
    page.keyboard.press("Control+Enter")
    wait_rows(page, len(rows))
    page.click(".view-tabs [data-view=sky]")
    page.wait_for_selector(".sky-canvas[data-view]")
    assert page.get_attribute(".sky-canvas", "data-points") == str(len(rows))
    assert page.inner_text(".sky .plot-note") == f"{len(rows):,} rows plotted"

    # Centred on the cone (56.75, 24.12; 3 degrees), zoomed to it, every point in place.
    view = _check_points(page, ra, dec, POINT, label="Hammer-Aitoff")
    assert abs(view["ra0"] - 56.75) < 0.5 and abs(view["dec0"] - 24.12) < 0.5
    x, y = _expected_xy(ra, dec, view)
    width = page.evaluate("document.querySelector('.sky-canvas').clientWidth")
    assert x.max() - x.min() > 0.3 * width  # the 6-degree field fills the plot
    page.screenshot(path=str(artefacts / "30-sky-cone.png"))

    # The mouse over a point shows its row; a click shows it in the table.
    k = int(np.argmin(np.hypot(x - np.median(x), y - np.median(y))))
    canvas = page.locator(".sky-canvas").bounding_box()
    page.mouse.move(canvas["x"] + x[k], canvas["y"] + y[k])
    page.wait_for_selector(".sky .plot-tip:not([hidden])")
    assert rows[k]["source_id"] in page.inner_text(".sky .plot-tip")
    page.screenshot(path=str(artefacts / "31-sky-hover.png"))
    page.mouse.click(canvas["x"] + x[k], canvas["y"] + y[k])
    page.wait_for_selector(".grid-canvas .grid-row.picked")
    assert rows[k]["source_id"] in page.inner_text(".grid-canvas .grid-row.picked")

    # Zoom (button: about the centre, x1.6), pan (drag), Mollweide: still in place.
    page.click(".view-tabs [data-view=sky]")
    page.click(".sky button[title='zoom in']")
    _view_changed(page, view)
    zoomed = _check_points(page, ra, dec, POINT, label="zoomed")
    assert zoomed["scale"] == pytest.approx(view["scale"] * 1.6)
    start = (canvas["x"] + 200, canvas["y"] + 150)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 60, start[1] + 40, steps=5)
    page.mouse.up()
    _view_changed(page, zoomed)
    panned = _check_points(page, ra, dec, POINT, label="panned")
    assert (panned["cx"] - zoomed["cx"], panned["cy"] - zoomed["cy"]) == pytest.approx((60, 40), abs=1)
    page.select_option(".sky select[aria-label=projection]", "mollweide")
    _check_points(page, ra, dec, POINT, label="Mollweide")
    page.click(".sky button[title='show the whole sky']")
    whole = _check_points(page, ra, dec, POINT, label="all sky")
    assert (whole["ra0"], whole["dec0"]) == (0, 0)
    page.screenshot(path=str(artefacts / "32-sky-mollweide.png"))

    # Charts: a histogram of every row, a scatter plot with its points in place.
    page.click(".view-tabs [data-view=chart]")
    page.wait_for_selector(".chart-canvas[data-kind=histogram]")
    assert page.inner_text(".chart .plot-note").startswith(f"{len(rows):,} rows plotted")
    assert page.input_value(".chart select[aria-label='x column']") == "3"  # the magnitude
    page.screenshot(path=str(artefacts / "33-histogram.png"))
    page.select_option(".chart select[aria-label='y column']", "3")
    page.select_option(".chart select[aria-label='x column']", "1")
    page.wait_for_selector(".chart-canvas[data-kind=scatter]")
    assert page.is_checked(".chart .check:has-text('flip y') input")  # magnitudes: bright up
    box = json.loads(page.get_attribute(".chart-canvas", "data-box"))
    mag = np.array([float(t["phot_g_mean_mag"]) for t in rows])
    (x0, x1, _), (y0, y1, flip, _) = box["x"], box["y"]
    px = box["x0"] + (ra - x0) / (x1 - x0) * (box["x1"] - box["x0"])
    ty = (mag - y0) / (y1 - y0)
    py = box["y1"] - (1 - ty if flip else ty) * (box["y1"] - box["y0"])
    found = _pixels(page, ".chart-canvas", list(zip(px.tolist(), py.tolist(), strict=True)))
    assert all(list(SCATTER) in p for p in found)
    page.screenshot(path=str(artefacts / "34-scatter.png"))
    check_safe(watch, page)


def test_plot_100k_points(demo_server, new_page, artefacts):
    page, watch = new_page()
    open_page(page, demo_server)
    set_query(page, "SELECT TOP 100000 source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright")
    page.keyboard.press("Control+Enter")
    wait_rows(page, 100_000)
    page.click(".view-tabs [data-view=sky]")
    page.wait_for_function("() => performance.getEntriesByName('sky-plot', 'measure').length")
    sky_ms = page.evaluate("performance.getEntriesByName('sky-plot', 'measure')[0].duration")
    assert page.get_attribute(".sky-canvas", "data-points") == "100000"
    page.select_option(".sky select[aria-label='colour by']", "3")
    page.wait_for_function("() => performance.getEntriesByName('sky-plot', 'measure').length >= 2")
    page.screenshot(path=str(artefacts / "35-sky-100k.png"))
    page.click(".view-tabs [data-view=chart]")
    page.select_option(".chart select[aria-label='y column']", "2")
    page.wait_for_function("() => performance.getEntriesByName('chart-plot', 'measure').length >= 2")
    chart_ms = page.evaluate("performance.getEntriesByName('chart-plot', 'measure').at(-1).duration")
    report(f"plotting 100,000 points: sky {sky_ms:.0f} ms, scatter {chart_ms:.0f} ms"
           " (tab click to drawn); target <= 1000 ms")

    # A result larger than the plot: a random sample, and it says so.
    set_query(page, "SELECT ra, dec FROM gaia.dr3_bright")
    page.select_option("select[aria-label='most rows (MAXREC)']", "1000000")
    page.keyboard.press("Control+Enter")
    wait_rows(page, 482_176)
    page.click(".view-tabs [data-view=sky]")
    page.wait_for_selector(".sky-canvas[data-points='100000']")
    assert page.inner_text(".sky .plot-note") == \
        "100,000 of 482,176 rows plotted (a random sample)"
    view = json.loads(page.get_attribute(".sky-canvas", "data-view"))
    assert (view["ra0"], view["dec0"]) == (0, 0)  # the whole sky
    page.screenshot(path=str(artefacts / "36-sky-sample.png"))
    check_safe(watch, page)


# --- hostile names everywhere the new views show them ------------------------------------
def test_hostile_names_stay_text(demo_server, new_page, artefacts):
    """Names the server itself refuses (a remote service's metadata, or a compromised
    answer) can still reach the page: every one of them must stay text."""
    server = demo_server
    name = new_user(server)
    evil = XSS + '"><svg onload="window.__xss=9">'
    dbs = [{"name": "user_" + evil, "description": evil, "kind": "user", "tables": 1},
           {"name": evil, "description": evil, "kind": "remote", "tables": 1}]
    table = {"name": evil, "database": evil, "qualified_name": f'"{evil}"."{evil}"',
             "description": evil, "nrows": 3, "ra_column": None, "dec_column": None,
             "ncolumns": 1, "matched_columns": [evil]}
    column = {"name": evil, "adql_name": f'"{evil}"', "datatype": "char", "arraysize": "*",
              "unit": evil, "ucd": evil, "description": evil}
    mine = [{"name": evil, "schema": "user_" + name, "qualified_name": evil, "description": evil,
             "nrows": 1, "nbytes": 10, "created": None, "job_id": None,
             "provenance": {"adql": evil, "source_tables": [evil]},
             "shared_with": {"users": [evil], "groups": [evil]}}]
    workspaces = [{"name": evil, "databases": [evil], "description": evil, "created": None,
                   "tap_url": "javascript:window.__xss=7"}]

    def answer(body):
        return lambda route: route.fulfill(status=200, content_type="application/json",
                                           body=json.dumps(body))

    page, watch = new_page()
    page.route("**/api/databases", answer(dbs))
    page.route("**/api/databases/*/tables*", answer([table]))
    page.route("**/api/tables?*", answer([table]))
    page.route("**/api/tables/*/*", answer(dict(table, columns=[column])))
    page.route("**/api/usertables", answer(mine))
    page.route("**/api/workspaces", answer(workspaces))
    open_page(page, server)
    log_in(page, name)
    # Each catalogue load after logging in redraws the database list, so element handles
    # taken now could go stale (CI: "Element is not attached to the DOM"): wait for the
    # loads to settle and click through a locator, which finds the rows afresh each time.
    page.wait_for_load_state("networkidle")
    collapsed = page.locator(".db-row[aria-expanded=false]")
    for _ in range(10):
        if collapsed.count() == 0:
            break
        collapsed.first.click()
    assert collapsed.count() == 0
    page.locator(".tree-table [data-action=columns]").first.click()
    page.wait_for_selector(".column-row")
    assert evil in page.inner_text(".browser")
    page.fill(".browser-search", "anything")
    page.wait_for_selector(".search-results:not([hidden]) .tree-matched")
    assert evil in page.inner_text(".search-results")
    page.screenshot(path=str(artefacts / "37-hostile-browser.png"))
    _panel(page, "mytables")
    page.wait_for_selector(".mytable")
    assert page.inner_text(".mytable .shared").count(evil) == 2
    assert evil in page.inner_text(".mytable .prov")
    _panel(page, "workspaces")
    page.wait_for_selector(".workspace")
    assert evil in page.inner_text(".workspace")
    assert page.input_value(".tap-url") == "javascript:window.__xss=7"  # a value, not a link
    page.click("#new-workspace")
    assert evil in page.inner_text("dialog[open] .choices")
    page.click("#dialog-cancel")
    page.screenshot(path=str(artefacts / "38-hostile-panels.png"))
    # (CodeMirror's own empty <img class="cm-widgetBuffer"> aside.)
    assert page.evaluate("document.querySelectorAll('img:not(.cm-widgetBuffer), svg, iframe,"
                         " object, embed, script:not([src])').length") == 0
    assert page.evaluate("window.__xss") is None
    check_safe(watch, page)
