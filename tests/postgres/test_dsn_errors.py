"""A DSN the operator mistyped is refused with a message that never quotes its password.

libpq quotes the part of a connection string it cannot parse, and for a URI that part
can be the whole string, password included (a password with a ``%`` that is not
percent-encoding, an IPv6 host missing its ``]``, a space in an unquoted password). The
message goes to the terminal, the CLI's logs and CI output. No PostgreSQL server is
needed: the DSN is refused before any connection is tried.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SECRET = "S3cr3tPw"

BAD_DSNS = [
    f"postgresql://reader:{SECRET}%zz@127.0.0.1/db",       # invalid percent-encoding
    f"postgresql://reader:{SECRET}@[::1/db",               # IPv6 host without ']'
    f"host=127.0.0.1 user=reader password=abc {SECRET}",    # a space in the password
    f"host=127.0.0.1 user=reader password={SECRET} sslmode={SECRET}x",
    f"postgresql://reader:{SECRET}@127.0.0.1:{SECRET}/db",
]


@pytest.mark.parametrize("dsn", BAD_DSNS)
def test_a_malformed_dsn_is_refused_without_its_password(dsn, tmp_path):
    env = {**os.environ, "TH_DSN": dsn}
    done = subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir",
                           str(tmp_path / "d"), "--init", "db", "add-postgres", "pgbad",
                           "--dsn-env", "TH_DSN", "--schema", "s"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "cannot connect with the query DSN" in done.stderr
    assert SECRET not in done.stdout + done.stderr, done.stderr
