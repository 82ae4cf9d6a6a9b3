"""One settings object for the whole server, read once at start-up and passed down.

Every field can be set in the configuration file ``taphouse.toml`` (``field = value``),
from an environment variable ``TAPHOUSE_<FIELD>`` (upper case) and, for the common ones,
from a command-line flag; a flag wins over the environment, the environment over the
file. docs/settings.md describes every field.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints


@dataclass(frozen=True)
class Settings:
    """Server configuration.

    Attributes are documented inline; each has a ``TAPHOUSE_<NAME>`` variable.
    """

    # --- storage -----------------------------------------------------------------
    data_dir: Path = Path("taphouse-data")
    # Seconds a replaced or dropped table version stays on disk after the switch:
    # queries that resolved the table just before it may still start on it.
    maintenance_grace: float = 600.0
    # Seconds between maintenance rounds (detaching and deleting retired versions).
    maintenance_interval: float = 60.0
    # Seconds replaced versions of catalogue tables are kept (for rollback).
    version_retention: float = 7 * 24 * 3600.0
    # The same for user tables; they count against their owner's quota while kept.
    user_version_retention: float = 0.0
    # --- HTTP --------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    # Public base URL used in capabilities, job locations and result links; never
    # taken from the request's Host header. Empty: http://{host}:{port}.
    base_url: str = ""
    # CSP frame-ancestors: who may show this service's pages in a frame ('none': nobody;
    # e.g. "'self' https://portal.example.org").
    frame_ancestors: str = "'none'"
    # --- engine ------------------------------------------------------------------
    engine_threads: int = 2
    engine_memory_limit: str = "4GB"
    engine_temp_limit: str = "10GB"
    # PostgreSQL-served databases (taphouse db add-postgres): connections per database,
    # most rows of an upload or user table copied there to join its tables.
    postgres_pool_size: int = 8
    postgres_temp_max_rows: int = 1_000_000
    # --- queries and jobs --------------------------------------------------------
    maxrec_default: int = 100_000
    maxrec_limit: int = 10_000_000
    sync_timeout: float = 600.0  # seconds
    query_max_chars: int = 100_000  # longer ADQL costs seconds just to parse
    exec_duration_default: float = 3600.0  # seconds, async
    exec_duration_limit: float = 4 * 3600.0
    job_retention: float = 7 * 24 * 3600.0  # seconds until destruction
    workers: int = 4
    max_jobs_per_user: int = 2  # running at once; kept below ``workers`` (see jobs/)
    # --- uploads -----------------------------------------------------------------
    upload_max_bytes: int = 200 * 1024 * 1024
    upload_max_rows: int = 2_000_000
    # URL uploads (TAP 1.1 upload-http): on, from public addresses only (taphouse.outbound)
    upload_urls: bool = True
    upload_url_hosts: tuple[str, ...] = ()  # if set: the only hosts URL uploads may name
    # --- outbound requests (URL uploads; remote services) ----------------------------
    # Networks or host names allowed although not public (e.g. 10.1.0.0/16,archive.lan).
    outbound_allow: tuple[str, ...] = ()
    outbound_timeout: float = 30.0  # seconds for one fetch, redirects included
    # --- remote TAP services (taphouse.remotes) ------------------------------------------
    remote_timeout: float = 60.0  # seconds for one request to a remote (default per remote)
    remote_query_timeout: float = 600.0  # seconds one async query on a remote may take
    remote_max_bytes: int = 200 * 1024 * 1024  # one result document from a remote
    remote_refresh_interval: float = 24 * 3600.0  # seconds between metadata refreshes
    remote_retries: int = 3  # attempts of a request whose connection failed
    remote_user_registration: bool = False  # users may register remotes for themselves
    remote_user_max: int = 10  # most remotes one user may register for themselves
    # --- stored credentials (taphouse.secrets) -------------------------------------
    # Keys that encrypt stored credentials (Fernet keys, comma-separated: the first
    # seals, all open). Empty: the key file <data_dir>/secret-keys (made on first use).
    secret_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)  # not in reprs
    # --- federated joins: local tables with a remote's (taphouse.federation) ------------
    federation_pull_max_rows: int = 100_000  # most remote rows fetched whole for a join
    federation_upload_max_rows: int = 1_000_000  # most local rows shipped for a join
    federation_block_rows: int = 50_000  # most rows per upload block (fewer if the remote says)
    federation_max_requests: int = 1000  # most requests to the remote for one join
    # REMOTE:DATABASE pairs: the remote may receive rows of that restricted database
    # (or of user tables derived from it); e.g. gaiamirror:gaia_internal
    federation_trusted: tuple[str, ...] = ()
    # --- Spark backend (taphouse.engine.spark) --------------------------------------
    # Master URL of the Spark cluster serving the databases whose backend is "spark"
    # (local[2], spark://host:7077, yarn, k8s://...); empty: no Spark backend.
    spark_master: str = ""
    spark_max_temp_rows: int = 1_000_000  # most rows of an upload shipped to Spark
    # --- accounts ----------------------------------------------------------------
    anonymous_read: bool = True
    token_lifetime: float = 24 * 3600.0  # seconds
    password_min_length: int = 10
    basic_cache_seconds: float = 300.0
    # --- user space --------------------------------------------------------------
    quota_rows: int = 50_000_000
    quota_bytes: int = 5 * 1024**3
    # --- admission: who may use how much (taphouse.admission) ---------------------
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # networks, e.g. 10.0.0.5,10.1.0.0/16). Empty: none, so the address is the peer's and
    # credentials over plain HTTP are accepted from loopback only.
    trusted_proxies: tuple[str, ...] = ()
    sync_max_concurrent: int = 24  # sync queries, downloads and uploads at once, in all
    sync_max_per_caller: int = 4  # ... per account (per address when anonymous)
    anonymous_sync_share: float = 0.125  # of sync_max_concurrent, all anonymous together
    metadata_max_concurrent: int = 8  # TAP_SCHEMA queries at once (their own threads)
    anonymous_job_share: float = 0.25  # of the job workers, all anonymous jobs together
    retry_after: int = 5  # seconds, in a 503 when a cap is full
    login_queue: int = 256  # password checks waiting for their turn (on the event loop)
    login_queue_per_address: int = 4  # ... of them from one client address (IPv6 /64)
    login_queue_per_site: int = 64  # ... from one IPv6 /48 or IPv4 /24
    login_queue_per_provider: int = 128  # ... from one IPv6 /32 or IPv4 /16
    login_wait: float = 30.0  # seconds a password check may wait for its turn
    result_max_bytes: int = 2 * 1024**3  # one result document (sync or async)
    upload_max_bytes_per_caller: int = 400 * 1024**2  # upload bytes in flight per caller
    job_files_max_bytes: int = 10 * 1024**3  # files of the jobs one user keeps
    job_files_max_bytes_anonymous: int = 256 * 1024**2  # ... one anonymous address keeps
    jobs_max_kept: int = 1000  # jobs one user keeps (until deleted or destroyed)
    jobs_max_kept_anonymous: int = 100  # ... one anonymous address keeps
    engine_max_attached: int = 64  # table version files attached when idle
    engine_idle_detach: float = 60.0  # seconds an unused version stays attached
    header_timeout: float = 10.0  # seconds to send a request's headers
    body_timeout: float = 30.0  # seconds a request body may pause
    send_timeout: float = 60.0  # seconds a client may read nothing of its response
    connections_per_address: int = 32  # open connections per client address
    max_connections: int = 1000  # open connections in all (each is an open file)
    # --- observability (taphouse.observability) -----------------------------------
    # Addresses or networks that may read /metrics without credentials (Prometheus);
    # everyone else needs an administrator's bearer token.
    metrics_allow: tuple[str, ...] = ()
    # --- compute (sandboxed user code; see taphouse.compute) ------------------------
    # auto: on when a job environment exists and a sandbox works; on: the server does
    # not start without a working sandbox; off: never.
    compute: str = "auto"
    compute_env: str = ""  # job Python environment; empty: <data_dir>/compute/env
    compute_workers: int = 2
    compute_max_jobs_per_user: int = 1
    compute_uid_base: int = 2_000_000  # user n runs as uid base+n; base is their group
    compute_timeout_default: float = 600.0  # seconds
    compute_timeout_limit: float = 4 * 3600.0
    compute_memory_default: int = 2 * 1024**3  # bytes, all a job's processes together
    compute_memory_limit: int = 8 * 1024**3
    compute_home_quota: int = 5 * 1024**3  # bytes, per user
    compute_tmp_size: int = 256 * 1024**2  # bytes, each of /tmp and /dev/shm
    compute_processes: int = 64  # per user (RLIMIT_NPROC counts per uid)
    compute_open_files: int = 256
    compute_file_size: int = 1024**3
    # Memory cgroups for jobs: auto (a delegated cgroup v2 subtree, else a writable v1
    # memory hierarchy, else RLIMIT_DATA + watchdog), off, or a cgroup directory path.
    compute_memory_cgroup: str = "auto"
    # --- JupyterHub (taphouse hub; see taphouse.hub) ---------------------------------
    hub_host: str = "127.0.0.1"  # where the hub's proxy listens (put TLS in front)
    hub_port: int = 8001
    hub_base_url: str = ""  # the hub's public URL; empty: http://{hub_host}:{hub_port}
    hub_env: str = ""  # Python environment of users' Jupyter servers; empty: <data_dir>/hub/env
    hub_allowed_groups: tuple[str, ...] = ()  # if set: only members of these groups
    hub_notebook_token_lifetime: float = 7 * 24 * 3600.0  # seconds; revoked at server stop
    hub_proxy: str = "configurable-http-proxy"  # the proxy's command
    # seconds: a disabled or deleted account is logged out and its server stopped within
    hub_check_interval: int = 60
    # --- demo --------------------------------------------------------------------
    demo: bool = False

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def hub_url(self) -> str:
        """The hub's public base URL."""
        return (self.hub_base_url or f"http://{self.hub_host}:{self.hub_port}").rstrip("/")

    @property
    def meta_path(self) -> Path:
        return self.data_dir / "meta.sqlite"

    @property
    def tables_dir(self) -> Path:
        """Directory that holds every table version file (the engine may read only here)."""
        return self.data_dir / "tables"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def tmp_dir(self) -> Path:
        """Temporary files (one private area per process; see taphouse.storage.datadir)."""
        return self.data_dir / "tmp"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 file_values: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``file_values`` (a configuration file, see
        :func:`read_config_file`), then ``TAPHOUSE_*`` variables, then explicit overrides.

        Overrides whose value is ``None`` are ignored, so unset command-line flags
        fall through to the environment, the file and the defaults.
        """
        environ = os.environ if environ is None else environ
        for name, advice in _RETIRED.items():
            if f"TAPHOUSE_{name.upper()}" in environ:
                raise ValueError(f"TAPHOUSE_{name.upper()} is retired: {advice}")
        hints = get_type_hints(cls)
        values: dict[str, Any] = dict(file_values or {})
        for f in fields(cls):
            raw = environ.get(f"TAPHOUSE_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _convert(f.name, hints[f.name], raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values)


#: Where ``taphouse.toml`` is looked for when neither ``--config`` nor
#: ``TAPHOUSE_CONFIG`` names one: the working directory, then /etc/taphouse.
CONFIG_SEARCH = (Path("taphouse.toml"), Path("/etc/taphouse/taphouse.toml"))


def find_config_file(explicit: str | os.PathLike | None = None,
                     environ: Mapping[str, str] | None = None) -> Path | None:
    """The configuration file in force: ``explicit`` (``--config``), else
    ``TAPHOUSE_CONFIG``, else the first of :data:`CONFIG_SEARCH` that exists, else None.
    A file named explicitly must exist (ValueError)."""
    environ = os.environ if environ is None else environ
    named = explicit if explicit is not None else (environ.get("TAPHOUSE_CONFIG") or None)
    if named is not None:
        path = Path(named)
        if not path.is_file():
            where = "--config" if explicit is not None else "TAPHOUSE_CONFIG"
            raise ValueError(f"{where}: no configuration file {str(path)!r}")
        return path
    return next((p for p in CONFIG_SEARCH if p.is_file()), None)


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings of a ``taphouse.toml``: ``name = value`` pairs named like the
    :class:`Settings` fields (TOML types, or text as in the environment; lists for the
    comma-separated ones). A relative ``data_dir`` is relative to the file's directory.
    Unknown names and wrong types are a ValueError naming the file and the key."""
    import tomllib

    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    hints = get_type_hints(Settings)
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{path}: unknown setting {key!r}{hint}; see docs/settings.md")
        values[key] = _from_toml(path, key, hints[key], value)
    if "data_dir" in values and not Path(values["data_dir"]).is_absolute():
        values["data_dir"] = (path.parent / values["data_dir"]).absolute()
    return values


