"""``stilts taplint``, the IVOA conformance referee, as the tests run it: every stage
that applies (all but OBS and LOC, which test data models this service does not claim);
its E- and F-level reports are what a test fails on."""

from __future__ import annotations

import re
import shutil
import subprocess

STAGES = "TMV TME TMS TMC CPV CAP AVV QGE QPO QAS UWS MDQ UPL EXA"


def run_taplint(tapurl: str, *jvm_options: str, stages: str = STAGES) -> tuple[list[str], str]:
    """Run taplint on ``tapurl``; return its E/F report lines and the whole output.
    ``jvm_options`` such as ``-Dstar.basicauth.user=U`` go before the command."""
    stilts = shutil.which("stilts")
    assert stilts, "stilts is not installed (Debian package 'stilts'); scripts/test.sh installs it"
    cmd = [stilts, *jvm_options, "taplint", f"tapurl={tapurl}", f"stages={stages}",
           "report=EFW", "maxrepeat=3", "truncate=400"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    bad = [line for line in out.splitlines() if re.match(r"^[EF]-[A-Z]{3}-", line)]
    return bad, out
