"""`taphouse secrets rotate --retire` while the server seals a credential: a store that
read its keys just before the rotation and sealed just after it (here stretched: the
store pauses after reading its keys) put the credential under the retired key, and
it was lost at the next start. The keys are now read inside the write transaction the
rotation's re-sealing waits for."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from taphouse.metadata import MetadataDB
from taphouse.secrets import SecretBox, SecretStore, key_file_path
from taphouse.settings import Settings


class PausingStore(SecretStore):
    """The server's store, pausing after it read its keys (the few milliseconds of the
    race, made long enough to run a rotation in)."""

    pause: threading.Event | None = None
    reached: threading.Event | None = None

    @property
    def box(self) -> SecretBox:
        box = super().box
        if self.pause is not None and self.reached is not None:
            self.reached.set()
            self.pause.wait(60)
        return box


def test_a_credential_sealed_during_a_rotation_with_retire_still_opens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    meta = MetadataDB(settings.meta_path)
    store = PausingStore.from_settings(meta, settings)
    assert isinstance(store, PausingStore)
    store.put("remote:1", "first")  # the key file exists, one key
    store.pause, store.reached = threading.Event(), threading.Event()
    sealing = threading.Thread(target=store.put, args=("database:sky", "pg-secret"))
    sealing.start()
    assert store.reached.wait(30)  # keys read: the next step seals with them
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHOUSE_")}
    rotation = subprocess.Popen(
        [sys.executable, "-m", "taphouse.cli", "--data-dir", str(data), "secrets", "rotate",
         "--retire"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Before the fix the rotation ran to its end here; now it waits for the store's
    # transaction once it has written its new key.
    key_file = key_file_path(settings)
    before, changed = key_file.stat().st_ino, None
    deadline = time.monotonic() + 60
    while rotation.poll() is None and time.monotonic() < deadline:
        if changed is None and key_file.stat().st_ino != before:
            changed = time.monotonic()
        if changed is not None and time.monotonic() - changed > 3:
            break
        time.sleep(0.05)
    store.pause.set()
    sealing.join(60)
    _, err = rotation.communicate(timeout=120)
    assert rotation.returncode == 0, err
    restarted = SecretStore.from_settings(meta, settings)  # the server's next start
    assert restarted.get("remote:1").reveal() == "first"
    assert restarted.get("database:sky").reveal() == "pg-secret"
    box = SecretBox.from_settings(settings, create=False)
    assert set(restarted.keys_in_use()) <= set(box.key_ids)
    assert len(box.key_ids) == 1 and key_file_path(settings).exists()
    meta.close()
