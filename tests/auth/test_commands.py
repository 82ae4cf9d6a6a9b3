"""The ``taphouse user/group/db/audit`` commands through the real command-line entry
point (passwords on standard input, never in argv)."""

import io
import json
import sys
from dataclasses import dataclass

import pytest

from taphouse.cli import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TAPHOUSE_DATA_DIR", str(tmp_path / "data"))

    def run(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            code = main(["--init", *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)
    return run


def test_user_lifecycle(run):
    assert run("group", "add", "astro").returncode == 0
    r = run("user", "add", "alice", "--password-stdin", "--groups", "astro",
            stdin="a good password 1\n")
    assert r.returncode == 0, r.stderr
    r = run("user", "add", "root", "--password-stdin", "--admin", stdin="an admin password\n")
    assert r.returncode == 0, r.stderr
    users = json.loads(run("user", "list", "--json").stdout)
    assert [(u["username"], u["is_admin"], u["groups"]) for u in users] == [
        ("alice", False, ["astro"]), ("root", True, [])]

    r = run("user", "passwd", "alice", "--password-stdin", stdin="alice\n")
    assert r.returncode == 1 and "too short" in r.stderr
    r = run("user", "disable", "alice")
    assert r.returncode == 0 and "disabled" in r.stdout
    assert json.loads(run("user", "list", "--json").stdout)[0]["disabled"] is True
    assert run("user", "enable", "alice").returncode == 0
    assert run("user", "delete", "alice").returncode == 0
    assert [u["username"] for u in json.loads(run("user", "list", "--json").stdout)] == ["root"]
    r = run("user", "delete", "alice")
    assert r.returncode == 1 and "no user named 'alice'" in r.stderr

    audit = json.loads(run("audit", "--json").stdout)
    assert {"admin", "password", "group"} >= {e["event"] for e in audit}
    assert all("a good password" not in (e["detail"] or "") for e in audit)


def test_password_is_not_an_argument(run):
    r = run("user", "add", "alice", "a good password 1")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


def test_group_members_and_db_restrict(run):
    run("group", "add", "team")
    run("user", "add", "bob", "--password-stdin", stdin="a good password 2\n")
    r = run("group", "add-member", "team", "bob")
    assert r.returncode == 0 and "bob" in r.stdout
    groups = json.loads(run("group", "list", "--json").stdout)
    assert groups == [{"name": "team", "description": "", "members": ["bob"]}]
    r = run("db", "restrict", "nosuch", "--groups", "team")
    assert r.returncode == 1 and "no database named" in r.stderr


def test_readme_account_commands_work_as_written(run, tmp_path):
    # The README's "Accounts and access" block, run line by line as a user would paste it.
    import re
    import shlex
    from pathlib import Path

    from taphouse.catalogue.ingest import ingest_files
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("## Accounts and access", 1)[1].split("```bash", 1)[1].split("```")[0]
    # the database the README restricts must exist
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"x": [1]}), tmp_path / "t.parquet")
    data = tmp_path / "data"
    ingest_files(CatalogueStore(MetadataDB(data / "meta.sqlite"), data / "tables"),
                 [tmp_path / "t.parquet"], "mysurvey", "t")
    for line in block.strip().splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        for part in command.split("&&"):
            args = shlex.split(part)
            assert args[0] == "taphouse"
            stdin = "a good password 2\n" if args[1:3] == ["user", "add"] else ""
            if stdin:
                args.append("--password-stdin")
            r = run(*args[1:], stdin=stdin)
            assert r.returncode == 0, (part, r.stderr)
    groups = json.loads(run("group", "list", "--json").stdout)
    assert groups == [{"name": "survey-team", "description": "", "members": ["ada"]}]


@pytest.mark.parametrize("name", ["9-team", "team_", "survey-team", "a-b-c"])
def test_group_names_with_hyphens(run, name):
    r = run("group", "add", name)
    if name[0].isdigit():
        assert r.returncode != 0 and "'-'" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert name in run("group", "list").stdout


def test_user_names_still_refuse_hyphens(run):
    r = run("user", "add", "ada-l", "--password-stdin", stdin="a good password 2\n")
    assert r.returncode != 0 and "letters, digits or '_'" in r.stderr
