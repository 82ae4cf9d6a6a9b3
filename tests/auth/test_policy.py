import pytest

from taphouse.auth.database_access import DatabaseAccess
from taphouse.auth.errors import AccountError, UnknownObject
from taphouse.auth.identity import ANONYMOUS
from taphouse.auth.policy import ReadPolicy


@pytest.fixture
def setup(auth, catalogue, meta):
    catalogue.create_database("open_cat")
    catalogue.create_database("secret_cat")
    auth.accounts.add_group("team")
    auth.accounts.add_user("alice", "a good password 1", groups=["team"])
    auth.accounts.add_user("bob", "a good password 2")
    auth.accounts.add_user("root", "an admin password 3", is_admin=True)
    access = DatabaseAccess(meta, catalogue)
    access.restrict("secret_cat", ["team"])
    return access


def readable(auth, catalogue, meta, identity):
    policy = ReadPolicy(meta)
    one_by_one = {db.name for db in catalogue.databases() if policy.can_read(identity, db)}
    # The bulk answer (one query for every restricted database) is the same.
    assert {db.name for db in policy.readable(identity, catalogue.databases())} == one_by_one
    return one_by_one


def test_restricted_database_readable_only_by_group_and_admins(auth, catalogue, meta, setup):
    def who(name):
        return auth.identity_of(auth.accounts.user(name), "bearer")

    assert readable(auth, catalogue, meta, ANONYMOUS) == {"open_cat"}
    assert readable(auth, catalogue, meta, who("bob")) == {"open_cat"}
    assert readable(auth, catalogue, meta, who("alice")) == {"open_cat", "secret_cat"}
    assert readable(auth, catalogue, meta, who("root")) == {"open_cat", "secret_cat"}
    assert setup.describe("secret_cat") == {"database": "secret_cat", "public": False,
                                            "groups": ["team"]}


def test_make_public_again(auth, catalogue, meta, setup):
    setup.make_public("secret_cat")
    assert readable(auth, catalogue, meta, ANONYMOUS) == {"open_cat", "secret_cat"}
    assert setup.describe("secret_cat")["groups"] == []


def test_restrict_checks_names(setup):
    with pytest.raises(UnknownObject, match="no group"):
        setup.restrict("open_cat", ["nosuch"])
    assert setup.describe("open_cat")["public"] is True  # unchanged
    with pytest.raises(UnknownObject, match="no database"):
        setup.restrict("nosuch", ["team"])


def test_user_schemas_are_not_restricted_here(catalogue, setup):
    catalogue.create_database("user_alice", kind="user", public=False)
    with pytest.raises(AccountError, match="user schema"):
        setup.restrict("user_alice", ["team"])
