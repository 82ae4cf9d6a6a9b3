import warnings

import numpy as np
from astropy import units as u
from astropy.table import MaskedColumn, Table

from taphouse.client.output import convert, parse_votable

OVERFLOW_DOC = b"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">
<INFO name="QUERY_STATUS" value="OK"/>
<TABLE><FIELD name="ra" datatype="double" unit="deg" ucd="pos.eq.ra"/>
<DATA><TABLEDATA><TR><TD>1.5</TD></TR><TR><TD>2.5</TD></TR></TABLEDATA></DATA></TABLE>
<INFO name="QUERY_STATUS" value="OVERFLOW"/>
</RESOURCE></VOTABLE>"""


def test_trailing_overflow_info_is_seen_and_units_kept():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table, infos, _ = parse_votable(OVERFLOW_DOC)
    assert infos["QUERY_STATUS"] == "OVERFLOW"
    assert table["ra"].unit == u.deg and list(table["ra"]) == [1.5, 2.5]


def test_conversions_keep_values_masks_and_units():
    t = Table({"id": np.array([1, 2, 3]),
               "mag": MaskedColumn([1.0, 2.0, 3.0], mask=[False, True, False], unit="mag"),
               "name": np.array(["a", "b", "c"])})
    arrow = convert(t, "pyarrow")
    assert arrow.column("mag").null_count == 1
    assert arrow.schema.field("mag").metadata[b"unit"] == b"mag"
    df = convert(t, "pandas")
    assert list(df["id"]) == [1, 2, 3] and np.isnan(df["mag"][1])
    pl = convert(t, "polars")
    assert pl["name"].to_list() == ["a", "b", "c"] and pl["mag"].null_count() == 1