def _from_toml(path: Path, key: str, hint: Any, value: Any) -> Any:
    text = str(hint)
    if isinstance(value, str):
        try:
            return _convert(key, hint, value)
        except ValueError:
            raise ValueError(f"{path}: {key} = {value!r} is not a valid {text}") from None
    if "tuple" in text and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    ok = ((hint is bool or text == "bool") and isinstance(value, bool)) or \
        (hint is int and isinstance(value, int) and not isinstance(value, bool)) or \
        (hint is float and isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok:
        raise ValueError(f"{path}: {key} = {value!r} is not a valid {text}")
    return float(value) if hint is float else value


_SECRET_NAME = re.compile(r"(secret|password|passwd|credential|private_key|api_key)"
                          r"|(_token|_key)$")
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def is_secret(name: str) -> bool:
    """Whether a setting's value is a secret (never printed)."""
    return bool(_SECRET_NAME.search(name))


def settings_in_force(settings: Settings, *, flags: Mapping[str, Any] | None = None,
                      environ: Mapping[str, str] | None = None,
                      file_values: Mapping[str, Any] | None = None,
                      config: Path | None = None) -> list[dict[str, Any]]:
    """Each setting with its value and where the value came from (``flag``,
    ``environment``, the configuration file's path, ``default``); secrets and the
    credentials in URLs are masked."""
    environ = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    out = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name in flags:
            source = "flag"
        elif f"TAPHOUSE_{f.name.upper()}" in environ:
            source = f"environment (TAPHOUSE_{f.name.upper()})"
        elif file_values is not None and f.name in file_values:
            source = str(config) if config is not None else "file"
        else:
            source = "default"
        shown: Any = list(value) if isinstance(value, tuple) else \
            str(value) if isinstance(value, Path) else value
        if is_secret(f.name) and value not in ("", None, ()):
            shown = "********"
        elif isinstance(shown, str):
            shown = _URL_USERINFO.sub("****@", shown)
        out.append({"name": f.name, "value": shown, "source": source})
    return out


# Settings that no longer exist, with what replaces them (start-up fails rather than
# silently changing what the operator asked for).
_RETIRED = {
    "behind_tls_proxy": "set TAPHOUSE_TRUSTED_PROXIES to the proxy's address; credentials"
                        " over plain HTTP are then accepted when it sends"
                        " X-Forwarded-Proto: https",
}


def _convert(name: str, hint: Any, raw: str) -> Any:
    text = str(hint)
    try:
        if hint is bool or text == "bool":
            if raw.strip().lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.strip().lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is Path:
            return Path(raw)
        if "tuple" in text:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return raw
    except ValueError:
        raise ValueError(f"TAPHOUSE_{name.upper()}={raw!r} is not a valid {text}") from None


__all__ = ["Settings", "find_config_file", "read_config_file", "CONFIG_SEARCH",
           "settings_in_force", "is_secret"]
