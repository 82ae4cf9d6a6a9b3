"""A table with a column called like the federated join's own row key (taphouse_key)
joined with a remote: the user's column was silently replaced by the key (0, 1, 2...
instead of its values); now a clear error names the column."""

from __future__ import annotations

from federation_helpers import sync


def test_a_column_named_like_the_join_key_is_not_replaced_silently(here, far) -> None:  # noqa: ANN001
    r = sync(here, "alice", "SELECT TOP 20 hip AS taphouse_key, ra, dec FROM hipparcos.hip2"
             " WHERE dec BETWEEN 10 AND 30 ORDER BY hip", DEST="mydb.keyed")
    assert r.status_code == 200, r.text
    r = sync(here, "alice", "SELECT t.taphouse_key, r.hip FROM mydb.keyed AS t"
             " JOIN far.hipparcos.hip2 AS r"
             " ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, 1/3600.))",
             RESPONSEFORMAT="csv")
    if r.status_code == 200:  # a right answer would do too: each star matches itself
        rows = [line.split(",") for line in r.text.strip().splitlines()[1:]]
        assert rows and all(a == b for a, b in rows), r.text[:300]
    else:
        assert r.status_code == 400, r.text
        assert "taphouse_key" in r.text and "mydb.keyed" in r.text
