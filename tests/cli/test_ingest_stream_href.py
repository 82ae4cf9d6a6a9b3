"""`taphouse ingest` of a VOTable whose BINARY STREAM names its rows by href: astropy
followed the link itself (``file:`` read a file of the machine into the catalogue table,
``http:`` a request from it). The operator's ingest now refuses it, naming the link."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

SECRET = (4242424242, 7, 99)


def hostile_votable(tmp_path: Path) -> Path:
    secret = tmp_path / "private.bin"
    secret.write_bytes(b"".join(struct.pack(">q", v) for v in SECRET))
    doc = tmp_path / "stars.vot"
    doc.write_text('<?xml version="1.0"?><VOTABLE version="1.4"'
                   ' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>'
                   '<FIELD name="v" datatype="long"/><DATA><BINARY>'
                   f'<STREAM href="file://{secret}"/></BINARY></DATA></TABLE></RESOURCE>'
                   '</VOTABLE>')
    return doc


def taphouse(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data),
                           *args], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("TAPHOUSE_")})


def test_ingest_refuses_a_stream_href(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = taphouse(data, "ingest", str(hostile_votable(tmp_path)), "-d", "stolen", "-t",
                    "rows", "-q", "--init")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "STREAM with an href" in proc.stderr and "private.bin" in proc.stderr
    assert "Traceback" not in proc.stderr
    listed = taphouse(data, "databases")
    assert "stolen" not in listed.stdout
