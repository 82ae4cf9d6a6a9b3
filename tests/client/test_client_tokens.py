import os
import stat
import time

from taphouse.client.tokens import TokenStore, default_path


def test_default_path_honours_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_path() == tmp_path / "taphouse" / "tokens.json"


def test_store_is_private_and_keyed_by_url(tmp_path):
    store = TokenStore(tmp_path / "cfg" / "tokens.json")
    store.save("http://a/", username="ada", token="t1", expires=time.time() + 3600)
    store.save("http://b", username="bob", token="t2", expires=time.time() + 3600)
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) & 0o077 == 0
    assert store.load("http://a")["token"] == "t1"
    assert store.load("http://b/")["username"] == "bob"
    store.forget("http://a")
    assert store.load("http://a") is None
    assert store.load("http://b")["token"] == "t2"


def test_expired_entries_are_not_returned(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    store.save("http://a", username="ada", token="old", expires=time.time() + 10)
    assert store.load("http://a", min_valid=60) is None
    assert store.load("http://a", min_valid=1)["token"] == "old"
