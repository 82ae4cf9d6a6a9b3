"""Command-line operations on accounts, groups, database access and the audit log:
``taphouse user ...``, ``taphouse group ...``, ``taphouse db ...``, ``taphouse audit``.

Passwords are read from an interactive prompt, or from standard input with
``--password-stdin``; never from the command line, where other users and the shell
history would see them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from taphouse.auth.audit import EVENTS
from taphouse.auth.errors import AuthError

if TYPE_CHECKING:
    from taphouse.settings import Settings


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``user``, ``group``, ``db`` and ``audit`` sub-commands."""
    user = subparsers.add_parser("user", help="manage accounts")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION")
    usub.required = True

    p = usub.add_parser("add", help="create an account (password prompted, or --password-stdin)")
    p.add_argument("name")
    _password_stdin(p)
    p.add_argument("--admin", action="store_true", help="operator account")
    p.add_argument("--groups", default="", help="comma-separated existing groups")
    p.set_defaults(handler=_user_add)

    p = usub.add_parser("passwd", help="set a password (revokes every token of the user)")
    p.add_argument("name")
    _password_stdin(p)
    p.set_defaults(handler=_user_passwd)

    p = usub.add_parser("delete", help="delete an account and everything it owns: schema,"
                        " jobs, workspaces, shares made to it (a later account of the same"
                        " name starts empty)")
    p.add_argument("name")
    p.add_argument("--archive", action="store_true",
                   help="keep the schema (and its job results) as archived_<name>_<id>,"
                        " readable by administrators only, instead of dropping it")
    p.set_defaults(handler=_user_delete)

    for action, helptext in [("disable", "disable an account (revokes its tokens)"),
                             ("enable", "enable a disabled account"),
                             ("revoke-tokens", "revoke every token of an account")]:
        p = usub.add_parser(action, help=helptext)
        p.add_argument("name")
        p.set_defaults(handler=_user_action, action=action)

    p = usub.add_parser("admin", help="grant or remove operator rights")
    p.add_argument("name")
    p.add_argument("state", choices=["on", "off"])
    p.set_defaults(handler=_user_admin)

    p = usub.add_parser("list", help="list accounts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_user_list)

    group = subparsers.add_parser("group", help="manage groups")
    gsub = group.add_subparsers(dest="group_command", metavar="ACTION")
    gsub.required = True
    p = gsub.add_parser("add", help="create a group")
    p.add_argument("name")
    p.add_argument("--description", default="")
    p.set_defaults(handler=_group_add)
    p = gsub.add_parser("list", help="list groups and members")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_group_list)
    p = gsub.add_parser("delete", help="delete a group")
    p.add_argument("name")
    p.set_defaults(handler=_group_delete)
    for action in ("add-member", "remove-member"):
        p = gsub.add_parser(action, help=f"{action.split('-')[0]} a member")
        p.add_argument("group")
        p.add_argument("user")
        p.set_defaults(handler=_group_member, action=action)

    db = subparsers.add_parser("db", help="who may read a catalogue database")
    dsub = db.add_subparsers(dest="db_command", metavar="ACTION")
    dsub.required = True
    p = dsub.add_parser("restrict", help="make a database readable only by some groups")
    p.add_argument("database")
    p.add_argument("--groups", required=True, help="comma-separated groups")
    p.set_defaults(handler=_db_restrict)
    p = dsub.add_parser("public", help="make a database readable by everybody")
    p.add_argument("database")
    p.set_defaults(handler=_db_public)
    p = dsub.add_parser("access", help="list databases with their access")
    p.set_defaults(handler=_db_access)

    p = subparsers.add_parser("audit", help="show the audit log (queries, logins, changes)")
    p.add_argument("--user", default=None)
    p.add_argument("--event", default=None,
                   help="only these records: " + ", ".join(EVENTS))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_audit)


