"""Accounts, login and permissions.

- :mod:`~taphouse.auth.authenticator` -- :class:`Authenticator`: the identity of each
  request (Bearer token, HTTP Basic with a short cache, or anonymous) and the account
  operations (login, password change, disable, revoke) that keep its caches right.
- :mod:`~taphouse.auth.accounts` -- users (argon2id passwords, stable ids) and groups.
- :mod:`~taphouse.auth.tokens` -- session and personal tokens, stored as SHA-256 only.
- :mod:`~taphouse.auth.database_access` and :mod:`~taphouse.auth.policy` -- which
  groups may read a restricted database; what may not be read does not exist.
- :mod:`~taphouse.auth.throttle` -- failed logins per account and per client address.
- :mod:`~taphouse.auth.audit` -- the audit log of queries and account events.
- :mod:`~taphouse.auth.routes` -- ``/auth`` (token, refresh, logout, whoami, tokens,
  password) and the operator API ``/api/admin``.
- :mod:`~taphouse.auth.commands` -- ``taphouse user|group|db|audit``.
"""
