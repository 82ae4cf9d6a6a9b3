"""``taphouse token create|list|revoke``: personal tokens, over HTTP as a logged-in user.

These commands talk to a server (``--url``, default ``TAPHOUSE_URL``); they never open a
data directory, so they work from any machine that reaches the server.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taphouse.client.client import Client


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``taphouse token`` to the ``taphouse`` parser."""
    token = subparsers.add_parser(
        "token", help="create, list or revoke your personal tokens (over HTTP)",
        description="Personal tokens for scripts and notebooks. Logs in to the server at "
                    "--url as --user (password asked for, or --password-stdin), or uses the "
                    "session saved by the Python client (remember=True).")
    token.add_argument("--url", default=None,
                       help="the server's base URL (default: $TAPHOUSE_URL)")
    token.add_argument("--user", "-u", default=None, help="your user name")
    token.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    sub = token.add_subparsers(dest="token_command", metavar="{create,list,revoke}")
    sub.required = True
    p = sub.add_parser("create", help="create a personal token; prints its secret once")
    p.add_argument("name", help="what the token is for, e.g. nightly-crossmatch")
    p.add_argument("--scopes", default="read",
                   help="comma-separated: read, write (default: read)")
    p.add_argument("--expires-days", default="30", metavar="DAYS",
                   help="days until it expires, or 'never' (default 30)")
    p = sub.add_parser("list", help="list your tokens")
    p = sub.add_parser("revoke", help="revoke a token by its id")
    p.add_argument("token_id", type=int, metavar="ID")
    # Talks HTTP only: the main command must not look for a data directory.
    token.set_defaults(handler=_token, store_access="none")


def _client(args: argparse.Namespace) -> Client:
    from taphouse.client.client import Client
    from taphouse.client.errors import ClientError

    url = args.url or os.environ.get("TAPHOUSE_URL")
    if not url:
        raise ClientError("no server: give --url https://... (or set TAPHOUSE_URL)")
    if args.user:
        password = None
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        elif not sys.stdin.isatty():
            raise ClientError("no terminal to ask for the password: use --password-stdin")
        client = Client(url, progress=False, interactive=True,
                        prompt=getpass.getpass)
        client.login(args.user, password)
        return client
    client = Client(url, progress=False, remember=True, interactive=False)
    if not client.logged_in:
        raise ClientError(f"not logged in at {client.url}: give --user NAME (or log in once"
                          " from Python with taphouse.connect(url, remember=True).login(NAME))")
    return client


def _token(args: argparse.Namespace) -> int:
    from taphouse.client.errors import ClientError

    try:
        client = _client(args)
        try:
            if args.token_command == "create":
                expires = None if args.expires_days.strip().lower() in {"never", "none"} \
                    else _days(args.expires_days)
                scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
                made = client.create_token(args.name, scopes, expires)
                print(made.token)
                print(f"personal token {made.id} {made.name!r}: scopes {' '.join(made.scopes)},"
                      f" expires {made.expires_at or 'never'}. Shown once: keep it, e.g. as"
                      " TAPHOUSE_TOKEN.", file=sys.stderr)
            elif args.token_command == "list":
                print(repr(client.tokens()))
            else:
                client.revoke_token(args.token_id)
                print(f"token {args.token_id} revoked", file=sys.stderr)
        finally:
            client.close()
    except ClientError as exc:
        print(f"taphouse: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise _client_error(f"--expires-days: a positive number of days or 'never', not {text!r}")
    return value


def _client_error(message: str) -> Exception:
    from taphouse.client.errors import ClientError

    return ClientError(message)
