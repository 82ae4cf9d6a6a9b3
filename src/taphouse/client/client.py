"""The taphouse client: log in once, discover, query, keep results."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from taphouse.client.auth import TokenAuth
from taphouse.client.compute import ComputeJob, RunResult
from taphouse.client.compute import submit as submit_compute
from taphouse.client.errors import ClientError, NotFoundError
from taphouse.client.http import new_session, send
from taphouse.client.models import (
    Column,
    Database,
    Listing,
    PersonalToken,
    Quota,
    TableInfo,
    build,
)
from taphouse.client.tap import TapEndpoint
from taphouse.client.tokens import TokenStore
from taphouse.client.userspace import UserSpace, table_name
from taphouse.client.workspace import Workspace


def _version() -> str:
    from taphouse import __version__

    return __version__


class Client(TapEndpoint):
    """A connection to one taphouse server. Make one with :func:`taphouse.connect`.

    Parameters
    ----------
    url
        The server's base URL (``.../tap`` is accepted too).
    token
        An access token to use instead of logging in.
    remember
        Keep the session token in the per-user token store
        (``$XDG_CONFIG_HOME/taphouse/tokens.json``, mode 0600) and reuse a valid one
        from there.
    interactive
        Whether a password prompt may be shown; None: detect (terminal or Jupyter).
    prompt
        Function asking for a password (default :func:`getpass.getpass`).
    timeout
        Seconds for one HTTP exchange (not a query budget: see ``query(timeout=)``).
    retries, backoff
        Retries of idempotent requests after transient failures, with exponential
        backoff starting at ``backoff`` seconds.
    progress
        Default progress display for queries (True: tqdm bar; False: none).
    token_store
        A :class:`TokenStore` (or a path to its file) to use with ``remember``.
    socket
        Reach the server through this Unix socket instead of the network (inside a
        compute sandbox, ``$TAPHOUSE_SOCKET``; :func:`connect` does this by itself).
    """

    def __init__(self, url: str, *, token: str | None = None, remember: bool = False,
                 interactive: bool | None = None, prompt: Callable[[str], str] | None = None,
                 timeout: float = 60.0, retries: int = 4, backoff: float = 0.5,
                 progress: bool | Callable = True,
                 token_store: TokenStore | str | os.PathLike | None = None,
                 socket: str | None = None) -> None:
        url = url.rstrip("/")
        if url.endswith("/tap"):
            url = url[: -len("/tap")]
        self.url = url
        self.timeout = timeout
        self.progress = progress
        agent = f"taphouse-client/{_version()}"
        self.session = new_session(retries, backoff, agent)
        store = None
        if remember:
            store = token_store if isinstance(token_store, TokenStore) else TokenStore(token_store)
        self.auth = TokenAuth(url, new_session(retries, backoff, agent), prompt=prompt,
                              interactive=interactive, store=store, timeout=timeout)
        self.session.auth = self.auth
        if socket:
            from taphouse.client.unixsocket import use_unix_socket

            use_unix_socket(self.session, socket)
            use_unix_socket(self.auth.session, socket)
        if token:
            self.auth.use_token(token, source="token")
        elif store is not None:
            entry = store.load(url)
            if entry:
                import time

                expires = entry.get("expires")
                local = None if expires is None else self.auth.clock() + (expires - time.time())
                self.auth.use_token(entry["token"], source="store",
                                    username=entry.get("username"), expires=local)
        self._whoami: dict[str, Any] | None = None
        super().__init__(self, url + "/tap")

    # --- login -------------------------------------------------------------------------
    def login(self, username: str, password: str | None = None) -> Client:
        """Log in: exchange name and password for a session token.

        Without ``password`` it is asked for (getpass) when a person can answer; else
        :class:`AuthError` is raised. The token is refreshed before it expires; when
        that is no longer possible the password is asked for again (or AuthError).
        """
        self.auth.login(username, password)
        self._whoami = None
        return self

    def logout(self) -> None:
        """Revoke the token on the server and forget it (also in the token store)."""
        self.auth.logout()
        self._whoami = None

    def use_anonymous(self) -> Client:
        """Carry on without logging in: requests are anonymous (public data only).

        After a login can no longer be used (expired, revoked) every request raises
        :class:`AuthError` until you log in again or call this: the client never
        falls back to anonymous access by itself.
        """
        self.auth.clear()
        self._whoami = None
        return self

    @property
    def logged_in(self) -> bool:
        """True while requests carry a token (False when anonymous or the login is lost)."""
        return self.auth.token is not None

    def whoami(self) -> dict[str, Any]:
        """The server's view of you: ``username``, ``groups``, ..."""
        r = send(self.session, "GET", self.url + "/auth/whoami", timeout=self.timeout)
        self._whoami = r.json()
        if self.auth.username is None and self._whoami.get("username"):
            self.auth.username = self._whoami["username"]
        return self._whoami

    @property
    def username(self) -> str | None:
        """Your user name (None when anonymous)."""
        if self.auth.username is None and self.auth.token is not None:
            self.whoami()
        return self.auth.username

    # --- personal tokens ------------------------------------------------------------------
    def create_token(self, name: str, scopes: list[str] | tuple[str, ...] | str = ("read",),
                     expires: float | timedelta | None = 30) -> PersonalToken:
        """Create a personal token for a script or notebook (needs a login, not a
        personal token).

        Parameters
        ----------
        name
            What the token is for (shown in :meth:`tokens`), e.g. ``"nightly-crossmatch"``.
        scopes
            ``"read"`` (query, read your tables), ``"write"`` (also store, change and drop
            tables, run compute jobs); at most what your login has.
        expires
            Days until it expires (a number or a :class:`datetime.timedelta`), or None for
            a token that lasts until revoked.

        Returns
        -------
        PersonalToken
            ``.token`` holds the secret, shown this once: hand it to the script as
            ``TAPHOUSE_TOKEN`` (with ``TAPHOUSE_URL``), and :func:`connect` uses it.
        """
        if isinstance(scopes, str):
            scopes = scopes.split()
        days: float | None
        if isinstance(expires, timedelta):
            days = expires.total_seconds() / 86400.0
        else:
            days = None if expires is None else float(expires)
        r = send(self.session, "POST", self.url + "/auth/tokens", timeout=self.timeout,
                 json={"name": name, "scopes": list(scopes), "expires_in_days": days})
        body = r.json()
        return build(PersonalToken, {"id": body.get("token_id"), "name": body.get("name", name),
                                     "kind": body.get("kind", "personal"),
                                     "scopes": (body.get("scope") or "").split(),
                                     "issued_at": body.get("issued_at"),
                                     "expires_at": body.get("expires_at"),
                                     "token": body.get("access_token")})

    def tokens(self) -> Listing:
        """Your tokens that are still valid (sessions and personal ones; ``current`` marks
        the one this client uses)."""
        body = self._get("/auth/tokens")
        return Listing([build(PersonalToken, t) for t in body.get("tokens", [])],
                       PersonalToken, title="tokens")

    def revoke_token(self, token: int | PersonalToken) -> None:
        """Revoke one of your tokens by its id (it stops working at once)."""
        token_id = token.id if isinstance(token, PersonalToken) else int(token)
        send(self.session, "DELETE", f"{self.url}/auth/tokens/{token_id}", timeout=self.timeout)

    # --- discovery -----------------------------------------------------------------------
    def _get(self, path: str, **kwargs: Any) -> Any:
        return send(self.session, "GET", self.url + path, timeout=self.timeout, **kwargs).json()

    def explain(self, adql: str, *, maxrec: int | None = None) -> dict[str, Any]:
        """What would run where for ``adql``, without running it.

        Returns ``{"query": ..., "parts": [...]}``: each part says where it runs
        (``runs_on``: ``local`` or ``remote NAME (URL)``), the exact ADQL sent to a
        remote service (``remote_adql``) or the SQL run here (``sql``), its row limit
        (``maxrec``) and its tables. A query the service would refuse raises
        :class:`ClientError` with the same message.
        """
        body: dict[str, Any] = {"query": adql}
        if maxrec is not None:
            body["maxrec"] = int(maxrec)
        result: dict[str, Any] = send(self.session, "POST", self.url + "/api/explain",
                                      json=body, timeout=self.timeout).json()
        return result

    def databases(self) -> Listing:
        """The databases you may read (catalogues and user schemas)."""
        return Listing([build(Database, d) for d in self._get("/api/databases")], Database,
                       title=f"databases at {self.url}")

    def tables(self, database: str | Database) -> Listing:
        """The tables of one database."""
        name = database.name if isinstance(database, Database) else str(database)
        if name == "mydb" or name.startswith("user_"):
            return self.mydb.list()
        data = self._get(f"/api/databases/{quote(name, safe='')}/tables")
        return Listing([build(TableInfo, dict(t, database=t.get("database") or name))
                        for t in data], TableInfo, title=name)

    def table(self, table: str | TableInfo) -> TableInfo:
        """One table's description with its columns (``"database.table"``)."""
        qualified = table.qualified_name if isinstance(table, TableInfo) else str(table)
        if "." not in qualified:
            raise ClientError(f"give the table as 'database.table', not {qualified!r}")
        db, name = qualified.split(".", 1)
        if db == "mydb" or db.startswith("user_"):
            return self.mydb.describe(qualified if db.startswith("user_") else name)
        body = self._get(f"/api/tables/{quote(db, safe='')}/{quote(name, safe='')}")
        return build(TableInfo, body)

    def columns(self, table: str | TableInfo) -> Listing:
        """The columns of a table with units, UCDs and descriptions."""
        info = self.table(table)
        return Listing(info.columns, Column, title=info.qualified_name or info.name)

    # --- user space ----------------------------------------------------------------------
    @property
    def mydb(self) -> UserSpace:
        """Your user space: ``list()``, ``describe``, ``upload``, ``download``, ``drop``,
        ``rename``, ``share``."""
        return UserSpace(self)

    def quota(self) -> Quota:
        """How much of your user-space quota is used."""
        return build(Quota, self._get("/api/quota"))

    # --- workspaces ----------------------------------------------------------------------
    def workspaces(self) -> Listing:
        """Your workspaces."""
        return Listing([Workspace(self, w) for w in self._get("/api/workspaces")], Workspace,
                       title="workspaces")

    def workspace(self, name: str, databases: list[str] | None = None) -> Workspace:
        """Open workspace ``name``; with ``databases``, create it (or set its databases).

        The returned object queries like the client but sees only those databases (and
        your user space); its ``tap_url`` works in TOPCAT or pyvo.
        """
        path = f"{self.url}/api/workspaces/{quote(name, safe='')}"
        if databases is None:
            try:
                return Workspace(self, send(self.session, "GET", path, timeout=self.timeout).json())
            except NotFoundError:
                raise NotFoundError(f"you have no workspace {name!r}: pass databases=[...] to"
                                    " create it", status=404) from None
        try:
            r = send(self.session, "POST", self.url + "/api/workspaces", timeout=self.timeout,
                     json={"name": name, "databases": list(databases)})
            return Workspace(self, r.json())
        except ClientError as exc:
            if exc.status != 409:
                raise
        ws = Workspace(self, send(self.session, "GET", path, timeout=self.timeout).json())
        if sorted(ws.databases) != sorted(databases):
            ws.update(list(databases))
        return ws

    # --- misc ------------------------------------------------------------------------------
    # --- jobs of every kind, compute -----------------------------------------------------
    def run(self, code: Any, *args: Any, files: Mapping[str, Any] | None = None,
            timeout: float | None = None, memory: int | str | None = None,
            wait: bool = True) -> RunResult | ComputeJob:
        """Run Python next to the data, in the server's sandbox.

        Parameters
        ----------
        code
            A named function (its source is shipped, then called with ``args``; its
            JSON return value comes back as ``result.value``), a :class:`pathlib.Path`
            to a script or notebook, or Python source text.
        *args
            JSON values (a script reads them with
            :func:`taphouse.client.compute.job_args`).
        files
            Input files, name -> bytes or path; they are in the job's current directory.
        timeout
            Seconds the job may run (wall time); default: the server's.
        memory
            Memory per process, bytes or text such as ``"2GB"``.
        wait
            False: return the :class:`ComputeJob` at once.

        Returns
        -------
        RunResult
            stdout, stderr, exit status, output files and the mydb tables written.

        Raises
        ------
        ComputeError
            The job ended in ERROR (non-zero exit: the status and the end of stderr) or
            was aborted; ``exc.result`` holds what it left.
        """
        job = submit_compute(self, code, args, files=files, timeout=timeout, memory=memory)
        if not wait:
            return job
        return job.result()

    def compute_job(self, job_id: str) -> ComputeJob:
        """Reattach to a compute job by its id."""
        return ComputeJob(self, job_id)

    def list_jobs(self, kind: str | None = None, phases: Any = ()) -> list[dict[str, Any]]:
        """Your jobs of every kind (``"tap"`` queries, ``"compute"``), as dictionaries."""
        params: dict[str, Any] = {"phase": list(phases)}
        if kind:
            params["kind"] = kind
        jobs: list[dict[str, Any]] = send(self.session, "GET", self.url + "/api/jobs",
                                          params=params, timeout=self.timeout).json()
        return jobs

    def job_info(self, job_id: str) -> dict[str, Any]:
        """One job of any kind (compute jobs with exit status, outputs and tables)."""
        info: dict[str, Any] = send(self.session, "GET",
                                    f"{self.url}/api/jobs/{quote(job_id, safe='')}",
                                    timeout=self.timeout).json()
        if info.get("kind") == "compute":
            info = ComputeJob(self, job_id).info()
        return info

    def abort_job(self, job_id: str) -> dict[str, Any]:
        """Abort a job of any kind."""
        aborted: dict[str, Any] = send(self.session, "POST",
                                       f"{self.url}/api/jobs/{quote(job_id, safe='')}/abort",
                                       timeout=self.timeout).json()
        return aborted

    def close(self) -> None:
        """Close the HTTP connections (the login stays valid until logout or expiry)."""
        self.session.close()
        self.auth.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        who = self.auth.username or ("token" if self.auth.token else "anonymous")
        if self.auth.lost is not None:
            who = f"{self.auth.lost_user or 'token'} (login lost: log in again)"
        return f"<taphouse.Client {self.url} as {who}>"


