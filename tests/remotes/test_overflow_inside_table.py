"""A remote's QUERY_STATUS=OVERFLOW written inside its TABLE (after DATA, where the
VOTable 1.3/1.4 schema allows INFO) is an overflow: read as complete, a cut answer was
joined silently by a federated join (its blocks never halved) or stored by DEST."""

from __future__ import annotations

import time

import pytest
from fake_tap import VOT, FakeTap
from remote_helpers import LOOPBACK

from taphouse.outbound import Outbound, OutboundPolicy
from taphouse.remotes import RemoteQueryFailed, RemoteTap, RetryPolicy


def _document(info: str) -> bytes:
    return ('<?xml version="1.0"?><VOTABLE version="1.4"'
            ' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
            '<TABLE><FIELD name="id" datatype="long"/><DATA><TABLEDATA>'
            '<TR><TD>1</TD></TR><TR><TD>2</TD></TR></TABLEDATA></DATA>'
            f'{info}</TABLE></RESOURCE></VOTABLE>').encode()


def _client(fake: FakeTap) -> RemoteTap:
    return RemoteTap("odd", fake.url, Outbound(OutboundPolicy(allow=LOOPBACK, timeout=10)),
                     retry=RetryPolicy(1, 0.05), sleep=time.sleep)


def test_overflow_inside_the_table_is_an_overflow(fake_tap: FakeTap) -> None:
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, _document(
        '<INFO name="QUERY_STATUS" value="OVERFLOW"/>'))
    answer = _client(fake_tap).query_sync("SELECT id FROM cat.stars", maxrec=2)
    assert answer.rows == 2 and answer.overflow


def test_error_inside_the_table_is_an_error(fake_tap: FakeTap) -> None:
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, _document(
        '<INFO name="QUERY_STATUS" value="ERROR">ran out of time</INFO>'))
    with pytest.raises(RemoteQueryFailed, match="ran out of time"):
        _client(fake_tap).query_sync("SELECT id FROM cat.stars", maxrec=2)
