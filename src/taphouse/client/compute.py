"""Compute jobs from the client: run Python next to the data, in the server's sandbox.

``client.run(func, *args)`` ships ``func``'s source and its JSON arguments (never a
pickle); inside the job the function is called and its JSON return value comes back as
:attr:`RunResult.value`. ``client.run("script text" or Path("analysis.py"))`` runs a
script, which finds its arguments with :func:`job_args`.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from taphouse.client.errors import ClientError, QueryTimeout, ServerError
from taphouse.client.http import send

if TYPE_CHECKING:
    from taphouse.client.client import Client

FINAL = frozenset({"COMPLETED", "ERROR", "ABORTED", "ARCHIVED"})
RETURN_FILE = ".taphouse-return.json"
_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2,
          "MIB": 1024**2, "G": 1024**3, "GB": 1024**3, "GIB": 1024**3}


class ComputeError(ClientError):
    """A compute job ended in ERROR (non-zero exit, limit reached) or was aborted."""

    def __init__(self, message: str, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def job_args() -> list[Any]:
    """Inside a compute job: the JSON arguments the job was submitted with."""
    path = os.environ.get("TAPHOUSE_ARGS")
    if not path:
        return []
    with open(path) as f:
        args: list[Any] = json.load(f)
    return args


@dataclass
class RunResult:
    """What a compute job left: exit status, output, files, tables."""

    job_id: str
    phase: str
    exit_status: int | None
    stdout: str
    stderr: str
    outputs: dict[str, str] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    error: str | None = None
    value: Any = None
    seconds: float | None = None
    _job: ComputeJob | None = field(default=None, repr=False)

    def output(self, name: str) -> bytes:
        """The content of an output file."""
        assert self._job is not None
        return self._job.file(name)

    def save_outputs(self, directory: str | os.PathLike = ".") -> list[Path]:
        """Download every output file into ``directory``."""
        out = []
        for name in self.outputs:
            target = Path(directory) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.output(name))
            out.append(target)
        return out


class ComputeJob:
    """One compute job on the server (``client.compute_job(id)`` reattaches)."""

    def __init__(self, client: Client, job_id: str, info: dict[str, Any] | None = None) -> None:
        self.client = client
        self.id = job_id
        self.url = f"{client.url}/api/compute/{job_id}"
        self._info = info

    def info(self, wait: float | None = None) -> dict[str, Any]:
        params = {} if wait is None else {"wait": f"{wait:g}"}
        timeout = self.client.timeout + (wait or 0)
        r = send(self.client.session, "GET", self.url, params=params, timeout=timeout)
        self._info = r.json()
        return self._info

    @property
    def phase(self) -> str:
        phase: str = (self._info or self.info())["phase"]
        return phase

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job ends (at most ``timeout`` seconds: then QueryTimeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        info = self._info or self.info()
        while info["phase"] not in FINAL:
            left = 30.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise QueryTimeout(f"compute job {self.id} still {info['phase']} after"
                                   f" {timeout:g} s")
            info = self.info(wait=min(30.0, left))
        return info

    def abort(self) -> dict[str, Any]:
        r = send(self.client.session, "POST", self.url + "/abort", timeout=self.client.timeout)
        self._info = r.json()
        return self._info

    def delete(self) -> None:
        send(self.client.session, "DELETE", self.url, timeout=self.client.timeout)

    @property
    def stdout(self) -> str:
        return self._text("/stdout")

    @property
    def stderr(self) -> str:
        return self._text("/stderr")

    def _text(self, suffix: str) -> str:
        r = send(self.client.session, "GET", self.url + suffix, timeout=self.client.timeout)
        return r.content.decode("utf-8", "replace")

    def file(self, name: str) -> bytes:
        r = send(self.client.session, "GET", f"{self.url}/files/{quote(name, safe='/')}",
                 timeout=self.client.timeout)
        return r.content

    def result(self, timeout: float | None = None, *, check: bool = True) -> RunResult:
        """Wait for the end and collect the result; with ``check`` a job that did not
        complete raises :class:`ComputeError` (carrying the result)."""
        info = self.wait(timeout)
        outputs = {o["name"]: o["url"] for o in info.get("outputs", [])}
        value = None
        if RETURN_FILE in outputs:
            value = json.loads(self.file(RETURN_FILE))
            del outputs[RETURN_FILE]
        res = RunResult(job_id=self.id, phase=info["phase"],
                        exit_status=info.get("exit_status"), stdout=self.stdout,
                        stderr=self.stderr, outputs=outputs, tables=info.get("tables", []),
                        error=(info.get("error") or {}).get("message"), value=value, seconds=info.get("seconds"),
                        _job=self)
        if check and res.phase != "COMPLETED":
            raise ComputeError(f"compute job {self.id} {res.phase}: {res.error}", res)
        return res

    def __repr__(self) -> str:
        return f"<ComputeJob {self.id} {self._info['phase'] if self._info else '?'}>"


def script_of(code: Any) -> str:
    """The script to send for a function, a path, or source text."""
    if callable(code):
        return function_script(code)
    if isinstance(code, Path):
        text = code.read_text()
        return text
    if isinstance(code, str):
        return code
    raise TypeError("run() takes a function, a pathlib.Path to a script or notebook, or"
                    " Python source text")


def function_script(func: Any) -> str:
    """A script defining ``func`` (from its source) and calling it with the job's
    arguments; a JSON-able return value is written where :class:`RunResult` finds it."""
    name = getattr(func, "__name__", "")
    if not name.isidentifier() or name == "<lambda>":
        raise TypeError("run() ships a function by its source: give a named function"
                        " (def ...), not a lambda")
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as exc:
        raise TypeError(f"cannot read the source of {name}: {exc}") from None
    source = re.sub(r"^(@.*\n)+", "", source, flags=re.MULTILINE) if source.startswith("@") \
        else source
    return (f"{source}\n\n"
            "def __taphouse_main():\n"
            "    import json as __json\n"
            "    from taphouse.client.compute import RETURN_FILE as __return_file\n"
            "    from taphouse.client.compute import job_args as __job_args\n"
            f"    __value = {name}(*__job_args())\n"
            "    if __value is not None:\n"
            "        with open(__return_file, 'w') as __out:\n"
            "            __json.dump(__value, __out)\n\n"
            "__taphouse_main()\n")


def parse_memory(memory: int | str | None) -> int | None:
    """Bytes from 2_000_000_000, "2GB", "512 MiB"..."""
    if memory is None or isinstance(memory, int):
        return memory
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(memory))
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"memory {memory!r}: bytes, or a size like '2GB' or '512MiB'")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def submit(client: Client, code: Any, args: tuple[Any, ...], *,
           files: Mapping[str, Any] | None = None, timeout: float | None = None,
           memory: int | str | None = None) -> ComputeJob:
    """Create a compute job (see :meth:`Client.run`)."""
    try:
        args_text = json.dumps(list(args))
    except TypeError as exc:
        raise TypeError(f"run() arguments must be JSON values: {exc}") from None
    data: dict[str, str] = {"args": args_text}
    multipart: dict[str, Any] = {}
    if isinstance(code, Path) and code.suffix == ".ipynb":
        multipart["notebook"] = (code.name, code.read_bytes(), "application/json")
    else:
        multipart["script"] = ("script.py", script_of(code).encode(), "text/x-python")
    if timeout is not None:
        data["timeout"] = f"{timeout:g}"
    mem = parse_memory(memory)
    if mem is not None:
        data["memory"] = str(mem)
    for name, content in (files or {}).items():
        if isinstance(content, (str, os.PathLike)) and not isinstance(content, bytes):
            content = Path(content).read_bytes()
        multipart[name] = (name, content, "application/octet-stream")
    try:
        r = send(client.session, "POST", client.url + "/api/compute", data=data,
                 files=multipart, timeout=client.timeout)
    except ServerError:
        raise
    info = r.json()
    return ComputeJob(client, info["id"], info)
