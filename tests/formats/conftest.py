"""Fixtures of the formats tests (the plain helpers live in formats_helpers.py)."""

from formats_helpers import batch, columns  # noqa: F401  (fixtures)
