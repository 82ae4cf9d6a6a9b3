"""astroquery's TapPlus (``astroquery.utils.tap.core.TapPlus``, unmodified) against the
live demo server: sync and async jobs, uploads, formats, errors and table metadata.

TapPlus was written for ESA's TAP+ and sends extra parameters (REQUEST=doQuery,
tapclient=..., PHASE=RUN on sync requests) that the service must ignore.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import requests
from astropy.table import Table
from astroquery.utils.tap.core import TapPlus

HIP_QUERY = "SELECT TOP 3 hip, hpmag, plx FROM hipparcos.hip2 ORDER BY hip"
UPLOAD_JOIN = ("SELECT u.hip, h.hpmag FROM tap_upload.mine AS u"
               " JOIN hipparcos.hip2 AS h ON h.hip = u.hip ORDER BY u.hip")


@pytest.fixture(scope="module")
def tap(demo_server: Any) -> TapPlus:
    return TapPlus(url=demo_server.tap)


def _check_hip_rows(t: Table, *, units: bool = True) -> None:
    assert [int(h) for h in t["hip"]] == [1, 2, 3]
    np.testing.assert_allclose(np.asarray(t["hpmag"], dtype=float), [9.2043, 9.4017, 6.6081])
    np.testing.assert_allclose(np.asarray(t["plx"], dtype=float), [4.55, 20.85, 2.26])
    if units:
        assert str(t["hpmag"].unit) == "mag" and str(t["plx"].unit) == "mas"


def test_launch_job_sync(tap: TapPlus) -> None:
    job = tap.launch_job(HIP_QUERY)
    t = job.get_results()
    _check_hip_rows(t)
    assert t["plx"].meta.get("ucd") == "pos.parallax.trig"
    assert job.async_ is False and job.failed is False


def test_launch_job_sync_maxrec_and_formats(tap: TapPlus) -> None:
    t = tap.launch_job("SELECT hip FROM hipparcos.hip2 ORDER BY hip", maxrec=2).get_results()
    assert [int(h) for h in t["hip"]] == [1, 2]
    _check_hip_rows(tap.launch_job(HIP_QUERY, output_format="csv").get_results(), units=False)
    as_json = tap.launch_job(HIP_QUERY, output_format="json").get_results()
    _check_hip_rows(as_json)
    assert as_json["plx"].meta["metadata"]["ucd"] == "pos.parallax.trig"


def test_launch_job_async(tap: TapPlus) -> None:
    job = tap.launch_job_async(HIP_QUERY)
    assert job.async_ is True and job.jobid
    assert job.get_phase() == "COMPLETED"
    _check_hip_rows(job.get_results())
    # In the background: the job runs while the client does something else.
    job = tap.launch_job_async("SELECT COUNT(*) AS n FROM gaia.dr3_bright WHERE from_hipparcos",
                               background=True)
    job.wait_for_job_end()
    assert job.get_phase() == "COMPLETED"
    assert int(job.get_results()["n"][0]) == 70


def test_upload_table_sync_and_async(tap: TapPlus, tmp_path: Path) -> None:
    up = Table({"hip": np.array([32349, 1, 999999999], dtype=np.int64)})
    for launch in (tap.launch_job, tap.launch_job_async):
        t = launch(UPLOAD_JOIN, upload_resource=up, upload_table_name="mine").get_results()
        assert [int(h) for h in t["hip"]] == [1, 32349], launch.__name__
        np.testing.assert_allclose(np.asarray(t["hpmag"]), [9.2043, -1.0876])
        assert str(t["hpmag"].unit) == "mag"
    path = tmp_path / "mine.xml"
    up.write(path, format="votable")
    t = tap.launch_job(UPLOAD_JOIN, upload_resource=str(path),
                       upload_table_name="mine").get_results()
    assert [int(h) for h in t["hip"]] == [1, 32349]


def test_errors_carry_the_message(tap: TapPlus) -> None:
    # TapPlus sends "SELECT  TOP 2000 nosuch ...": the column is that of the text received.
    with pytest.raises(requests.exceptions.HTTPError, match=r"nosuch.*line 1, column 18"):
        tap.launch_job("SELECT nosuch FROM hipparcos.hip2")
    job = tap.launch_job_async("SELECT nosuch FROM hipparcos.hip2", background=True)
    job.wait_for_job_end()
    assert job.get_phase() == "ERROR"


def test_load_tables(tap: TapPlus) -> None:
    tables = tap.load_tables()
    names = [t.get_qualified_name() for t in tables]
    assert {"gaia.dr3_bright", "hipparcos.hip2", "tap_schema.columns"} <= set(names)
    gaia = tables[names.index("gaia.dr3_bright")]
    columns = {c.name: c for c in gaia.columns}
    assert columns["phot_g_mean_mag"].unit == "mag"
    assert columns["phot_g_mean_mag"].ucd == "phot.mag;em.opt"
    assert columns["source_id"].data_type == "long"
    assert "Gaia DR3" in gaia.description

    only_names = tap.load_tables(only_names=True)
    assert sorted(t.get_qualified_name() for t in only_names) == sorted(names)

    hip = tap.load_table("hipparcos.hip2")
    assert hip.get_qualified_name() == "hipparcos.hip2"
    hip_columns = {c.name: c for c in hip.columns}
    assert hip_columns["plx"].unit == "mas" and hip_columns["plx"].ucd == "pos.parallax.trig"
    assert len(hip.columns) == 41  # the HEALPix index is internal, not listed


def test_tapplus_parameters_are_ignored_and_tables_stay_standard(demo_server: Any) -> None:
    extra = {"REQUEST": "doQuery", "tapclient": "aqtappy1-20200428.1", "PHASE": "RUN",
             "jobname": "x", "format": "csv"}
    r = httpx.post(demo_server.tap + "/sync",
                   data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 hip FROM hipparcos.hip2"
                         " ORDER BY hip", **extra})
    assert r.status_code == 200 and r.text.split() == ["hip", "1"]
    # The ESA attribute TapPlus needs is written for TapPlus only: other clients get
    # the standard document (which the VODataService schema validates).
    standard = httpx.get(demo_server.tap + "/tables", headers={"User-Agent": "pyVO/1.9"})
    assert b"esatapplus" not in standard.content
    tapplus = httpx.get(demo_server.tap + "/tables", headers={"User-Agent": "astroquery/0.4"})
    assert b'esatapplus:flags="0"' in tapplus.content
