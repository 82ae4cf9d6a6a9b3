"""Fast paths for spatial predicates (filled in below)."""

from __future__ import annotations


def optimise_spatial(tree, scope, dialect):
    return []
