"""The committed bundle is what the sources build to: `npm ci` from the lock file, the
type check, and a build into a temporary directory that must equal
src/taphouse/web/static byte for byte."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bundle_rebuilds_byte_for_byte(tmp_path):
    npm = shutil.which("npm")
    assert npm, "npm is needed to rebuild the page (scripts/test.sh installs it)"
    work = tmp_path / "web"
    shutil.copytree(ROOT / "web", work, ignore=shutil.ignore_patterns("node_modules"))
    run = lambda *cmd: subprocess.run(cmd, cwd=work, check=True, capture_output=True,  # noqa: E731
                                      text=True, timeout=600)
    run(npm, "ci", "--no-audit", "--no-fund")
    run(npm, "run", "check")
    out = tmp_path / "static"
    run("node", "build.mjs", "--outdir", str(out))
    committed = ROOT / "src" / "taphouse" / "web" / "static"
    built = sorted(p.name for p in out.iterdir())
    assert built == sorted(p.name for p in committed.iterdir())
    for name in built:
        assert filecmp.cmp(out / name, committed / name, shallow=False), (
            f"{name} differs from a fresh build: run `npm ci && npm run build` in web/"
            " and commit src/taphouse/web/static")
