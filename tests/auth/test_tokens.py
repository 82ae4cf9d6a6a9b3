import hashlib

import pytest

from taphouse.auth.errors import AccountError, AuthError
from taphouse.auth.tokens import REFRESH_GRACE, TokenService


@pytest.fixture
def user_id(auth):
    return auth.accounts.add_user("alice", "a good password 1").id


@pytest.fixture
def tokens(meta, clock):
    return TokenService(meta, session_lifetime=3600.0, max_session_age=10 * 3600.0, clock=clock)


def test_token_is_long_random_and_stored_only_as_sha256(tokens, user_id, meta):
    issued = tokens.issue(user_id)
    assert issued.secret.startswith("th_") and len(issued.secret) >= 3 + 43
    rows = meta.query("SELECT * FROM tokens")
    assert len(rows) == 1
    stored = " ".join(str(v) for v in tuple(rows[0]))
    assert issued.secret not in stored and issued.secret[3:] not in stored
    assert rows[0]["digest"] == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert tokens.issue(user_id).secret != issued.secret


def test_validate_records_issue_expiry_scopes(tokens, user_id, clock):
    issued = tokens.issue(user_id, scopes=["read"])
    rec = tokens.validate(issued.secret)
    assert rec.user_id == user_id and rec.kind == "session" and rec.scopes == {"read"}
    assert rec.issued == clock.now and rec.expires == clock.now + 3600.0


def test_expired_token_says_expired_not_invalid(tokens, user_id, clock):
    issued = tokens.issue(user_id)
    clock.advance(3599)
    tokens.validate(issued.secret)
    clock.advance(2)
    with pytest.raises(AuthError, match="token expired") as err:
        tokens.validate(issued.secret)
    assert err.value.bearer_error == "invalid_token"
    with pytest.raises(AuthError, match="invalid token") as err:
        tokens.validate("th_" + "x" * 43)
    assert "expired" not in err.value.message


def test_revoked_token_is_refused(tokens, user_id):
    issued = tokens.issue(user_id)
    tokens.revoke(issued.record.id)
    with pytest.raises(AuthError, match="revoked"):
        tokens.validate(issued.secret)


def test_refresh_gives_new_token_and_retires_old_after_grace(tokens, user_id, clock):
    old = tokens.issue(user_id)
    clock.advance(3000)
    new = tokens.refresh(tokens.validate(old.secret))
    assert new.secret != old.secret
    assert new.record.expires == clock.now + 3600.0
    tokens.validate(old.secret)  # still valid during the grace period
    clock.advance(REFRESH_GRACE + 1)
    with pytest.raises(AuthError, match="revoked"):
        tokens.validate(old.secret)
    assert tokens.validate(new.secret).session_start == old.record.session_start


def test_refresh_chain_ends_at_max_session_age(tokens, user_id, clock):
    tok = tokens.issue(user_id)
    for _ in range(10):
        clock.advance(3500)
        tok = tokens.refresh(tokens.validate(tok.secret))
    clock.advance(3500)
    with pytest.raises(AuthError, match="log in again"):
        tokens.refresh(tokens.validate(tok.secret))


def test_personal_tokens_do_not_refresh_and_may_not_expire(tokens, user_id, clock):
    p = tokens.issue(user_id, kind="personal", name="nightly", lifetime=None)
    assert p.record.expires is None
    clock.advance(10 * 365 * 86400)
    rec = tokens.validate(p.secret)
    with pytest.raises(AccountError, match="only session tokens"):
        tokens.refresh(rec)


def test_list_shows_live_tokens_only(tokens, user_id, clock):
    a = tokens.issue(user_id)
    b = tokens.issue(user_id, kind="personal", name="script", lifetime=86400 * 30)
    tokens.revoke(a.record.id)
    assert [t.id for t in tokens.list(user_id)] == [b.record.id]
    assert len(tokens.list(user_id, include_dead=True)) == 2
    clock.advance(86400 * 31)
    assert tokens.list(user_id) == []
    clock.advance(86400 * 8)
    assert tokens.purge() == 2


def test_unknown_scope_is_refused(tokens, user_id):
    with pytest.raises(AccountError, match="unknown token scope"):
        tokens.issue(user_id, scopes=["root"])


def test_last_used_is_recorded_at_coarse_resolution(tokens, user_id, clock):
    issued = tokens.issue(user_id)
    tokens.validate(issued.secret)
    first = tokens.get(issued.record.id).last_used
    assert first == clock.now
    clock.advance(10)
    tokens.validate(issued.secret)
    assert tokens.get(issued.record.id).last_used == first
    clock.advance(100)
    tokens.validate(issued.secret)
    assert tokens.get(issued.record.id).last_used == clock.now
