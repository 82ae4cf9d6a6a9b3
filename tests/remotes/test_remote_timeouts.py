"""Per-remote timeouts: a remote registered with its own ``timeout`` (``taphouse remote
add --timeout S``, ``"timeout"`` in /api/admin/remotes) is given that many seconds a
request; other remotes keep the platform's ``remote_timeout``."""

from __future__ import annotations

import time

import pytest
from fake_tap import VOT, FakeTap, slow, votable

from taphouse.adql.translator import parse
from taphouse.auth.identity import Identity
from taphouse.remotes import RemoteUnavailable
from taphouse.remotes.pushdown import plan_remote, run_remote

QUERY = "SELECT TOP 2 id FROM {}.cat.stars"


def test_a_remote_s_own_timeout_applies_to_it_alone(registry, fake_tap: FakeTap) -> None:  # noqa: ANN001
    registry.add("hasty", fake_tap.url, timeout=1)
    registry.add("patient", fake_tap.url)  # the registry's default: 10 s
    assert registry.require("hasty").timeout == 1.0
    fake_tap.routes["/tap/sync"] = slow(2.5, (200, VOT, votable([(1, 0.5)])))
    start = time.monotonic()
    with pytest.raises(RemoteUnavailable) as err:
        run_remote(plan_remote(parse(QUERY.format("hasty")), Identity(), registry), registry)
    assert time.monotonic() - start < 2.4
    assert "remote 'hasty'" in err.value.message and "timed out" in err.value.message
    answer = run_remote(plan_remote(parse(QUERY.format("patient")), Identity(), registry),
                        registry)
    assert answer.rows == 1
