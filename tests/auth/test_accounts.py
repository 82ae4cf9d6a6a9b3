import pytest

from taphouse.auth.errors import AccountError, UnknownObject


def test_add_user_stores_only_a_hash_and_normalises_the_name(auth, meta):
    user = auth.accounts.add_user("Alice", "a good password 1")
    assert user.name == "alice" and not user.is_admin and not user.disabled
    row = meta.query_one("SELECT password_hash FROM users WHERE id=?", (user.id,))
    assert row[0].startswith("$argon2id$") and "a good password 1" not in row[0]


def test_user_ids_are_stable_and_never_reused(auth):
    a = auth.accounts.add_user("alice", "a good password 1")
    auth.accounts.delete_user("alice")
    b = auth.accounts.add_user("alice", "a good password 1")
    assert b.id > a.id
    assert auth.accounts.user_by_id(a.id) is None


def test_duplicate_and_invalid_names_are_refused(auth):
    auth.accounts.add_user("alice", "a good password 1")
    with pytest.raises(AccountError, match="already exists"):
        auth.accounts.add_user("ALICE", "a good password 2")
    with pytest.raises(AccountError, match="invalid user name"):
        auth.accounts.add_user("9lives", "a good password 1")
    with pytest.raises(AccountError, match="invalid user name"):
        auth.accounts.add_user("a b", "a good password 1")


def test_weak_passwords_are_refused(auth, settings):
    with pytest.raises(AccountError, match="at least 10"):
        auth.accounts.add_user("alice", "short")
    with pytest.raises(AccountError, match="user name"):
        auth.accounts.add_user("alicealice", "AliceAlice")


def test_groups_and_memberships(auth):
    auth.accounts.add_group("astro", "astronomers")
    auth.accounts.add_user("alice", "a good password 1", groups=["astro"])
    auth.accounts.add_user("bob", "a good password 2")
    assert auth.accounts.user("alice").groups == {"astro"}
    auth.accounts.add_member("astro", "bob")
    assert auth.accounts.group("astro").members == ("alice", "bob")
    auth.accounts.remove_member("astro", "alice")
    assert auth.accounts.user("alice").groups == frozenset()
    with pytest.raises(UnknownObject, match="create it first"):
        auth.accounts.add_user("carol", "a good password 3", groups=["nosuch"])
    assert auth.accounts.user("carol") is None  # nothing half-created
    auth.accounts.delete_group("astro")
    assert auth.accounts.user("bob").groups == frozenset()


def test_password_change_and_disable_bump_the_credentials_version(auth):
    u0 = auth.accounts.add_user("alice", "a good password 1")
    u1 = auth.accounts.set_password("alice", "another password 2")
    u2 = auth.accounts.set_disabled("alice", True)
    assert u0.credentials_version < u1.credentials_version < u2.credentials_version
    assert u2.disabled


def test_unknown_user_is_404(auth):
    with pytest.raises(UnknownObject, match="no user named"):
        auth.accounts.set_password("nobody", "a good password 1")
