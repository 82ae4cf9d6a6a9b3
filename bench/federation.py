"""Federation benchmark: a user's table crossmatched with a remote TAP service's
catalogue through the platform, against the same crossmatch sent by hand as a TAP
upload to the remote.

    python bench/federation.py [--rows 10000000] [--targets 10000] [--repeat 3]

Two ``taphouse serve`` subprocesses on 127.0.0.1: the remote holds the synthetic
catalogue ``bench.synthetic`` (bench/tap.py's, written and ingested once under
bench/data/); the platform registers it as ``far`` and holds the user ``bench`` with
``mydb.targets`` (``--targets`` rows: id, ra, dec; half near catalogue stars, half
random). Printed, median of ``--repeat`` interleaved runs:

- federated: ``SELECT t.id, r.source_id, r.parallax FROM mydb.targets AS t JOIN
  far.bench.synthetic AS r ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec,
  1/3600.))`` through the platform (sync, VOTable answer): seconds, rows, and from the
  answer's INFOs what was shipped (rows, blocks, bytes sent and received);
- manual: the same crossmatch as a TAP upload of the targets (id, ra, dec; VOTable
  TABLEDATA as pyvo sends it) straight to the remote's /sync: seconds, bytes sent and
  received;
- the ratio (target: federated <= 2x manual).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import serve  # noqa: E402

from tap import PASSWORD, positions, prepare, upload_table  # noqa: E402

QUERY = ("SELECT t.id, r.source_id, r.parallax FROM mydb.targets AS t JOIN"
         " far.bench.synthetic AS r ON 1=CONTAINS(POINT(t.ra, t.dec),"
         " CIRCLE(r.ra, r.dec, 1/3600.))")
MANUAL = ("SELECT u.id, r.source_id, r.parallax FROM TAP_UPLOAD.up AS u JOIN"
          " bench.synthetic AS r ON 1=CONTAINS(POINT(u.ra, u.dec),"
          " CIRCLE(r.ra, r.dec, 1/3600.))")


def votable(table: object) -> bytes:
    import io

    buf = io.BytesIO()
    table.write(buf, format="votable", tabledata_format="tabledata")  # type: ignore[attr-defined]
    return buf.getvalue()


def count_rows(body: bytes) -> int:
    import io

    from astropy.io.votable import parse_single_table

    return len(parse_single_table(io.BytesIO(body)).array)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="remote catalogue rows")
    ap.add_argument("--targets", type=int, default=10_000, help="rows of the user's table")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    remote_dir = prepare(args.rows)
    pos = positions(remote_dir, 2000)
    targets = upload_table(pos, args.targets)
    up = votable(targets)
    work = Path(tempfile.mkdtemp(prefix="fedbench-"))
    env = {"TAPHOUSE_MAXREC_LIMIT": "20000000", "TAPHOUSE_WORKERS": "1"}
    remote, remote_url = serve(remote_dir, env)
    here = None
    try:
        here_dir = work / "here"
        here, here_url = serve(here_dir, env | {"TAPHOUSE_OUTBOUND_ALLOW": "127.0.0.0/8"})
        subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(here_dir),
                        "user", "add", "bench", "--password-stdin"], input=PASSWORD + "\n",
                       text=True, check=True)
        subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(here_dir),
                        "remote", "add", "far", remote_url + "/tap"], check=True,
                       env={**os.environ, "TAPHOUSE_OUTBOUND_ALLOW": "127.0.0.0/8"})
        auth = ("bench", PASSWORD)
        with httpx.Client(timeout=1800, auth=auth, headers={"X-Taphouse": "bench"}) as c:
            r = c.post(here_url + "/tap/sync", data={
                "LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.up", "UPLOAD": "up,param:up",
                "DEST": "mydb.targets", "MAXREC": "1"},
                files={"up": ("up.xml", up, "application/x-votable+xml")})
            if r.status_code != 200:
                raise RuntimeError(f"storing the targets: {r.status_code} {r.text[:300]}")
            fed_times, man_times = [], []
            fed_infos: dict[str, str] = {}
            fed_rows = man_rows = 0
            man_received = 0
            for i in range(args.repeat + 1):  # the first round warms both servers
                t0 = time.perf_counter()
                r = c.post(here_url + "/tap/sync", data={"LANG": "ADQL", "QUERY": QUERY,
                                                        "MAXREC": "10000000"})
                fed = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"federated: {r.status_code} {r.text[:500]}")
                fed_infos = dict(re.findall(r'<INFO name="(\w+)" value="([^"]*)"',
                                            r.text[-4000:] + r.text[:4000]))
                fed_rows = count_rows(r.content)
                t0 = time.perf_counter()
                m = httpx.post(remote_url + "/tap/sync", timeout=1800, data={
                    "LANG": "ADQL", "QUERY": MANUAL, "UPLOAD": "up,param:up",
                    "MAXREC": "10000000"},
                    files={"up": ("up.xml", up, "application/x-votable+xml")})
                man = time.perf_counter() - t0
                if m.status_code != 200:
                    raise RuntimeError(f"manual: {m.status_code} {m.text[:500]}")
                man_rows, man_received = count_rows(m.content), len(m.content)
                if i:
                    fed_times.append(fed)
                    man_times.append(man)
        f, m_ = statistics.median(fed_times), statistics.median(man_times)
        print(f"federated crossmatch {args.targets} user rows x {args.rows} remote rows at"
              f" 1 arcsec: median {f:.2f} s (runs {', '.join(f'{t:.2f}' for t in fed_times)}),"
              f" {fed_rows} rows; shipped {fed_infos.get('UPLOAD_ROWS')} rows in"
              f" {fed_infos.get('UPLOAD_BLOCKS')} block(s) (key, ra, dec only),"
              f" {int(fed_infos.get('BYTES_SENT', 0)) / 1e6:.2f} MB sent,"
              f" {int(fed_infos.get('BYTES_RECEIVED', 0)) / 1e6:.2f} MB received from the remote")
        print(f"manual TAP upload to the remote: median {m_:.2f} s (runs"
              f" {', '.join(f'{t:.2f}' for t in man_times)}), {man_rows} rows;"
              f" {len(up) / 1e6:.2f} MB sent, {man_received / 1e6:.2f} MB received")
        print(f"federated / manual: {f / m_:.2f}x (target <= 2x); rows equal:"
              f" {fed_rows == man_rows}")
    finally:
        for proc in (here, remote):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
