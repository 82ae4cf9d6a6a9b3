"""Helpers for user-space tests: accounts on a live server, HTTP clients, VOTable reading.

(A module of its own, not a conftest: several test folders have a ``conftest``.)
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from accounts import PASSWORD


def client_for(server: Any, user: str | None) -> httpx.Client:
    auth = (user, PASSWORD) if user else None
    return httpx.Client(base_url=server.url, auth=auth, timeout=60,
                        headers={"X-Taphouse": "tests"})


def sync(client: httpx.Client, query: str, prefix: str = "/tap", **params: str
         ) -> httpx.Response:
    data = {"LANG": "ADQL", "QUERY": query, **params}
    return client.post(f"{prefix}/sync", data=data)


def table_of(resp: httpx.Response) -> Any:
    """The result table (astropy Table) of a VOTable response."""
    import io

    from astropy.io.votable import parse_single_table

    return parse_single_table(io.BytesIO(resp.content)).to_table()


def infos(resp: httpx.Response) -> dict[str, str]:
    """INFO name -> value of a VOTable response."""
    import re

    return {k.decode(): v.decode() for k, v in
            re.findall(rb'<INFO name="([^"]+)"\s+value="([^"]*)"', resp.content)}


def csv_table(n: int) -> bytes:
    """A CSV table of ``n`` rows with positions (id, ra, dec, mag)."""
    lines = ["id,ra,dec,mag"] + [f"{i},{(i * 7.3) % 360:.4f},{(i % 170) - 85:.2f},{i % 20}"
                                 for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def run_job(c: httpx.Client, query: str, **params: str) -> str:
    """Run an async TAP query as ``c`` (PHASE=RUN) and wait for it to complete (asserting
    it does, within a minute); returns the job id."""
    r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN", **params},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    job_id = r.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    deadline = time.time() + 60
    while time.time() < deadline:
        phase = c.get(f"/tap/async/{job_id}/phase").text
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            assert phase == "COMPLETED", c.get(f"/tap/async/{job_id}").text
            return job_id
        time.sleep(0.1)
    raise AssertionError("job did not finish")
