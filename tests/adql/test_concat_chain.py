"""A chain of || is one concat on DuckDB (it kept every intermediate string of a chain
for a whole vector of rows: 100 parts of 100 characters took 1.4-2 GB), with ||'s rule
that a NULL part makes the whole NULL."""


def test_a_chain_of_concatenations_is_one_call_with_nulls_kept(env):
    t, rows = env.run("SELECT TOP 2 name || '-' || name || '-' || id AS s FROM demo.stars"
                      " WHERE name IS NOT NULL ORDER BY id")
    assert t.sql.count("CONCAT(") == 1 and "||" not in t.sql
    name = rows[0][0].split("-")[0]
    assert rows[0][0] == f"{name}-{name}-" + rows[0][0].rsplit("-", 1)[1]
    _, rows = env.run("SELECT TOP 1 'a' || NULL || 'b' AS s FROM demo.stars")
    assert rows == [(None,)]
    _, rows = env.run("SELECT TOP 1 ('a' || 'b') || ('c' || 'd') AS s FROM demo.stars")
    assert rows == [("abcd",)]
    # Two parts stay a plain ||.
    t, rows = env.run("SELECT TOP 1 'a' || 'b' AS s FROM demo.stars")
    assert "||" in t.sql and rows == [("ab",)]


def test_a_long_chain_runs(env):
    parts = " || ".join(["name"] * 300)
    _, rows = env.run(f"SELECT TOP 3 {parts} AS s FROM demo.stars WHERE name IS NOT NULL")
    assert len(rows) == 3 and all(len(r[0]) % 300 == 0 for r in rows)
