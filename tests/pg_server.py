"""A throwaway PostgreSQL cluster for tests: initdb in a temporary directory, a server on
a free port bound to 127.0.0.1 only, removed on stop.

The Debian ``postgresql`` package provides the binaries (``scripts/test.sh`` installs
it). ``initdb`` and ``postgres`` refuse to run as root, so as root they run as the
``postgres`` system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

PG_ROOT = Path("/usr/lib/postgresql")


class PostgresMissing(RuntimeError):
    """PostgreSQL binaries are not installed."""


def pg_bin_dir() -> Path:
    """The ``bin`` directory of the newest installed PostgreSQL."""
    versions = sorted((p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not versions:
        raise PostgresMissing(
            f"PostgreSQL is not installed (no {PG_ROOT}/<version>/bin/initdb): run "
            "scripts/test.sh, or `apt-get install -y postgresql` as root")
    return versions[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, listening on 127.0.0.1."""

    def __init__(self) -> None:
        self.bin = pg_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="taphouse-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as_postgres = os.getuid() == 0
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        else:
            self.user = pwd.getpwuid(os.getuid()).pw_name

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)
        if proc.returncode:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}"
                               f"\n{proc.stderr}\n{tail}")

    def start(self) -> PostgresServer:
        self._run(self.bin / "initdb", "-D", self.data, "-U", self.user, "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off "
                   "-c shared_buffers=64MB -c max_connections=20")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "server.log",
                  "-o", options, "-w", "-t", "60", "start")
        return self

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                          "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def dsn_of(server: PostgresServer, *, user: str | None = None, dbname: str = "postgres",
           password: str | None = None) -> str:
    """A DSN for another role or database of ``server``."""
    text = f"host=127.0.0.1 port={server.port} user={user or server.user} dbname={dbname}"
    return text + (f" password={password}" if password else "")


def fresh_database(server: PostgresServer, dbname: str,
                   reader: str) -> tuple[str, psycopg.Connection]:
    """Database ``dbname`` of ``server`` made afresh (dropped first if it exists) and the
    login role ``reader`` (made if missing): the new database's DSN and an autocommit
    connection to it as the superuser (the caller closes it)."""
    import psycopg

    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname}")
        admin.execute(f"CREATE DATABASE {dbname}")
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (reader,)).fetchone():
            admin.execute(f"CREATE ROLE {reader} LOGIN")
    dsn = dsn_of(server, dbname=dbname)
    return dsn, psycopg.connect(dsn, autocommit=True)
