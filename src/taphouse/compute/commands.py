"""``taphouse compute setup`` (the job Python environment) and ``taphouse jobs`` (list,
show and abort your jobs of every kind, through the API)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taphouse.client import Client

#: What a job environment holds (the taphouse client itself is bound in by the server,
#: always the server's own version).
JOB_PACKAGES = ("numpy", "astropy", "pandas", "pyarrow", "pyvo", "requests", "tqdm")


def add_commands(sub: argparse._SubParsersAction) -> None:
    compute = sub.add_parser("compute", help="sandboxed compute jobs")
    csub = compute.add_subparsers(dest="compute_command", metavar="ACTION")
    csub.required = True
    setup = csub.add_parser(
        "setup", help="build the Python environment compute jobs run in",
        description="Build a virtual environment with numpy, astropy, pandas, pyarrow"
                    " and pyvo for compute jobs (default: <data dir>/compute/env).")
    setup.add_argument("--env", type=Path, default=None,
                       help="where to build it (default: $TAPHOUSE_COMPUTE_ENV or"
                            " <data dir>/compute/env)")
    setup.add_argument("--python", default=None,
                       help="base interpreter (default: this one's, if sandboxed users can"
                            " reach it, else /usr/bin/python3)")
    setup.add_argument("--packages", nargs="*", default=[],
                       help="more packages to install")
    setup.set_defaults(handler=_setup, store_access="none")

    jobs = sub.add_parser("jobs", help="your jobs (TAP queries and compute) on a server")
    jobs.add_argument("--url", default=None, help="server URL (default: $TAPHOUSE_URL)")
    jobs.set_defaults(store_access="none")  # over HTTP: no data directory
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jsub.required = True
    lst = jsub.add_parser("list", help="list your jobs")
    lst.add_argument("--kind", choices=["tap", "compute"], default=None)
    lst.add_argument("--phase", action="append", default=[])
    lst.set_defaults(handler=_jobs_list)
    show = jsub.add_parser("show", help="one job in full (compute: with stdout tail)")
    show.add_argument("job_id")
    show.set_defaults(handler=_jobs_show)
    abort = jsub.add_parser("abort", help="abort a job")
    abort.add_argument("job_id")
    abort.set_defaults(handler=_jobs_abort)


def _setup(args: argparse.Namespace) -> int:
    settings = args.settings
    env = args.env or (Path(settings.compute_env) if settings.compute_env
                       else settings.data_dir / "compute" / "env")
    env = Path(os.path.abspath(env))
    python = args.python or _default_python()
    if not (env / "bin" / "python").exists():
        print(f"creating the job environment {env} with {python}", file=sys.stderr)
        env.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([python, "-m", "venv", str(env)], check=True)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    subprocess.run([*pip, *JOB_PACKAGES, *args.packages], check=True)
    check = subprocess.run(
        [str(env / "bin" / "python"), "-c",
         "import numpy, astropy, pandas, pyarrow, pyvo, requests; print(numpy.__version__)"],
        capture_output=True, text=True)
    if check.returncode != 0:
        print(f"the environment {env} does not work:\n{check.stderr}", file=sys.stderr)
        return 1
    os.chmod(env, 0o755)
    print(f"job environment ready: {env}")
    if env != (settings.data_dir / "compute" / "env").absolute() and not settings.compute_env:
        print(f"start the server with TAPHOUSE_COMPUTE_ENV={env} to use it")
    return 0


def _default_python() -> str:
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    if all(os.stat(p).st_mode & 0o001 for p in base.parents):
        return str(base)
    return "/usr/bin/python3"


def _client(args: argparse.Namespace) -> Client:
    from taphouse.client import connect

    url = args.url or os.environ.get("TAPHOUSE_URL") or args.settings.public_url
    return connect(url, remember=True, progress=False)


def _client_errors(handler: Callable[[argparse.Namespace], int]
                   ) -> Callable[[argparse.Namespace], int]:
    """Errors of the server or the connection as one line, not a traceback."""
    def run(args: argparse.Namespace) -> int:
        from taphouse.client.errors import ClientError

        try:
            return handler(args)
        except ClientError as exc:
            print(f"taphouse: error: {exc}", file=sys.stderr)
            return 1

    return run


@_client_errors
def _jobs_list(args: argparse.Namespace) -> int:
    client = _client(args)
    rows = client.list_jobs(kind=args.kind, phases=args.phase)
    for j in rows:
        what = j.get("query") or ""
        print(f"{j['id']}  {j['kind']:<8} {j['phase']:<10} {j['created']}  {what[:60]}")
    return 0


@_client_errors
def _jobs_show(args: argparse.Namespace) -> int:
    client = _client(args)
    info = client.job_info(args.job_id)
    print(json.dumps(info, indent=2))
    if info.get("kind") == "compute":
        tail = client.compute_job(args.job_id).stdout[-2000:]
        if tail:
            print("--- stdout (end) ---")
            print(tail)
    return 0


@_client_errors
def _jobs_abort(args: argparse.Namespace) -> int:
    client = _client(args)
    info = client.abort_job(args.job_id)
    print(f"{info['id']}: {info['phase']}")
    return 0
