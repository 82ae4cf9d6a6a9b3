"""The query page served at ``/``: the built bundle in ``static/`` (sources in the
repository's top-level ``web/`` directory) and the route that serves it."""

from taphouse.web.static import PAGE_CSP, WebPage, add_web_routes

__all__ = ["PAGE_CSP", "WebPage", "add_web_routes"]
