"""`taphouse secrets rotate [--retire]` run while the server runs (nothing in the docs
says to stop it first). The server's store read the key file once: after a rotation it
could open none of the stored credentials (remote passwords, PostgreSQL DSNs) until
restarted, and what it sealed after a `--retire` was sealed with the retired key, lost
at its next start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from taphouse.metadata import MetadataDB
from taphouse.secrets import SecretStore
from taphouse.settings import Settings

PLAIN = "s3cr3t-p@ss:word"


def _rotate(data_dir: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHOUSE_")}
    proc = subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data_dir),
                           "secrets", "rotate", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_running_store_follows_a_rotation_of_the_key_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    meta = MetadataDB(settings.meta_path)
    running = SecretStore.from_settings(meta, settings)  # as the server holds it
    running.put("remote:1", PLAIN)
    assert running.get("remote:1").reveal() == PLAIN
    _rotate(data)
    assert running.get("remote:1").reveal() == PLAIN  # sealed with the new key now
    _rotate(data, "--retire")
    running.put("remote:2", "after-the-rotation")
    assert running.get("remote:1").reveal() == PLAIN
    restarted = SecretStore.from_settings(meta, settings)  # the server's next start
    assert restarted.get("remote:2").reveal() == "after-the-rotation"
    assert restarted.get("remote:1").reveal() == PLAIN
    meta.close()
