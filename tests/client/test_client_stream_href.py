"""The client reads VOTables a service sends (results, error documents): one whose
STREAM names its rows by href made astropy open the link itself (``file:`` read a file
of the user's machine into the result table). Refused with a clear error now."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from taphouse.client.errors import ClientError
from taphouse.client.http import votable_infos
from taphouse.client.output import parse_votable


def hostile(tmp_path: Path) -> bytes:
    secret = tmp_path / "id_rsa.bin"
    secret.write_bytes(struct.pack(">q", 4242424242))
    return ('<?xml version="1.0"?><VOTABLE version="1.4"'
            ' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
            '<INFO name="QUERY_STATUS" value="OK"/><TABLE><FIELD name="v" datatype="long"/>'
            f'<DATA><BINARY><STREAM href="file://{secret}"/></BINARY></DATA></TABLE>'
            '</RESOURCE></VOTABLE>').encode()


def test_the_client_refuses_a_result_with_a_stream_href(tmp_path: Path) -> None:
    doc = hostile(tmp_path)
    with pytest.raises(ClientError, match="STREAM with an href") as err:
        parse_votable(doc)
    assert "id_rsa.bin" in str(err.value)
    assert votable_infos(doc) is None  # an error document like it: its raw text instead
