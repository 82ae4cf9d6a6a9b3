"""AdqlError: message, line and column, ready for a TAP error document."""

from __future__ import annotations

import pytest

from taphouse.adql import AdqlError


def test_error_fields_and_str():
    e = AdqlError("unknown column x", 2, 5)
    assert (e.message, e.line, e.column) == ("unknown column x", 2, 5)
    assert str(e) == "unknown column x (line 2, column 5)"
    assert str(AdqlError("bad")) == "bad" and AdqlError("bad").line is None


def test_syntax_error_has_position(env):
    with pytest.raises(AdqlError) as info:
        env.translate("SELECT id\nFROM demo.stars\nWHERE id = = 3")
    assert info.value.message.startswith("syntax error")
    assert info.value.line == 3


def test_unknown_column_position_and_suggestion(env):
    with pytest.raises(AdqlError) as info:
        env.translate("SELECT id,\n       magg FROM demo.stars")
    e = info.value
    assert e.message == "unknown column magg; did you mean mag?"
    assert (e.line, e.column) == (2, 8)


def test_unknown_table_suggestion(env):
    with pytest.raises(AdqlError, match=r"unknown table demo.starz; did you mean demo.stars"):
        env.translate("SELECT * FROM demo.starz")
    with pytest.raises(AdqlError, match=r"unknown table obz; did you mean obs"):
        env.translate("SELECT * FROM obz")


def test_empty_query():
    from taphouse.adql import Scope, translate

    with pytest.raises(AdqlError, match="empty"):
        translate("  -- nothing\n", Scope({}, relation=str))


def test_select_alias_not_visible_in_where(env):
    with pytest.raises(AdqlError, match="unknown column m"):
        env.translate("SELECT mag AS m FROM demo.stars WHERE m > 3")


def test_negative_maxrec_and_bad_top(env):
    with pytest.raises(AdqlError, match="MAXREC"):
        env.translate("SELECT id FROM demo.stars", maxrec=-1)
    with pytest.raises(AdqlError):
        env.translate("SELECT TOP x id FROM demo.stars")


def test_postgres_output(env):
    t = env.translate("SELECT TOP 5 id, POINT(ra, dec) AS p, LOG(mag) FROM demo.stars WHERE "
                      "1=CONTAINS(POINT(ra, dec), CIRCLE(10, 10, 0.1)) AND name ILIKE 'a%'",
                      dialect="postgres")
    assert "ARRAY[" in t.sql and "DOUBLE PRECISION[2]" in t.sql
    assert "LN(" in t.sql and "ILIKE" in t.sql and "LIMIT 5" in t.sql
    assert '"_healpix_29" BETWEEN' in t.sql
    with pytest.raises(ValueError):
        env.translate("SELECT 1 FROM demo.stars", dialect="oracle")


def test_join_without_condition_position(env):
    with pytest.raises(AdqlError) as info:
        env.translate("SELECT s.id\nFROM demo.stars AS s\n  JOIN demo.obs AS o\nWHERE s.id = o.id")
    e = info.value
    assert e.message.startswith("JOIN demo.obs AS o has no join condition: add ON")
    assert (e.line, e.column) == (3, 8)  # the joined table


@pytest.mark.parametrize("written", ["CHAR_LENGTH", "char_length", "CHARACTER_LENGTH",
                                     "LENGTH"])
def test_refused_function_named_as_written(env, written):
    with pytest.raises(AdqlError) as info:
        env.translate(f"SELECT {written}(name) FROM demo.stars")
    assert info.value.message.startswith(f"unknown or forbidden function {written}:")
    assert "not an ADQL 2.1 function" in info.value.message
    assert (info.value.line, info.value.column) == (1, 8)


@pytest.mark.parametrize("op", ["LIKE", "NOT LIKE", "ILIKE"])
def test_like_escape_says_what_to_do(env, op):
    with pytest.raises(AdqlError) as info:
        env.translate(f"SELECT name FROM demo.stars WHERE name {op} 'a!%' ESCAPE '!'")
    message = info.value.message
    assert message.startswith("LIKE ... ESCAPE is not part of ADQL")
    assert "remove the ESCAPE clause" in message and "Escape)" not in message


def test_refused_construct_names_no_internal_class(env):
    with pytest.raises(AdqlError) as info:
        env.translate("SELECT name FROM demo.stars WHERE name SIMILAR TO 'a.*'")
    assert info.value.message == ("'name SIMILAR TO 'a.*'' is not part of ADQL; rewrite it "
                                  "with ADQL 2.1 constructs")
