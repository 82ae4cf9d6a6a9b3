"""``taphouse remote ...``: register, list, show, refresh and remove remote TAP services."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from taphouse.remotes.errors import RemoteError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``remote`` sub-command."""
    remote = subparsers.add_parser("remote", help="remote TAP services queried through"
                                   " this platform")
    rsub = remote.add_subparsers(dest="remote_command", metavar="ACTION")
    rsub.required = True

    p = rsub.add_parser("add", help="register a remote TAP service (its capabilities and"
                        " tables are read now)")
    p.add_argument("name", help="the name queries use: NAME.schema.table")
    p.add_argument("url", help="the service's base URL (http or https), e.g."
                   " https://example.org/tap")
    _auth_arguments(p)
    p.add_argument("--groups", default="",
                   help="comma-separated groups that may query it (default: everybody;"
                        " required with --auth basic|bearer)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds for one request to this remote")
    p.set_defaults(handler=_add)

    p = rsub.add_parser("credentials", help="replace (or drop) a remote's credentials;"
                        " they are tried on the remote first")
    p.add_argument("name")
    _auth_arguments(p)
    p.set_defaults(handler=_credentials)

    p = rsub.add_parser("list", help="registered remotes with their health")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)

    p = rsub.add_parser("show", help="one remote: capabilities and tables")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_show)

    p = rsub.add_parser("refresh", help="read the capabilities and tables again (all"
                        " remotes when no name is given)")
    p.add_argument("name", nargs="?")
    p.set_defaults(handler=_refresh)

    p = rsub.add_parser("remove", help="forget a remote and its cached metadata")
    p.add_argument("name")
    p.add_argument("--owner", default=None, metavar="USER",
                   help="remove the remote USER registered for themselves (to take its"
                        " name for the platform)")
    p.set_defaults(handler=_remove)


def _auth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--auth", choices=["none", "basic", "bearer"], default="none",
                   help="how to authenticate to the remote; the password or token is read"
                        " from standard input (a prompt on a terminal), never from the"
                        " command line; it is stored encrypted (taphouse secrets)")
    p.add_argument("--user", default=None, help="the user name for --auth basic")


def _read_credential(args: argparse.Namespace) -> Any:
    """The Authorization value for ``--auth``, its secret part read from stdin/prompt."""
    from taphouse.remotes.credentials import authorization

    if args.auth == "none":
        return authorization("none", username=args.user)
    what = "password" if args.auth == "basic" else "token"
    if sys.stdin.isatty():
        import getpass

        secret = getpass.getpass(f"{what} for remote {args.name}: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if args.auth == "basic":
        return authorization("basic", username=args.user, password=secret)
    if args.user:
        raise RemoteError("--user is for --auth basic")
    return authorization("bearer", token=secret)


def _registry(args: argparse.Namespace) -> Any:
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB
    from taphouse.remotes.registry import RemoteConfig, RemoteRegistry
    from taphouse.secrets import SecretStore

    settings = args.settings
    meta = MetadataDB(settings.meta_path, upgrade=False)
    catalogue = CatalogueStore(meta, settings.tables_dir)
    return meta, RemoteRegistry(meta, RemoteConfig.from_settings(settings),
                                local_database=lambda n: catalogue.database(n) is not None,
                                secrets=SecretStore.from_settings(meta, settings))


def _run(args: argparse.Namespace, body: Any) -> int:
    meta, registry = _registry(args)
    try:
        return int(body(registry) or 0)
    except RemoteError as exc:
        print(f"taphouse: error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        meta.close()


def _add(args: argparse.Namespace) -> int:
    def body(registry: Any) -> None:
        groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
        remote = registry.add(args.name, args.url, auth=args.auth, by="cli", groups=groups,
                              timeout=args.timeout, credential=_read_credential(args))
        print(f"remote {remote.name} registered: {remote.table_count} tables (from"
              f" {remote.metadata_source}); query them as {remote.name}.<schema>.<table>")

    return _run(args, body)


def _credentials(args: argparse.Namespace) -> int:
    def body(registry: Any) -> None:
        remote = registry.set_credentials(args.name, args.auth, _read_credential(args))
        print(f"remote {remote.name}: credentials replaced (auth {remote.auth});"
              f" {remote.table_count} tables")

    return _run(args, body)


def _list(args: argparse.Namespace) -> int:
    def body(registry: Any) -> None:
        remotes = registry.remotes()
        if args.json:
            print(json.dumps([r.to_json(admin=True) for r in remotes], indent=2))
            return
        if not remotes:
            print("no remotes registered (taphouse remote add NAME URL)")
        for r in remotes:
            health = r.state + (f": {r.last_error}" if r.last_error else "")
            groups = f" groups={','.join(r.groups)}" if r.groups else ""
            print(f"{r.name:20} {r.url}  {r.table_count} tables, checked {r.checked_at},"
                  f" {health}{groups}")

    return _run(args, body)


def _show(args: argparse.Namespace) -> int:
    def body(registry: Any) -> None:
        remote = registry.require(args.name)
        tables = registry.tables(remote)
        if args.json:
            out = remote.to_json(admin=True) | {"tables": [
                {"name": t.adql_name(remote.name), "description": t.description,
                 "columns": [c.to_dict() for c in t.columns]} for t in tables]}
            print(json.dumps(out, indent=2))
            return
        caps = remote.capabilities
        print(f"{remote.name}: {remote.url} ({remote.state})")
        print(f"  languages: {', '.join(caps.languages) or '-'}")
        print(f"  MAXREC default {caps.maxrec_default}, hard limit {caps.maxrec_hard}")
        print(f"  uploads: {', '.join(m.rsplit('#', 1)[-1] for m in caps.upload_methods) or 'no'}")
        for t in tables:
            print(f"  {t.adql_name(remote.name)} ({len(t.columns)} columns)")

    return _run(args, body)


def _refresh(args: argparse.Namespace) -> int:
    def body(registry: Any) -> int:
        names = [args.name] if args.name else [r.name for r in registry.remotes()]
        failed = 0
        for name in names:
            try:
                remote = registry.refresh(name)
                print(f"remote {name}: {remote.table_count} tables")
            except RemoteError as exc:
                if args.name:
                    raise
                failed += 1
                print(f"taphouse: error: {exc.message}", file=sys.stderr)
        return 1 if failed else 0

    return _run(args, body)


def _remove(args: argparse.Namespace) -> int:
    def body(registry: Any) -> None:
        if args.owner is None:
            registry.remove(args.name)
            print(f"remote {args.name} removed")
            return
        from taphouse.auth.authenticator import Authenticator

        user = Authenticator(registry.meta, args.settings).accounts.user(args.owner)
        if user is None:
            raise RemoteError(f"no user named {args.owner[:60]!r}")
        registry.remove(args.name, user.id)
        print(f"remote {args.name} of user {user.name} removed")

    return _run(args, body)
