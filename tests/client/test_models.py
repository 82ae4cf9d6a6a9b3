from taphouse.client.models import Column, Database, Listing, Quota, TableInfo, build


def test_listing_prints_aligned_rows_and_escaped_html():
    dbs = Listing([Database("gaia", "Gaia <DR3>", "catalogue", 1),
                   Database("hipparcos", "Hipparcos", "catalogue", 1)], Database, "databases")
    text = repr(dbs)
    assert text.splitlines()[0] == "databases (2)"
    assert "gaia       catalogue  1       Gaia <DR3>" in text
    html = dbs._repr_html_()
    assert "Gaia &lt;DR3&gt;" in html and html.count("<tr>") == 3
    assert dbs["hipparcos"].description == "Hipparcos"


def test_table_info_repr_lists_columns_with_units():
    info = build(TableInfo, {"name": "hip2", "qualified_name": "hipparcos.hip2", "nrows": 117955,
                             "description": "Hipparcos", "unknown_key": 1})
    info.columns = [Column("ra", "double", "deg", "pos.eq.ra", "Right ascension")]
    text = repr(info)
    assert text.startswith("<TableInfo hipparcos.hip2 (117,955 rows)>")
    assert "ra    double    deg   pos.eq.ra  Right ascension" in text
    assert "<b>hipparcos.hip2 (117,955 rows)</b>" in info._repr_html_()


def test_quota_repr_shows_percentages():
    q = Quota(rows_used=50, rows_limit=200, bytes_used=0, bytes_limit=None, tables=1)
    assert repr(q) == "<Quota 50 of 200 rows (25.0 %), 0 bytes, 1 tables>"