def _password_stdin(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    first = getpass.getpass(f"password for {args.name}: ")
    second = getpass.getpass("again: ")
    if first != second:
        raise AuthError("the two passwords differ; nothing changed")
    return first


class _Services:
    def __init__(self, settings: Settings) -> None:
        from taphouse.auth.authenticator import Authenticator
        from taphouse.catalogue.store import CatalogueStore
        from taphouse.metadata import MetadataDB

        self.meta = MetadataDB(settings.meta_path)
        self.auth = Authenticator(self.meta, settings)
        self.catalogue = CatalogueStore(self.meta, settings.tables_dir)

    def __enter__(self) -> _Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.meta.close()


def _shell_user() -> str:
    """Who ran a command (the audit names the operator's account as ``cli:<login>``)."""
    import getpass

    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        with _Services(args.settings) as s:
            body(s)
    except AuthError as exc:
        print(f"taphouse: error: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _user_add(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        password = _read_password(args)
        groups = [g for g in args.groups.split(",") if g.strip()]
        user = s.auth.accounts.add_user(args.name, password, is_admin=args.admin, groups=groups)
        s.auth.audit_log.record("admin", username=user.name, user_id=user.id,
                                detail="created on the command line")
        print(f"user {user.name} created (id {user.id}"
              f"{', administrator' if user.is_admin else ''})")
    return _run(args, body)


def _user_passwd(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        s.auth.accounts.require(args.name)
        user = s.auth.set_password(args.name, _read_password(args), by="the command line")
        print(f"password of {user.name} set; all of its tokens revoked")
    return _run(args, body)


def _user_action(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        by = "the command line"
        if args.action == "disable":
            s.auth.set_disabled(args.name, True, by=by)
            print(f"user {args.name.lower()} disabled; its tokens revoked")
        elif args.action == "enable":
            s.auth.set_disabled(args.name, False, by=by)
            print(f"user {args.name.lower()} enabled")
        else:
            count = s.auth.revoke_all(args.name, by=by)
            print(f"{count} token(s) of {args.name.lower()} revoked")
    return _run(args, body)


def _user_delete(args: argparse.Namespace) -> int:
    from taphouse.server import Platform

    platform = Platform(args.settings)
    try:
        done = platform.delete_account(args.name, args.archive, by="the command line")
    except AuthError as exc:
        print(f"taphouse: error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        platform.meta.close()
    kept = (f"; its schema is archived as {done['archived']} (administrators only)"
            if done["archived"] else "; its schema was dropped")
    print(f"user {done['deleted']} deleted with {done['jobs']} job(s) and"
          f" {done['workspaces']} workspace(s){kept}")
    return 0


def _user_admin(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        user = s.auth.accounts.set_admin(args.name, args.state == "on")
        print(f"user {user.name}: administrator {'yes' if user.is_admin else 'no'}")
    return _run(args, body)


def _user_list(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        users = [u.to_json() for u in s.auth.accounts.users()]
        if args.json:
            print(json.dumps(users, indent=1))
            return
        print(f"{'id':>5}  {'name':<20} {'admin':<5} {'state':<8} groups")
        for u in users:
            print(f"{u['id']:>5}  {u['username']:<20} {'yes' if u['is_admin'] else '':<5} "
                  f"{'disabled' if u['disabled'] else 'active':<8} {','.join(u['groups'])}")
    return _run(args, body)


def _group_add(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        g = s.auth.accounts.add_group(args.name, args.description)
        s.auth.audit_log.record("group", username=_shell_user(),
                                detail=f"group {g.name} created on the command line")
        print(f"group {g.name} created")
    return _run(args, body)


def _group_list(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        groups = [g.to_json() for g in s.auth.accounts.groups()]
        if args.json:
            print(json.dumps(groups, indent=1))
            return
        for g in groups:
            print(f"{g['name']:<20} {', '.join(g['members']) or '(no members)'}"
                  f"{'  - ' + g['description'] if g['description'] else ''}")
    return _run(args, body)


def _group_delete(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        s.auth.accounts.delete_group(args.name)
        s.auth.audit_log.record("group", username=_shell_user(),
                                detail=f"group {args.name.lower()} deleted on the command line")
        print(f"group {args.name.lower()} deleted")
    return _run(args, body)


def _group_member(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        if args.action == "add-member":
            g = s.auth.accounts.add_member(args.group, args.user)
            what = f"{args.user.lower()} added to group {g.name}"
        else:
            g = s.auth.accounts.remove_member(args.group, args.user)
            what = f"{args.user.lower()} removed from group {g.name}"
        s.auth.audit_log.record("group", username=_shell_user(),
                                detail=f"{what} on the command line")
        print(f"group {g.name}: {', '.join(g.members) or '(no members)'}")
    return _run(args, body)


def _db_restrict(args: argparse.Namespace) -> int:
    from taphouse.auth.database_access import DatabaseAccess

    def body(s: _Services) -> None:
        groups = [g for g in args.groups.split(",") if g.strip()]
        info = DatabaseAccess(s.meta, s.catalogue).restrict(args.database, groups)
        s.auth.audit_log.record("admin", detail=f"database {info['database']} restricted to"
                                f" {info['groups']} on the command line")
        print(f"database {info['database']}: readable by groups {', '.join(info['groups'])}"
              " (and administrators)")
    return _run(args, body)


def _db_public(args: argparse.Namespace) -> int:
    from taphouse.auth.database_access import DatabaseAccess

    def body(s: _Services) -> None:
        info = DatabaseAccess(s.meta, s.catalogue).make_public(args.database)
        s.auth.audit_log.record("admin", detail=f"database {info['database']} made public"
                                " on the command line")
        print(f"database {info['database']}: public")
    return _run(args, body)


def _db_access(args: argparse.Namespace) -> int:
    from taphouse.auth.database_access import DatabaseAccess

    def body(s: _Services) -> None:
        for info in DatabaseAccess(s.meta, s.catalogue).all():
            who = "public" if info["public"] else "groups: " + (", ".join(info["groups"])
                                                                or "(administrators only)")
            print(f"{info['database']:<24} {who}")
    return _run(args, body)


def _audit(args: argparse.Namespace) -> int:
    def body(s: _Services) -> None:
        entries = s.auth.audit_log.entries(username=args.user, event=args.event,
                                           limit=args.limit)
        if args.json:
            print(json.dumps(entries, indent=1))
            return
        for e in reversed(entries):
            extra = ""
            if e["event"] == "query":
                extra = f" rows={e['rows']} {e['duration']:.3f}s"
            detail = " ".join((e["detail"] or "").split())
            print(f"{e['time']} {e['event']:<12} {e['username'] or '-':<16}"
                  f" {e['outcome']}{extra} {detail[:200]}")
    return _run(args, body)
