"""taphouse.secrets: credentials encrypted at rest, keys from the settings or a private
key file, rotation, clear errors, nothing secret in logs, reprs or messages."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from taphouse.metadata import MetadataDB
from taphouse.secrets import (
    KEY_FILE,
    Secret,
    SecretBox,
    SecretKeyError,
    SecretStore,
    SecretTampered,
    generate_key,
    key_id,
    read_key_file,
)
from taphouse.settings import Settings, settings_in_force

PLAIN = "s3cr3t-p@ss:word"


def test_seal_and_open_round_trip_with_a_key_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    box = SecretBox.from_settings(settings)
    sealed = box.seal(PLAIN, purpose="remote:far")
    assert sealed.startswith(f"th1:{box.primary_key_id}:")
    assert PLAIN not in sealed
    assert box.seal(PLAIN, purpose="remote:far") != sealed  # random IV: no equality leak
    # Another process (a new box from the same settings) opens it: the key was kept.
    again = SecretBox.from_settings(settings)
    assert again.open(sealed, purpose="remote:far") == PLAIN
    assert again.open(box.seal("ünïcode ✓")) == "ünïcode ✓"


def test_key_file_is_created_private_and_refused_when_others_can_read_it(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    SecretBox.from_settings(settings)
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(SecretKeyError, match=r"may be read by others \(mode 0644\).*chmod 600"):
        SecretBox.from_settings(settings)
    os.chmod(path, 0o600)
    SecretBox.from_settings(settings)
    # A symlink planted in its place is not followed.
    path.rename(tmp_path / "elsewhere")
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SecretKeyError, match="cannot read the key file"):
        SecretBox.from_settings(settings)


def test_missing_key_file_without_create_and_empty_or_bad_keys(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(SecretKeyError, match="no key file"):
        SecretBox.from_settings(settings, create=False)
    path = tmp_path / KEY_FILE
    path.write_text("# nothing\n")
    os.chmod(path, 0o600)
    with pytest.raises(SecretKeyError, match="holds no key"):
        SecretBox.from_settings(settings)
    path.write_text("not-a-key\n")
    with pytest.raises(SecretKeyError, match="not a valid key") as err:
        SecretBox.from_settings(settings)
    assert "not-a-key" not in str(err.value)  # a bad key is not printed either
    with pytest.raises(SecretKeyError, match="TAPHOUSE_SECRET_KEYS, key 2: not a valid key"):
        SecretBox.from_settings(settings.replace(secret_keys=(generate_key(), "short")))


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    boxes: list[SecretBox] = []
    threads = [threading.Thread(target=lambda: boxes.append(SecretBox.from_settings(settings)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({b.primary_key_id for b in boxes}) == 1
    assert not [p for p in (tmp_path / "data").iterdir() if p.name != KEY_FILE]  # no temp left


def test_wrong_key_and_tampered_values_are_told_apart(tmp_path: Path) -> None:
    box = SecretBox([generate_key()])
    other = SecretBox([generate_key()])
    sealed = box.seal(PLAIN)
    with pytest.raises(SecretKeyError, match=f"sealed with key {box.primary_key_id}, which"
                       r" keys does not have .*replaced or lost") as err:
        other.open(sealed)
    assert PLAIN not in str(err.value) and sealed not in str(err.value)
    prefix, kid, token = sealed.split(":")
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    with pytest.raises(SecretTampered, match="fails its integrity check"):
        box.open(f"{prefix}:{kid}:{flipped}")
    with pytest.raises(SecretTampered, match="fails its integrity check"):
        box.open(f"{prefix}:{kid}:{token[:-10]}")  # truncated
    for junk in ("", "plain text", "th1:abc:def", "th2:" + sealed[4:], PLAIN):
        with pytest.raises(SecretTampered, match="not a sealed secret"):
            box.open(junk)
    # A sealed value is bound to its purpose: copied to another record, it does not open.
    bound = box.seal(PLAIN, purpose="remote:far")
    with pytest.raises(SecretTampered, match="another use"):
        box.open(bound, purpose="remote:near")


def test_rotation_new_key_first_old_keys_still_open(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    sealed_old = SecretBox([old]).seal(PLAIN, purpose="x")
    rotated = SecretBox([new, old])
    assert rotated.open(sealed_old, purpose="x") == PLAIN
    assert rotated.sealed_with(rotated.seal(PLAIN)) == key_id(new)
    resealed = rotated.reseal(sealed_old, purpose="x")
    assert rotated.sealed_with(resealed) == key_id(new)
    assert SecretBox([new]).open(resealed, purpose="x") == PLAIN
    with pytest.raises(SecretKeyError):
        SecretBox([new]).open(sealed_old, purpose="x")


def test_keys_from_the_settings_win_and_are_masked(tmp_path: Path) -> None:
    key = generate_key()
    settings = Settings.from_env({"TAPHOUSE_SECRET_KEYS": f"{key},{generate_key()}",
                                  "TAPHOUSE_DATA_DIR": str(tmp_path)})
    box = SecretBox.from_settings(settings)
    assert box.primary_key_id == key_id(key) and len(box.key_ids) == 2
    assert not (tmp_path / KEY_FILE).exists()
    shown = {r["name"]: r["value"] for r in settings_in_force(settings, environ={})}
    assert shown["secret_keys"] == "********"
    assert key not in repr(box) and key not in str(settings_in_force(settings))


def test_secret_values_do_not_show_themselves() -> None:
    s = Secret(PLAIN)
    assert s.reveal() == PLAIN
    for text in (str(s), repr(s), f"{s}", f"{s!r}", str([s]), str({"password": s})):
        assert PLAIN not in text and "****" in text


def _store(tmp_path: Path, box: SecretBox) -> tuple[MetadataDB, SecretStore]:
    meta = MetadataDB(tmp_path / "meta.sqlite")
    return meta, SecretStore(meta, box)


def test_store_put_get_delete_and_at_rest_encryption(tmp_path: Path) -> None:
    meta, store = _store(tmp_path, SecretBox([generate_key()]))
    store.put("remote:far", PLAIN)
    store.put("remote:far", PLAIN + "2")  # replaced
    got = store.get("remote:far")
    assert isinstance(got, Secret) and got.reveal() == PLAIN + "2"
    assert store.get("remote:none") is None
    assert store.names() == ["remote:far"]
    meta.close()
    # Nothing readable in the database file or its WAL.
    for f in tmp_path.iterdir():
        if f.name.startswith("meta.sqlite"):
            assert PLAIN.encode() not in f.read_bytes()
    # Swapping sealed values between names (write access to the DB) does not work.
    meta, store = _store(tmp_path, store.box)
    store.put("remote:near", "other")
    con = sqlite3.connect(tmp_path / "meta.sqlite")
    with con:
        con.execute("UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE"
                    " name = 'remote:far') WHERE name = 'remote:near'")
    con.close()
    with pytest.raises(SecretTampered, match="stored secret 'remote:near': .*another use"):
        store.get("remote:near")
    assert store.delete("remote:near") and not store.delete("remote:near")
    meta.close()


def test_store_rotation_reencrypts_everything(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    meta, store = _store(tmp_path, SecretBox([old]))
    for n in range(5):
        store.put(f"db:{n}", f"{PLAIN}{n}")
    assert store.keys_in_use() == {key_id(old): 5}
    store = SecretStore(meta, SecretBox([new, old]))
    assert store.rotate() == 5 and store.rotate() == 0
    assert store.keys_in_use() == {key_id(new): 5}
    store = SecretStore(meta, SecretBox([new]))  # the old key can go now
    assert [store.get(f"db:{n}").reveal() for n in range(5)] == \
        [f"{PLAIN}{n}" for n in range(5)]
    meta.close()


def test_rotation_is_all_or_nothing(tmp_path: Path) -> None:
    a, b, lost = generate_key(), generate_key(), generate_key()
    meta, store = _store(tmp_path, SecretBox([a]))
    store.put("ok", "one")
    SecretStore(meta, SecretBox([lost])).put("orphan", "two")
    store = SecretStore(meta, SecretBox([b, a]))
    with pytest.raises(SecretKeyError, match="stored secret 'orphan'"):
        store.rotate()
    assert store.keys_in_use() == {key_id(a): 1, key_id(lost): 1}  # rolled back
    meta.close()


def test_nothing_secret_in_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(data_dir=tmp_path)
    box = SecretBox.from_settings(settings)
    meta, store = _store(tmp_path, box)
    store.put("remote:far", PLAIN)
    store.get("remote:far")
    store.rotate()
    keys = read_key_file(tmp_path / KEY_FILE)
    try:
        SecretBox([generate_key()]).open(box.seal(PLAIN))
    except SecretKeyError as exc:
        logging.getLogger("taphouse.test").error("failed: %s", exc)
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "key file" in text  # something was logged ...
    for secret in (PLAIN, *keys):
        assert secret not in text  # ... and no secret
    meta.close()


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHOUSE_")}
    return subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data_dir),
                           "secrets", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_rotate_and_retire(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    meta = MetadataDB(settings.meta_path)
    first = SecretBox.from_settings(settings)
    SecretStore(meta, first).put("remote:far", PLAIN)
    proc = _cli(data, "rotate")
    assert proc.returncode == 0, proc.stderr
    assert "1 stored secrets re-encrypted" in proc.stdout
    box = SecretBox.from_settings(settings)
    assert box.primary_key_id != first.primary_key_id and len(box.key_ids) == 2
    assert SecretStore(meta, box).keys_in_use() == {box.primary_key_id: 1}
    proc = _cli(data, "rotate", "--retire")
    assert proc.returncode == 0, proc.stderr
    assert "retired keys: " in proc.stdout and first.primary_key_id in proc.stdout
    box = SecretBox.from_settings(settings)
    assert len(box.key_ids) == 1  # every secret re-encrypted: only the new key is needed
    assert SecretStore(meta, box).get("remote:far").reveal() == PLAIN
    status = _cli(data, "status")
    assert status.returncode == 0 and f"{box.primary_key_id} (seals): 1 stored" in status.stdout
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600
    for out in (proc.stdout, proc.stderr, status.stdout, status.stderr):
        assert PLAIN not in out and not any(k in out for k in read_key_file(data / KEY_FILE))
    key = _cli(data, "generate-key")
    assert key.returncode == 0 and SecretBox([key.stdout.strip()])
    meta.close()


def test_store_from_settings_makes_no_key_file_until_used(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    meta = MetadataDB(settings.meta_path)
    store = SecretStore.from_settings(meta, settings)
    assert not (tmp_path / KEY_FILE).exists()
    store.put("database:sky", "postgresql://u:pw@h/db")
    assert (tmp_path / KEY_FILE).exists()
    assert "pw" not in repr(store.box)
    assert SecretStore.from_settings(meta, settings).get("database:sky").reveal() == \
        "postgresql://u:pw@h/db"
    meta.close()
