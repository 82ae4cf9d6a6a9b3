"""A remote's VOTable answer with more rows than the MAXREC asked for is refused before
astropy reads it: astropy reads TABLEDATA one Python step a cell, so a 39 MB answer of
1,000,000 short rows took 2 minutes of CPU (under load) to be refused, and an answer of
remote_max_bytes (200 MB) held a query thread for many minutes. A remote registered by
a user can send that at will."""

from __future__ import annotations

import base64
import time

import pytest
from fake_tap import VOT, FakeTap
from remote_helpers import LOOPBACK

from taphouse.outbound import Outbound, OutboundPolicy
from taphouse.remotes import RemoteTap, RemoteUnavailable, RetryPolicy

HEAD = ('<?xml version="1.0"?><VOTABLE version="1.4"'
        ' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
        '<INFO name="QUERY_STATUS" value="OK"/><TABLE>')


def tabledata(n: int) -> bytes:
    fields = "".join(f'<FIELD name="{c}" datatype="char" arraysize="*"/>' for c in "abc")
    rows = "<TR><TD>a</TD><TD>b</TD><TD>c</TD></TR>" * n
    return (HEAD + fields + f"<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE>"
            "</RESOURCE></VOTABLE>").encode()


def binary2(n: int) -> bytes:
    # a numeric array: left to astropy by the upload reader too
    stream = base64.b64encode(b"\x00" * 17 * n).decode()
    return (HEAD + '<FIELD name="p" datatype="double" arraysize="2"/><DATA><BINARY2>'
            f'<STREAM encoding="base64">{stream}</STREAM></BINARY2></DATA></TABLE>'
            "</RESOURCE></VOTABLE>").encode()


def _client(fake: FakeTap) -> RemoteTap:
    return RemoteTap("big", fake.url, Outbound(OutboundPolicy(allow=LOOPBACK, timeout=60)),
                     retry=RetryPolicy(1, 0.05), sleep=time.sleep)


@pytest.mark.parametrize("document", [tabledata, binary2])
def test_an_answer_past_maxrec_is_refused_before_it_is_read(fake_tap: FakeTap,
                                                             document) -> None:  # noqa: ANN001
    big = document(200_000)
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, big)
    start = time.process_time()
    with pytest.raises(RemoteUnavailable, match="200000 rows although MAXREC=1001"):
        _client(fake_tap).query_sync("SELECT a FROM t", maxrec=1000)
    assert time.process_time() - start < 1.5
    small = document(1000)
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, small)
    assert _client(fake_tap).query_sync("SELECT a FROM t", maxrec=1000).rows == 1000
