"""Helpers for storage tests: the real CLI in a subprocess, accounts, small tables, TAP
queries over HTTP, and a look at every table of a data directory.

(A module of its own, not a conftest: several test folders have a ``conftest``.)
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from accounts import PASSWORD

SRC = Path(__file__).resolve().parents[2] / "src"


def taphouse(data_dir: Path | str, *args: str, cwd: Path | None = None,
             stdin: str | None = None, check: bool = True,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``taphouse --data-dir DATA_DIR --init ARGS`` (the real CLI) and return the
    result. These tests make their stores as they go (``--init``) and re-ingest tables
    to make new versions (``ingest`` gets ``--replace`` unless it says ``--append``)."""
    if args and args[0] == "ingest" and "--append" not in args and "--replace" not in args:
        args = (*args, "--replace")
    proc = subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data_dir),
                           "--init", *args], cwd=cwd, input=stdin, text=True, capture_output=True,
                          env={**os.environ, **(env or {})}, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"taphouse {' '.join(args)} failed ({proc.returncode}):"
                             f" {proc.stderr}")
    return proc


def csv_rows(n: int, seed: int = 0) -> str:
    """A CSV table of ``n`` rows with positions (id, ra, dec, mag)."""
    return "id,ra,dec,mag\n" + "".join(
        f"{i},{(i * 7.3 + seed) % 360:.4f},{(i % 170) - 85:.2f},{(i + seed) % 20}\n"
        for i in range(n))


def add_user(data_dir: Path, name: str, groups: tuple[str, ...] = ()) -> None:
    """An account (and its groups) written with the CLI, as an operator would."""
    taphouse(data_dir, "user", "add", name, "--password-stdin", stdin=PASSWORD + "\n")
    for group in groups:
        taphouse(data_dir, "group", "add", group, check=False)
        taphouse(data_dir, "group", "add-member", group, name)


def client(url: str, user: str | None = None, timeout: float = 120) -> httpx.Client:
    # X-Taphouse: state-changing /api requests with Basic credentials need it (CSRF guard).
    return httpx.Client(base_url=url, auth=(user, PASSWORD) if user else None,
                        timeout=timeout, headers={"X-Taphouse": "tests"})


def sync(c: httpx.Client, query: str, **params: str) -> httpx.Response:
    return c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query, **params})


def table_of(resp: httpx.Response) -> Any:
    from astropy.io.votable import parse_single_table

    assert resp.status_code == 200, resp.text
    return parse_single_table(io.BytesIO(resp.content)).to_table()


def count(c: httpx.Client, table: str) -> int:
    """``SELECT COUNT(*)`` of a table over TAP (asserting it answers 200)."""
    return int(table_of(sync(c, f"SELECT COUNT(*) AS n FROM {table}"))["n"][0])


def tables_in(data_dir: Path) -> dict[str, int]:
    """Every current table of a data directory -> its recorded row count (read through
    a read-only connection: a backup must stay byte for byte as it was made)."""
    import sqlite3

    uri = (Path(data_dir) / "meta.sqlite").resolve().as_uri() + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        return {f"{db}.{name}": nrows for db, name, nrows in con.execute(
            "SELECT d.name, t.name, v.nrows FROM tables t JOIN databases d"
            " ON d.id=t.database_id JOIN table_versions v ON v.id=t.current_version_id")}
    finally:
        con.close()


def version_files(data_dir: Path) -> set[str]:
    """Files under tables/, relative to the data directory."""
    root = Path(data_dir)
    return {p.relative_to(root).as_posix() for p in (root / "tables").rglob("*.duckdb*")}


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` free bytes with one file;
    returns it (delete it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"\0" * (1 << 20)
        while True:
            free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
            room = free - leave
            if room <= 0:
                break
            try:
                os.write(fd, block[:min(len(block), room)])
            except OSError:
                break
    finally:
        os.close(fd)
    return filler
