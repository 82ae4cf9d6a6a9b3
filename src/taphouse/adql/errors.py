"""The one error type of :mod:`taphouse.adql`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taphouse.errors import ServiceError

if TYPE_CHECKING:
    from sqlglot import exp


class AdqlError(ServiceError):
    """An ADQL query cannot be accepted: syntax, an unknown name, a refused construct.

    Parameters
    ----------
    message
        What is wrong and, where possible, how to fix it.
    line, column
        1-based position in the query text, when known.
    """

    def __init__(self, message: str, line: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(message, 400)
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line is not None:
            where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
            return f"{self.message} ({where})"
        return self.message

    @classmethod
    def at(cls, message: str, node: exp.Expr | None) -> AdqlError:
        """An error located at a parsed node (its first identifier or token)."""
        line, col = position(node)
        return cls(message, line, col)

    @classmethod
    def at_start(cls, message: str, node: exp.Expr | None) -> AdqlError:
        """An error located at the earliest token of a parsed node."""
        line, col = start_position(node)
        return cls(message, line, col)


def start_position(node: exp.Expr | None) -> tuple[int | None, int | None]:
    """(line, column) of the earliest token inside a sqlglot node."""
    found = [_token_position(n) for n in node.walk()] if node is not None else []
    found = [p for p in found if p[0] is not None]
    return min(found) if found else (None, None)


def _token_position(n: object) -> tuple[int | None, int | None]:
    meta = getattr(n, "_meta", None) or {}
    if "line" not in meta:
        return None, None
    col = meta.get("col")
    if col is not None and "start" in meta and "end" in meta:
        col = col - (meta["end"] - meta["start"])
    return meta["line"], col


def position(node: exp.Expr | None) -> tuple[int | None, int | None]:
    """(line, column) of a sqlglot node, from the first token-bearing node inside it."""
    if node is None:
        return None, None
    for n in node.walk() if hasattr(node, "walk") else ():
        meta = getattr(n, "_meta", None) or {}
        if "line" in meta:
            line = meta["line"]
            col = meta.get("col")
            if col is not None and "start" in meta and "end" in meta:
                col = col - (meta["end"] - meta["start"])
            return line, col
    return None, None
