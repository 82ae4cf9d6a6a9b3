"""Whether a stored result keeps the query's order is read from the parsed query."""

from __future__ import annotations

import pytest

from taphouse.userspace.space import has_order_by


@pytest.mark.parametrize("adql, ordered", [
    ("SELECT a FROM t ORDER BY a", True),
    ("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1", True),
    ("SELECT 'order by' AS x FROM t", False),  # the words in a string
    ("SELECT * FROM (SELECT TOP 5 a FROM t ORDER BY a) AS s", False),  # inner only
    ("SELECT TOP 3 a FROM t -- order by\n", False),  # in a comment
    ("SELECT FROM WHERE", False),  # not ADQL at all: no claim of order
])
def test_has_order_by(adql: str, ordered: bool) -> None:
    assert has_order_by(adql) is ordered
