"""One settings object for the whole server, read once at start-up and passed down.

Every field can be set from an environment variable ``TAPHOUSE_<FIELD>`` (upper case)
and, for the common ones, from a command-line flag of ``taphouse serve``.
"""

from __future__ import annotations

import dataclasses
import os
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
    # --- HTTP --------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    # Public base URL used in capabilities, job locations and result links; never
    # taken from the request's Host header. Empty: http://{host}:{port}.
    base_url: str = ""
    # A TLS-terminating proxy sits in front: credentials over plain HTTP are then fine.
    behind_tls_proxy: bool = False
    # --- engine ------------------------------------------------------------------
    engine_threads: int = 2
    engine_memory_limit: str = "4GB"
    engine_temp_limit: str = "10GB"
    # --- queries and jobs --------------------------------------------------------
    maxrec_default: int = 100_000
    maxrec_limit: int = 10_000_000
    sync_timeout: float = 600.0  # seconds
    query_max_chars: int = 100_000  # longer ADQL costs seconds just to parse
    exec_duration_default: float = 3600.0  # seconds, async
    exec_duration_limit: float = 4 * 3600.0
    job_retention: float = 7 * 24 * 3600.0  # seconds until destruction
    workers: int = 2
    max_jobs_per_user: int = 2
    # --- uploads -----------------------------------------------------------------
    upload_max_bytes: int = 200 * 1024 * 1024
    upload_max_rows: int = 2_000_000
    upload_url_hosts: tuple[str, ...] = ()  # empty: URL uploads disabled
    # --- accounts ----------------------------------------------------------------
    anonymous_read: bool = True
    token_lifetime: float = 24 * 3600.0  # seconds
    password_min_length: int = 10
    basic_cache_seconds: float = 300.0
    # --- user space --------------------------------------------------------------
    quota_rows: int = 50_000_000
    quota_bytes: int = 5 * 1024**3
    # --- demo --------------------------------------------------------------------
    demo: bool = False

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

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

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``TAPHOUSE_*`` variables, then apply explicit overrides.

        Overrides whose value is ``None`` are ignored, so unset command-line flags
        fall through to the environment and the defaults.
        """
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"TAPHOUSE_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _convert(f.name, hints[f.name], raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values)


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


__all__ = ["Settings"]
