"""The ``taphouse`` command line. Each package contributes its sub-commands through an
``add_commands(subparsers)`` function; this module only assembles them."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import tempfile
from pathlib import Path

from taphouse.errors import ServiceError
from taphouse.metadata import schema_state
from taphouse.settings import Settings, find_config_file, read_config_file

# Packages that contribute sub-commands (module path -> add_commands).
_COMMAND_MODULES = ["taphouse.catalogue.commands", "taphouse.auth.commands",
                    "taphouse.compute.commands", "taphouse.storage.commands",
                    "taphouse.hub.commands", "taphouse.client.commands",
                    "taphouse.remotes.commands", "taphouse.engine.commands", "taphouse.secrets"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taphouse",
        description="taphouse: an IVOA TAP/ADQL platform that brings analysis code to the data")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data directory (default: $TAPHOUSE_DATA_DIR, else data_dir in"
                             " taphouse.toml, else ./taphouse-data)")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="configuration file (default: $TAPHOUSE_CONFIG, else"
                             " ./taphouse.toml, else /etc/taphouse/taphouse.toml)")
    parser.add_argument("--init", action="store_true",
                        help="create a new store in the data directory if there is none"
                             " (commands other than serve refuse to, without it); may be"
                             " given anywhere on the line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--base-url", default=None,
                       help="public base URL (default http://HOST:PORT)")
    serve.add_argument("--demo", action="store_true", default=None,
                       help="load the demo databases (gaia, hipparcos) on first start")
    serve.add_argument("--workers", type=int, default=None, help="async job workers")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--spark-master", default=None, metavar="URL",
                       help="Spark master of the databases served by Spark (local[2],"
                            " spark://host:7077, yarn, k8s://...)")
    serve.add_argument("--hub", action="store_true",
                       help="also run the platform's JupyterHub (see `taphouse hub`)")
    # The server upgrades an existing store (after backing up its metadata); other
    # commands refuse one that needs upgrading (store_access "current", the default).
    serve.set_defaults(handler=_serve, store_access="upgrade", creates_store=True)

    shown = sub.add_parser(
        "settings", help="print the settings in force and where each came from",
        description="Every setting (docs/settings.md) with the value the server and the"
                    " commands would use here: flag > environment > taphouse.toml > default."
                    " Secrets are masked.")
    shown.add_argument("--json", action="store_true", help="as JSON")
    shown.set_defaults(handler=_settings, store_access="none")

    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name != name:
                raise
            continue
        module.add_commands(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from taphouse.admission.connections import raise_open_file_limit, uvicorn_options
    from taphouse.server import Platform, create_app

    settings: Settings = args.settings
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_open_file_limit()
    with_hub = getattr(args, "hub", False)
    if with_hub:
        from taphouse.hub.commands import HubUnavailable, check_machine, ensure_environments

        try:  # before the server starts: compute finds its environment at start
            check_machine(settings)
            ensure_environments(settings)
        except HubUnavailable as exc:
            print(f"taphouse serve --hub: no hub: {exc}", file=sys.stderr)
            with_hub = False
    platform = Platform(settings)
    # Temporary files of libraries (uploads spooled by the web framework ...) go to
    # this process's area in the data directory's tmp/, not /tmp.
    tempfile.tempdir = str(platform.scratch.path)
    if settings.demo:
        from taphouse.catalogue.demo import load_demo

        load_demo(platform.catalogue, progress=True)
    app = create_app(settings, platform)
    print(f"taphouse serving {settings.public_url}/tap (data in {settings.data_dir})",
          file=sys.stderr)
    hub = None
    if with_hub:
        from taphouse.hub.commands import HubProcess

        hub = HubProcess(settings)
        hub.start_when_up()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level,
                    access_log=False, **uvicorn_options(settings))
    finally:
        if hub is not None:
            hub.stop()
    return 0


def _settings(args: argparse.Namespace) -> int:
    import json

    from taphouse.settings import settings_in_force

    rows = settings_in_force(args.settings, flags={"data_dir": args.data_dir},
                             file_values=args.file_values,
                             config=args.config_path.absolute() if args.config_path else None)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    where = args.config_path.absolute() if args.config_path else "none found"
    print(f"# configuration file: {where}")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        value = r["value"]
        text = ",".join(value) if isinstance(value, list) else json.dumps(value) \
            if isinstance(value, str) else str(value).lower() if isinstance(value, bool) \
            else str(value)
        print(f"{r['name']:<{width}}  {text:<30}  # {r['source']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # --init is accepted anywhere on the line (`taphouse user add ada --init`).
    init = "--init" in argv
    argv = [a for a in argv if a != "--init"]
    args = parser.parse_args(argv)
    args.init = init
    try:
        config = find_config_file(args.config)
        file_values = read_config_file(config) if config is not None else {}
        args.config_path, args.file_values = config, file_values
        args.settings = Settings.from_env(
            file_values=file_values,
            data_dir=args.data_dir,
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            base_url=getattr(args, "base_url", None),
            demo=getattr(args, "demo", None),
            workers=getattr(args, "workers", None),
            spark_master=getattr(args, "spark_master", None),
        )
    except ValueError as exc:
        parser.exit(2, f"taphouse: error: {exc}\n")
    access = getattr(args, "store_access", "current")
    try:
        if access in {"current", "upgrade"}:
            data_dir = args.settings.data_dir.absolute()
            source = _data_dir_source(args.data_dir, config, file_values)
            exists = args.settings.meta_path.exists()
            if not exists and not (init or getattr(args, "creates_store", False)):
                print(f"taphouse: error: no taphouse store in {data_dir} (data directory"
                      f" {source}). Name the one to use with --data-dir, TAPHOUSE_DATA_DIR or"
                      " data_dir in taphouse.toml (working directory or /etc/taphouse), or"
                      " add --init to create a new store there", file=sys.stderr)
                return 2
            state = "" if exists else ", new store"
            print(f"taphouse: data directory {data_dir} ({source}{state})", file=sys.stderr)
        if access == "current":
            # A read or a change by an older or newer taphouse than the store's: refused
            # (only 'serve' and 'migrate' upgrade, after a backup).
            schema_state(args.settings.meta_path).check_current()
        return int(args.handler(args) or 0)
    except ServiceError as exc:
        print(f"taphouse: error: {exc.message}", file=sys.stderr)
        return 2


def _data_dir_source(flag: Path | None, config: Path | None,
                     file_values: dict[str, object]) -> str:
    """Where the data directory in force came from (flag > environment > file)."""
    import os

    if flag is not None:
        return "from --data-dir"
    if os.environ.get("TAPHOUSE_DATA_DIR"):
        return "from TAPHOUSE_DATA_DIR"
    if config is not None and "data_dir" in file_values:
        return f"from {config.absolute()}"
    return "the default"


if __name__ == "__main__":
    sys.exit(main())
