"""The IVOA conformance referee: ``stilts taplint`` against the demo service.

Every stage that applies runs (all but OBS and LOC, which test data models this service
does not claim); any E- or F-level report fails the test.
"""

from __future__ import annotations

import re
import shutil
import subprocess

STAGES = "TMV TME TMS TMC CPV CAP AVV QGE QPO QAS UWS MDQ UPL EXA"


def run_taplint(tapurl: str, *jvm_options: str, stages: str = STAGES) -> tuple[list[str], str]:
    """Run taplint; return its E/F report lines and the whole output."""
    stilts = shutil.which("stilts")
    assert stilts, "stilts is not installed (Debian package 'stilts'); scripts/test.sh installs it"
    cmd = [stilts, *jvm_options, "taplint", f"tapurl={tapurl}", f"stages={stages}",
           "report=EFW", "maxrepeat=3", "truncate=400"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    bad = [line for line in out.splitlines() if re.match(r"^[EF]-[A-Z]{3}-", line)]
    return bad, out


def test_taplint_reports_no_errors_on_the_demo_service(demo_server):
    bad, out = run_taplint(demo_server.tap)
    assert "Totals:" in out, out[-3000:]
    # taplint ran the query stages for real (it found tables to query)
    assert "QGE" in out and "UPL" in out
    assert not bad, "taplint errors:\n" + "\n".join(bad)
