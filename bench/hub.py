"""Hub latency: login through the hub's form -> a running kernel, and the first query
from a fresh kernel.

Starts a taphouse server (demo data, compute on) and ``taphouse hub`` (JupyterHub with
configurable-http-proxy) on free 127.0.0.1 ports, then for each round: a new taphouse
user logs in through the hub's login form, asks for a server, starts a kernel and waits
for its first cell; then the kernel runs ``taphouse.connect()`` and a one-row query of
the demo Gaia table (timed inside the kernel, and as the cell's round trip).

Targets (issue 21): login -> running kernel <= 15 s on a 2-core machine; first query
from a fresh kernel <= 1 s.

Run as root on a machine set up by ``scripts/test.sh`` (it builds the environments):

    .venv/bin/python bench/hub.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hub"))

from hub_helpers import (  # noqa: E402
    KERNEL_ENV,
    UserServer,
    add_user,
    api_token,
    browser,
    free_ports,
    login_form,
    require_hub_machine,
    sandbox_data_dir,
    start_hub,
)

from servers import start_live  # noqa: E402

FIRST_QUERY = """
import time, json
t0 = time.perf_counter()
import taphouse, taphouse.client
t1 = time.perf_counter()
client = taphouse.connect()
t2 = time.perf_counter()
t = client.query("SELECT TOP 1 source_id FROM gaia.dr3_bright")
t3 = time.perf_counter()
print(json.dumps([t3 - t0, t1 - t0, t2 - t1, t3 - t2]))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        require_hub_machine()
    except BaseException as exc:  # pytest.fail outside pytest
        print(exc, file=sys.stderr)
        return 1
    base = sandbox_data_dir("taphouse-hubbench-")
    port = free_ports(3)
    server = start_live(base / "data", demo=True, compute="on", compute_env=str(KERNEL_ENV),
                        hub_port=port)
    hub = start_hub(server, port, base / "hub.log")
    to_kernel, inside, cell, split = [], [], [], []
    try:
        for _ in range(args.rounds):
            name = add_user(server, "bench")
            t0 = time.monotonic()
            client = browser(hub.url)
            assert login_form(client, name).status_code == 302
            user = UserServer(hub.url, name, api_token(client, name))
            user.start()
            kernel = user.new_kernel()
            kernel.value("print(1)")
            to_kernel.append(time.monotonic() - t0)
            t1 = time.monotonic()
            total, *parts = kernel.value(FIRST_QUERY)
            inside.append(total)
            split.append(parts)
            cell.append(time.monotonic() - t1)
            kernel.close()
            user.stop()
            client.close()
    finally:
        hub.stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"hub bench, {args.rounds} rounds, load average {load:.1f} on"
          f" {os.cpu_count()} cores")
    print(f"login -> running kernel: median {statistics.median(to_kernel):.2f} s,"
          f" max {max(to_kernel):.2f} s (target <= 15 s)")
    print(f"first query from a fresh kernel (connect + TOP 1, inside the kernel): median"
          f" {statistics.median(inside):.3f} s, max {max(inside):.3f} s (target <= 1 s);"
          f" as a cell round trip: median {statistics.median(cell):.3f} s")
    imp, conn, query = (statistics.median(p) for p in zip(*split, strict=True))
    print(f"  of which (medians): waiting for the client's import {imp:.3f} s (started in"
          f" the background at kernel start), connect {conn:.3f} s, query {query:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
