"""Backups and encrypted credentials (taphouse.secrets): the key never goes into a backup,
and backup and restore say so when the copy holds credentials."""

from __future__ import annotations

from pathlib import Path

from storage_helpers import taphouse

from taphouse.metadata import MetadataDB
from taphouse.secrets import KEY_FILE, SecretBox, SecretStore, read_key_file
from taphouse.settings import Settings


def test_backup_keeps_the_key_out_and_says_so(tmp_path: Path) -> None:
    data, copy, restored = tmp_path / "data", tmp_path / "copy", tmp_path / "restored"
    taphouse(data, "secrets", "status")  # makes the store; no credentials yet
    proc = taphouse(data, "backup", str(tmp_path / "empty"))
    assert "credential" not in proc.stdout
    settings = Settings(data_dir=data)
    meta = MetadataDB(settings.meta_path)
    SecretStore.from_settings(meta, settings).put("remote:1", "Bearer s3cret-t0ken")
    meta.close()
    (key,) = read_key_file(data / KEY_FILE)
    proc = taphouse(data, "backup", str(copy))
    assert "1 stored credential(s) are in it, encrypted; their key is not" in proc.stdout
    assert not (copy / KEY_FILE).exists()
    for f in copy.rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes()
            assert b"s3cret-t0ken" not in f.read_bytes()
    proc = taphouse(tmp_path / "elsewhere", "restore", str(copy), str(restored))
    assert "1 stored credential(s) need their key: copy the old data directory's" \
        " secret-keys file" in proc.stdout
    # With the key copied over, the credential opens in the restored store.
    (restored / KEY_FILE).write_text(key + "\n")
    (restored / KEY_FILE).chmod(0o600)
    meta = MetadataDB(restored / "meta.sqlite")
    box = SecretBox.from_settings(Settings(data_dir=restored), create=False)
    assert SecretStore(meta, box).get("remote:1").reveal() == "Bearer s3cret-t0ken"
    meta.close()
