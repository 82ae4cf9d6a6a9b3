"""Credentials kept encrypted at rest: the one place the platform stores secrets.

Backends (a PostgreSQL DSN), remote TAP services (a password, a bearer token) and the
hub keep credentials they must send later, so they cannot hash them as passwords are
hashed: they are encrypted here with Fernet (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package) under keys the operator controls.

Keys
    ``TAPHOUSE_SECRET_KEYS`` (setting ``secret_keys``: Fernet keys, comma-separated,
    the first encrypts, all decrypt), else the key file ``<data_dir>/secret-keys``
    (one key a line, the first encrypts), created with mode 0600 on first use and
    refused when others may read it.

Rotation
    ``taphouse secrets rotate`` puts a new key first in the key file and re-encrypts
    every stored secret with it; old keys still decrypt until ``--retire`` drops them
    (refused while a stored secret still needs one).

A sealed value is ``th1:<key id>:<Fernet token>``: the key id (a hash of the key, not
the key) lets a wrong or lost key be told apart from a tampered value. Plain values
never reach logs, ``repr`` or error messages; :class:`Secret` wraps one so that
printing it by mistake shows ``********``.

API::

    box = SecretBox.from_settings(settings)   # key(s) from the settings or key file
    sealed = box.seal("pa55", purpose="remote:far")     # -> 'th1:…' (text, store it)
    box.open(sealed, purpose="remote:far")               # -> 'pa55'
    store = SecretStore(meta, box)             # named secrets in the metadata DB
    store = SecretStore.from_settings(meta, settings)    # (keys read on first use)
    platform.secrets                           # the server's SecretStore
    store.put("remote:far", "pa55"); store.get("remote:far").reveal(); store.delete(...)
    store.rotate()                             # re-encrypt all with the first key
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import logging
import os
import sqlite3
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from taphouse.errors import ServiceError
from taphouse.metadata import register_migrations

if TYPE_CHECKING:  # cryptography is a server dependency; the client CLI lists commands
    from cryptography.fernet import Fernet

    from taphouse.metadata import MetadataDB
    from taphouse.settings import Settings

log = logging.getLogger("taphouse.secrets")

#: The key file's name inside the data directory.
KEY_FILE = "secret-keys"
_PREFIX = "th1"

register_migrations("secrets", [
    """
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        sealed TEXT NOT NULL,
        key_id TEXT NOT NULL,
        updated TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    )
    """,
])


class SecretError(ServiceError):
    """A secret cannot be sealed or opened (the message never contains the secret; it
    may name the key file: an operator's message, not a user's)."""

    status = 503


class SecretKeyError(SecretError):
    """No usable key: missing, malformed, readable by others, or not the sealing key."""


class SecretTampered(SecretError):
    """A sealed value was changed or corrupted after it was sealed."""


class Secret:
    """A plain secret value that does not show itself: ``str``/``repr`` give
    ``********``; :meth:`reveal` gives the value to the code that sends it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def generate_key() -> str:
    """A new random key (32 bytes, URL-safe base64, as Fernet takes it)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def key_id(key: str) -> str:
    """A short public name of a key: 8 hex digits of a hash (says nothing of the key)."""
    return hashlib.sha256(b"taphouse secret key id\0" + key.encode("ascii")).hexdigest()[:8]


def _fernet(key: str, where: str) -> Fernet:
    from cryptography.fernet import Fernet

    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
        if len(raw) != 32:
            raise ValueError
        return Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError, binascii.Error):
        raise SecretKeyError(f"{where}: not a valid key (32 bytes in URL-safe base64; make"
                             " one with `taphouse secrets generate-key`)") from None


class SecretBox:
    """Seals and opens secrets with an ordered list of keys: the first seals, every one
    opens. Build it with :meth:`from_settings` (or give keys directly in tests)."""

    def __init__(self, keys: Sequence[str], *, source: str = "keys") -> None:
        if not keys:
            raise SecretKeyError(f"{source}: no key")
        self._source = source
        self._keys: dict[str, Fernet] = {}
        self._primary = key_id(keys[0])
        for n, key in enumerate(keys, 1):
            self._keys.setdefault(key_id(key), _fernet(key, f"{source}, key {n}"))

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> SecretBox:
        """The keys of ``settings.secret_keys`` if set, else of the key file in the data
        directory (created, mode 0600, when ``create`` and it does not exist yet)."""
        keys = tuple(getattr(settings, "secret_keys", ()) or ())
        if keys:
            return cls(keys, source="TAPHOUSE_SECRET_KEYS")
        path = key_file_path(settings)
        return cls(read_key_file(path, create=create), source=str(path))

    @property
    def primary_key_id(self) -> str:
        """The id of the key new seals use."""
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def seal(self, plaintext: str, *, purpose: str = "") -> str:
        """Encrypt ``plaintext`` with the first key. ``purpose`` (e.g. ``remote:far``)
        is bound to the value: :meth:`open` with another purpose refuses it, so a sealed
        value copied to another row does not open there."""
        data = purpose.encode() + b"\0" + plaintext.encode("utf-8", "surrogatepass")
        token = self._keys[self._primary].encrypt(data).decode("ascii")
        return f"{_PREFIX}:{self._primary}:{token}"

    def open(self, sealed: str, *, purpose: str = "") -> str:
        """The plain text of a value sealed by :meth:`seal` (with the same ``purpose``).

        Raises :class:`SecretKeyError` when no key of this box sealed it, and
        :class:`SecretTampered` when it was changed after sealing."""
        from cryptography.fernet import InvalidToken

        kid, token = self._split(sealed)
        fernet = self._keys.get(kid)
        if fernet is None:
            raise SecretKeyError(
                f"a secret was sealed with key {kid}, which {self._source} does not have"
                f" (keys: {', '.join(self._keys)}): the key was replaced or lost; restore"
                " it, or store the credential again")
        try:
            data = fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretTampered(f"a secret sealed with key {kid} fails its integrity check:"
                                 " it was changed or corrupted; store it again") from None
        bound, _, plain = data.partition(b"\0")
        if bound != purpose.encode():
            raise SecretTampered("a sealed secret was made for another use than the one"
                                 " reading it (moved between records?); store it again")
        return plain.decode("utf-8", "surrogatepass")

    def sealed_with(self, sealed: str) -> str:
        """The id of the key that sealed ``sealed``."""
        return self._split(sealed)[0]

    def reseal(self, sealed: str, *, purpose: str = "") -> str:
        """``sealed`` sealed again with the first key (unchanged if it already is)."""
        if self.sealed_with(sealed) == self._primary:
            return sealed
        return self.seal(self.open(sealed, purpose=purpose), purpose=purpose)

    def _split(self, sealed: str) -> tuple[str, str]:
        parts = sealed.split(":", 2) if isinstance(sealed, str) else []
        if len(parts) != 3 or parts[0] != _PREFIX or len(parts[1]) != 8:
            raise SecretTampered("not a sealed secret (expected th1:<key id>:<token>)")
        return parts[1], parts[2]

    def __repr__(self) -> str:
        return f"SecretBox(primary={self._primary}, keys={len(self._keys)})"


# --- the key file ------------------------------------------------------------------------

def key_file_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / KEY_FILE


def read_key_file(path: Path, *, create: bool = True) -> list[str]:
    """The keys in ``path`` (first = sealing key). Created with one new key, mode 0600,
    when missing and ``create``; refused when group or others may read or write it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        if not create:
            raise SecretKeyError(f"no key file {path}: secrets cannot be opened (was the"
                                 " data directory copied without it?)") from None
        _write_key_file(path, [generate_key()], exclusive=True)
        return read_key_file(path, create=False)
    except OSError as exc:
        raise SecretKeyError(f"cannot read the key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise SecretKeyError(f"the key file {path} is not a regular file")
        if mode & 0o077:
            raise SecretKeyError(f"the key file {path} may be read by others (mode"
                                 f" {stat.S_IMODE(mode):04o}): chmod 600 it (and consider"
                                 " its keys exposed: rotate)")
        text = f.read()
    keys = [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise SecretKeyError(f"the key file {path} holds no key")
    return keys


def _write_key_file(path: Path, keys: Sequence[str], *, exclusive: bool = False) -> None:
    """Write the keys to a private temporary file, then move it in place (or link it,
    failing if the file exists, when ``exclusive``: two processes creating it at once
    end up with the same key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".secret-keys.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write("# taphouse secret keys: the first seals, all open. Keep private;"
                    " back up with the data.\n")
            f.write("".join(k + "\n" for k in keys))
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        else:
            os.replace(tmp, path)
            tmp = ""
    finally:
        if tmp:
            os.unlink(tmp)
    log.info("key file %s written (sealing key %s, %d keys)", path, key_id(keys[0]),
             len(keys))


def add_key(path: Path) -> str:
    """Put a new key first in the key file (older keys stay, to open what they sealed);
    returns its id."""
    keys = read_key_file(path, create=True)
    new = generate_key()
    _write_key_file(path, [new, *keys])
    return key_id(new)


def retire_keys(path: Path, keep: Iterable[str]) -> list[str]:
    """Drop from the key file every key whose id is not in ``keep`` (the first key is
    always kept); returns the ids dropped."""
    keys = read_key_file(path, create=False)
    keep = set(keep) | {key_id(keys[0])}
    kept = [k for k in keys if key_id(k) in keep]
    _write_key_file(path, kept)
    return [key_id(k) for k in keys if key_id(k) not in keep]


# --- named secrets in the metadata database -----------------------------------------------

def count_stored(meta_path: Path) -> int:
    """How many secrets the metadata database at ``meta_path`` holds (read-only; 0 in a
    store from before this module): a backup reminds the operator of their key."""
    con = sqlite3.connect(f"file:{meta_path}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT COUNT(*) FROM secrets").fetchone()[0])
    except sqlite3.OperationalError:  # a store from before taphouse.secrets
        return 0
    finally:
        con.close()


class SecretStore:
    """Named secrets (e.g. ``remote:far``, ``database:sky``) sealed in the metadata
    database's ``secrets`` table; :meth:`rotate` re-encrypts them all with the box's
    first key. The name is bound to the sealed value."""

    def __init__(self, meta: MetadataDB, box: SecretBox) -> None:
        self.meta = meta
        self._box: SecretBox | None = box
        self._settings: Settings | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, meta: MetadataDB, settings: Settings) -> SecretStore:
        """A store whose keys are read (the key file made) on first use, not now."""
        store = cls.__new__(cls)
        store.meta, store._box, store._settings = meta, None, settings
        store._stamp = None
        store._lock = threading.Lock()
        return store

    @property
    def box(self) -> SecretBox:
        """The keys; read again when the key file changed (``taphouse secrets rotate``
        run while the server runs: a store holding the old keys could open nothing the
        rotation re-sealed, and would seal with a key ``--retire`` had dropped)."""
        with self._lock:
            settings = self._settings
            from_file = settings is not None and not getattr(settings, "secret_keys", ())
            stamp = _stamp(key_file_path(settings)) if from_file and settings else None
            if self._box is None or (from_file and stamp != self._stamp):
                assert settings is not None
                self._box = SecretBox.from_settings(settings)
                self._stamp = _stamp(key_file_path(settings)) if from_file else None
            return self._box

    def put(self, name: str, value: str, *, con: sqlite3.Connection | None = None) -> None:
        """Store ``value`` sealed under ``name`` (replacing any); ``con``: inside the
        caller's write transaction (:meth:`MetadataDB.transaction`), else in one of its
        own. The keys are read inside that transaction: ``taphouse secrets rotate``
        re-seals in one too, so a value is either committed before the re-sealing (and
        re-sealed) or sealed with the new key. Read before it, they could seal with a
        key ``--retire`` then dropped (lost at the next start)."""
        if con is None or not con.in_transaction:
            with self.meta.transaction() as own:
                self._put(own, name, value)
        else:
            self._put(con, name, value)

    def _put(self, con: sqlite3.Connection, name: str, value: str) -> None:
        box = self.box
        sealed = box.seal(value, purpose=name)
        con.execute(
            "INSERT INTO secrets (name, sealed, key_id, updated) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET sealed = excluded.sealed,"
            " key_id = excluded.key_id, updated = excluded.updated",
            (name, sealed, box.primary_key_id, _now()))

    def get(self, name: str) -> Secret | None:
        row = self.meta.query_one("SELECT sealed FROM secrets WHERE name = ?", (name,))
        if row is None:
            return None
        try:
            return Secret(self.box.open(row["sealed"], purpose=name))
        except SecretError as exc:
            raise type(exc)(f"stored secret {name!r}: {exc.message}") from None

    def delete(self, name: str, *, con: sqlite3.Connection | None = None) -> bool:
        return (con or self.meta.connection()).execute("DELETE FROM secrets WHERE name = ?", (name,)).rowcount > 0

    def names(self) -> list[str]:
        return [r["name"] for r in self.meta.query("SELECT name FROM secrets ORDER BY name")]

    def keys_in_use(self) -> dict[str, int]:
        """Key id → number of stored secrets it sealed."""
        return {r["key_id"]: r["n"] for r in self.meta.query(
            "SELECT key_id, COUNT(*) AS n FROM secrets GROUP BY key_id")}

    def rotate(self) -> int:
        """Re-encrypt every secret not sealed with the first key; returns how many.
        All or nothing: one that cannot be opened stops the rotation, naming it."""
        with self.meta.transaction() as con:
            rows = con.execute("SELECT name, sealed FROM secrets WHERE key_id != ?",
                               (self.box.primary_key_id,)).fetchall()
            for row in rows:
                try:
                    sealed = self.box.reseal(row["sealed"], purpose=row["name"])
                except SecretError as exc:
                    raise type(exc)(f"stored secret {row['name']!r}: {exc.message}") from None
                con.execute("UPDATE secrets SET sealed = ?, key_id = ?, updated = ?"
                            " WHERE name = ?",
                            (sealed, self.box.primary_key_id, _now(), row["name"]))
        return len(rows)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a rewritten key file (inode, modification time, size); None: none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


# --- taphouse secrets ... --------------------------------------------------------------

def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``secrets`` sub-command."""
    p = subparsers.add_parser("secrets", help="the keys that encrypt stored credentials")
    sub = p.add_subparsers(dest="secrets_command", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("status", help="the keys (by id) and how many stored secrets each"
                       " sealed")
    s.set_defaults(handler=_status)
    s = sub.add_parser("rotate", help="a new first key in the key file, and every stored"
                       " secret re-encrypted with it (old keys kept until --retire)")
    s.add_argument("--retire", action="store_true",
                   help="also drop the keys no stored secret needs any more")
    s.set_defaults(handler=_rotate)
    s = sub.add_parser("generate-key", help="print a new key (for TAPHOUSE_SECRET_KEYS)")
    s.set_defaults(handler=_generate, store_access="none")


def _status(args: argparse.Namespace) -> int:
    from taphouse.metadata import MetadataDB

    settings = args.settings
    source = "TAPHOUSE_SECRET_KEYS" if settings.secret_keys else str(key_file_path(settings))
    meta = MetadataDB(settings.meta_path, upgrade=False)
    try:
        used = {r["key_id"]: r["n"] for r in meta.query(
            "SELECT key_id, COUNT(*) AS n FROM secrets GROUP BY key_id")}
    finally:
        meta.close()
    if not settings.secret_keys and not key_file_path(settings).exists():
        print(f"no key yet: {source} is made when the first credential is stored")
        key_ids: tuple[str, ...] = ()
        primary = None
    else:
        box = SecretBox.from_settings(settings, create=False)
        key_ids, primary = box.key_ids, box.primary_key_id
        print(f"keys from {source}")
    for kid in key_ids:
        first = " (seals)" if kid == primary else ""
        print(f"  {kid}{first}: {used.pop(kid, 0)} stored secrets")
    for kid, n in used.items():
        print(f"  {kid} MISSING: {n} stored secrets cannot be opened")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from taphouse.metadata import MetadataDB

    settings = args.settings
    meta = MetadataDB(settings.meta_path, upgrade=False)
    try:
        if settings.secret_keys:
            # The operator owns the keys: they put the new one first themselves.
            box = SecretBox.from_settings(settings)
            print(f"keys come from TAPHOUSE_SECRET_KEYS: sealing key {box.primary_key_id}"
                  " (to rotate, put a new key first there, then run this again)",
                  file=sys.stderr)
        else:
            path = key_file_path(settings)
            new = add_key(path)
            print(f"new sealing key {new} in {path}", file=sys.stderr)
            box = SecretBox.from_settings(settings, create=False)
        store = SecretStore(meta, box)
        n = store.rotate()
        print(f"{n} stored secrets re-encrypted with key {box.primary_key_id}")
        if args.retire:
            if settings.secret_keys:
                print("--retire: remove the old keys from TAPHOUSE_SECRET_KEYS yourself",
                      file=sys.stderr)
            else:
                dropped = retire_keys(key_file_path(settings), store.keys_in_use())
                print(f"retired keys: {', '.join(dropped) or 'none'}")
    finally:
        meta.close()
    return 0


def _generate(args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


__all__ = ["Secret", "SecretBox", "SecretStore", "SecretError", "SecretKeyError",
           "SecretTampered", "generate_key", "key_id", "read_key_file", "add_key",
           "retire_keys", "key_file_path", "KEY_FILE"]