def connect(url: str | None = None, **kwargs: Any) -> Client:
    """Connect to a taphouse server.

    Parameters
    ----------
    url
        The server's base URL; default ``TAPHOUSE_URL`` from the environment.
    **kwargs
        See :class:`Client`. Without ``token``, ``TAPHOUSE_TOKEN`` is used when set
        (for the same server), so inside the platform's JupyterHub no login is needed;
        inside a compute job, ``TAPHOUSE_SOCKET`` names the Unix socket that is the
        job's only way to the server, and every request goes through it.

    Returns
    -------
    Client
    """
    env_url = os.environ.get("TAPHOUSE_URL", "").rstrip("/") or None
    if url is None:
        if env_url is None:
            raise ClientError("no server URL: pass one, e.g. connect('https://tap.example.org'),"
                              " or set TAPHOUSE_URL")
        url = env_url
    if kwargs.get("token") is None:
        env_token = os.environ.get("TAPHOUSE_TOKEN")
        same = env_url is not None and _base(url) == _base(env_url)
        if env_token and same:
            socket = os.environ.get("TAPHOUSE_SOCKET") or None
            if socket and "socket" not in kwargs:
                # Inside a compute job: no one watches a progress bar there.
                kwargs = {"progress": False, **kwargs, "socket": socket}
            client = Client(url, **{k: v for k, v in kwargs.items() if k != "token"})
            client.auth.use_token(env_token, source="env")
            return client
    return Client(url, **kwargs)


def _base(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/tap")] if url.endswith("/tap") else url


__all__ = ["Client", "connect", "table_name"]
