"""JupyterHub next to the data, wired to taphouse login.

Three sides, each imported only where it runs:

- the taphouse server (:mod:`taphouse.hub.link`, :mod:`taphouse.hub.routes`): the hub's
  service token, the browser address it forwards, notebook tokens (``/api/hub``);
- the JupyterHub process (:mod:`taphouse.hub.authenticator`,
  :mod:`taphouse.hub.spawner`, configured by :mod:`taphouse.hub.config` and started by
  ``taphouse hub``, :mod:`taphouse.hub.commands`): logins checked against taphouse, each
  user's Jupyter server in its own sandbox as the user's own uid;
- each user's Jupyter server, inside that sandbox (:mod:`taphouse.hub.singleuser`): the
  contents API rooted at the home, no terminals, kernels started in the compute sandbox
  and reached over ZeroMQ ``ipc`` sockets in a bind-mounted directory.
"""
