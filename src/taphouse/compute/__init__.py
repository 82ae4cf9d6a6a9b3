"""Sandboxed user code next to the data: the ``"compute"`` job kind.

:class:`~taphouse.compute.service.ComputeService` runs jobs in bubblewrap sandboxes
(:mod:`taphouse.compute.sandbox`) whose only way out is the API on a Unix socket
(:mod:`taphouse.compute.listener`); ``taphouse compute setup`` builds the job Python
environment (:mod:`taphouse.compute.commands`).
"""
