"""Constants and helpers shared by the federation tests (a module with a unique name:
several test folders have helpers)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from accounts import PASSWORD

#: The outbound allow-list that lets the platform reach servers on this machine.
LOOPBACK = ("127.0.0.0/8", "::1")
#: The remote taphouse's limits: MAXREC hard limit and upload size (bytes) small enough
#: that a crossmatch of a few hundred rows takes several blocks and a wide one overflows.
FAR_MAXREC_HARD = 200
FAR_UPLOAD_BYTES = 4000

#: The crossmatch of the issue, at 1 arcsecond.
XMATCH = ("SELECT t.hip AS mine, r.hip AS theirs, r.hpmag FROM mydb.targets AS t"
          " JOIN {remote} AS r ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, {radius}))")


def sync(server: Any, user: str | None, query: str, **params: str) -> httpx.Response:
    auth = (user, PASSWORD) if user else None
    return httpx.post(server.tap + "/sync", timeout=300, auth=auth,
                      headers={"X-Taphouse": "tests"},
                      data={"LANG": "ADQL", "QUERY": query, **params})


def audit_queries(server: Any, limit: int = 200) -> list[str]:
    """The ADQL texts a server received, newest first (its audit log)."""
    entries = server.platform.authenticator.audit_log.entries(event="query", limit=limit)
    return [e["detail"] or "" for e in entries]


def infos_of(response: httpx.Response) -> dict[str, str]:
    """The INFOs of a VOTable answer (name -> value): how a federated join ran."""
    return {k.decode(): v.decode() for k, v in
            re.findall(rb'<INFO name="(\w+)" value="([^"]*)"', response.content)}
