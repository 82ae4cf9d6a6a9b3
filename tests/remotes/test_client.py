"""The remote TAP client against a second real taphouse server on 127.0.0.1."""

from __future__ import annotations

import pyarrow as pa
import pytest
from remote_helpers import LOOPBACK, REMOTE_MAXREC_HARD

from taphouse.outbound import Outbound, OutboundPolicy
from taphouse.remotes import (
    RemoteOverflow,
    RemoteQueryFailed,
    RemoteTap,
    RemoteUnavailable,
    RetryPolicy,
)
from taphouse.remotes.client import BINARY2, PARQUET


def client(server, allow=LOOPBACK, **kw) -> RemoteTap:  # noqa: ANN001
    policy = OutboundPolicy(allow=allow, timeout=30)
    return RemoteTap("far", server.tap, Outbound(policy), **kw)


def test_capabilities_of_a_real_taphouse(remote_server) -> None:  # noqa: ANN001
    caps = client(remote_server).capabilities()
    assert "ADQL-2.1" in caps.languages
    assert caps.maxrec_hard == REMOTE_MAXREC_HARD
    assert caps.maxrec_default == 50
    assert "ivo://ivoa.net/std/TAPRegExt#upload-inline" in caps.upload_methods
    assert caps.supports_format("votable/b2") and caps.supports_format("parquet")
    assert caps.preferred_format() == "application/vnd.apache.parquet"
    assert caps.has_feature("CONTAINS")


@pytest.mark.parametrize("fmt", ["votable", BINARY2, PARQUET])
def test_sync_query_to_arrow(remote_server, fmt: str) -> None:  # noqa: ANN001
    adql = "SELECT TOP 5 hip, ra, dec, hpmag FROM hipparcos.hip2 ORDER BY hip"
    answer = client(remote_server).query_sync(adql, fmt=fmt)
    assert answer.adql == adql and answer.remote == "far" and answer.mode == "sync"
    assert answer.rows == 5 and not answer.overflow
    assert answer.table.column_names == ["hip", "ra", "dec", "hpmag"]
    assert answer.table.column("hip").to_pylist() == sorted(
        answer.table.column("hip").to_pylist())
    assert pa.types.is_floating(answer.table.schema.field("ra").type)
    units = {c.name: str(c.unit) for c in answer.columns}
    assert units["ra"] == "deg"
    assert answer.nbytes > 0
    assert sum(b.num_rows for b in answer.batches(2)) == 5


def test_async_query_runs_as_a_job_and_deletes_it(remote_server) -> None:  # noqa: ANN001
    adql = "SELECT COUNT(*) AS n FROM hipparcos.hip2 WHERE hpmag < 5"
    before = len(remote_server.platform.jobs.list(None))
    answer = client(remote_server).query_async(adql, fmt=BINARY2, poll=2)
    assert answer.mode == "async" and "/tap/async/" in (answer.job_url or "")
    direct = client(remote_server).query_sync(adql)
    assert answer.table.to_pylist() == direct.table.to_pylist()
    assert answer.table.column("n")[0].as_py() > 100
    # The job was deleted on the remote once its result was read.
    assert len(remote_server.platform.jobs.list(None)) == before


def test_overflow_is_kept_and_refused_where_completeness_is_needed(remote_server) -> None:  # noqa: ANN001
    tap = client(remote_server)
    answer = tap.query_sync("SELECT hip FROM hipparcos.hip2", maxrec=7)
    assert answer.overflow and answer.rows == 7
    with pytest.raises(RemoteOverflow, match="'far' truncated its answer at 7 rows"):
        answer.require_complete()
    # Above the remote's hard limit: the remote cuts at its limit and says so.
    big = tap.query_async("SELECT hip FROM hipparcos.hip2", maxrec=10_000, poll=2)
    assert big.overflow and big.rows == REMOTE_MAXREC_HARD
    exact = tap.query_sync("SELECT TOP 7 hip FROM hipparcos.hip2", maxrec=7)
    assert not exact.overflow and exact.require_complete().rows == 7


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_remote_error_is_quoted_with_the_remote_name(remote_server, mode: str) -> None:  # noqa: ANN001
    tap = client(remote_server)
    run = tap.query_sync if mode == "sync" else tap.query_async
    with pytest.raises(RemoteQueryFailed) as err:
        run("SELECT no_such_column FROM hipparcos.hip2")
    assert "remote 'far'" in err.value.message
    assert "no_such_column" in err.value.message


def test_loopback_is_refused_unless_allow_listed(remote_server) -> None:  # noqa: ANN001
    with pytest.raises(RemoteUnavailable) as err:
        client(remote_server, allow=(), retry=RetryPolicy(1)).capabilities()
    assert "non-public address" in err.value.message and "'far'" in err.value.message
