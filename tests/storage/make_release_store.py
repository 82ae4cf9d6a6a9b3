"""Make the data directory of a released taphouse that ``test_upgrade.py`` opens.

Run it ONCE per release, with that release's code, and commit the archive it writes::

    git worktree add --detach /tmp/taphouse-old 68f3c0c
    cd /tmp/some-empty-dir
    PYTHONPATH=/tmp/taphouse-old/src python /path/to/tests/storage/make_release_store.py \\
        /path/to/tests/storage/data/store-68f3c0c.tar.gz
    git worktree remove /tmp/taphouse-old

The store is made the way operators made them, including the ways that broke:

- ``survey.stars`` ingested twice with a *relative* ``--data-dir`` (paths were stored
  relative to the working directory), so one replaced version still awaits deletion;
- ``survey.galaxies`` ingested with the *absolute* path of a directory that no longer
  exists where the archive is unpacked (a moved store);
- ``secret.plans`` in a restricted database, readable by the group ``team``;
- the account ``ada`` (password ``accounts.PASSWORD``, member of ``team``) with a user table
  ``mydb.mine`` (an upload);
- the mode bits of the time (0755 directories, 0644 files).

Uses only the API of that release; keep it that way when regenerating.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for accounts.py
from accounts import PASSWORD  # noqa: E402  (the one password of the test accounts)


def _taphouse(data_dir: str, *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", data_dir, *args],
                   check=True, input=stdin, text=True)


def main(archive: Path) -> None:
    os.umask(0o022)  # what a default shell had
    work = Path(tempfile.mkdtemp(prefix="release-store-"))
    os.chdir(work)
    stars = work / "stars.csv"
    stars.write_text("id,ra,dec,mag\n" + "".join(
        f"{i},{(i * 7.3) % 360:.4f},{(i % 170) - 85:.2f},{i % 20}\n" for i in range(500)))
    more = work / "stars2.csv"
    more.write_text("id,ra,dec,mag\n" + "".join(
        f"{i},{(i * 3.1) % 360:.4f},{(i % 150) - 75:.2f},{i % 10}\n" for i in range(300)))
    galaxies = work / "galaxies.csv"
    galaxies.write_text("id,ra,dec,z\n" + "".join(
        f"{i},{(i * 1.7) % 360:.4f},{(i % 100) - 50:.2f},{i / 1000:.3f}\n"
        for i in range(200)))
    plans = work / "plans.csv"
    plans.write_text("id,what\n1,first light\n2,second light\n")

    _taphouse("store", "ingest", str(stars), "-d", "survey", "-t", "stars", "-q")
    _taphouse("store", "ingest", str(more), "-d", "survey", "-t", "stars", "-q")
    _taphouse(str(work / "store"), "ingest", str(galaxies), "-d", "survey", "-t",
              "galaxies", "-q")
    _taphouse("store", "ingest", str(plans), "-d", "secret", "-t", "plans", "-q")
    _taphouse("store", "user", "add", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    _taphouse("store", "group", "add", "team")
    _taphouse("store", "group", "add-member", "team", "ada")
    _taphouse("store", "db", "restrict", "secret", "--groups", "team")

    from taphouse.server import Platform
    from taphouse.settings import Settings

    platform = Platform(Settings(data_dir=Path("store")))
    identity = platform.identity_for("ada")
    platform.userspace.store_upload(identity, "mine", b"a,b\n1,2\n3,4\n",
                                    content_type="text/csv", max_rows=1000)
    platform.meta.close()

    archive = Path(archive).absolute()
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add("store", arcname="store")
    print(f"{archive}: {archive.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
