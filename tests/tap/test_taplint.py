"""The IVOA conformance referee: ``stilts taplint`` against the demo service.

Every stage that applies runs (all but OBS and LOC, which test data models this service
does not claim); any E- or F-level report fails the test.
"""

from __future__ import annotations

from taplint import run_taplint


def test_taplint_reports_no_errors_on_the_demo_service(demo_server):
    bad, out = run_taplint(demo_server.tap)
    assert "Totals:" in out, out[-3000:]
    # taplint ran the query stages for real (it found tables to query)
    assert "QGE" in out and "UPL" in out
    assert not bad, "taplint errors:\n" + "\n".join(bad)
