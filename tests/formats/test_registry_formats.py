from __future__ import annotations

import pytest

from taphouse.formats import FORMATS, FormatError, get_writer


@pytest.mark.parametrize("value,name", [
    ("votable", "votable"), ("VOTABLE", "votable"), ("votable/b", "votable"),
    ("votable/b2", "votable/b2"), ("application/x-votable+xml", "votable"),
    ("application/x-votable+xml;serialization=BINARY", "votable"),
    ("application/x-votable+xml;serialization=binary", "votable"),
    ("application/x-votable+xml;serialization=BINARY2", "votable/b2"),
    ("application/x-votable+xml; serialization=binary2", "votable/b2"),
    ("text/xml", "votable"), ("votable/td", "votable/td"),
    ("application/x-votable+xml;serialization=TABLEDATA", "votable/td"),
    ("csv", "csv"), ("text/csv", "csv"), ("text/csv;header=present", "csv"),
    ("tsv", "tsv"), ("text/tab-separated-values", "tsv"),
    ("fits", "fits"), ("application/fits", "fits"),
    ("parquet", "parquet"), ("application/vnd.apache.parquet", "parquet"),
    ("json", "json"), ("application/json", "json"), ("", "votable"),
])
def test_names_and_mime_types_resolve(value, name):
    assert get_writer(value).name == name


def test_unknown_format_lists_the_valid_ones():
    with pytest.raises(FormatError) as err:
        get_writer("excel")
    assert "'excel'" in str(err.value)
    for fmt in FORMATS:
        assert fmt.aliases[0] in str(err.value)


def test_unknown_serialization_is_refused():
    with pytest.raises(FormatError):
        get_writer("application/x-votable+xml;serialization=FITS")


def test_descriptors_carry_capabilities_fields():
    assert FORMATS[0].aliases[0] == "votable"
    assert FORMATS[0].mime == "application/x-votable+xml"
    assert {f.aliases[0] for f in FORMATS} == {"votable", "votable/b2", "votable/td", "csv",
                                               "tsv", "fits", "parquet", "json"}
    for fmt in FORMATS:
        writer = fmt.factory()
        assert writer.mime == fmt.content_type and writer.extension == fmt.extension
        assert fmt.description
