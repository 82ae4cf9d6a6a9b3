"""Backend SQL differences, one rules module per backend (``duckdb``, ``postgres``,
``spark``).

The translator turns ADQL into a sqlglot tree that any backend could run, then asks the
backend's :class:`Rules` for the few nodes that backend needs written differently; the
stock sqlglot dialect generates the SQL (compiled sqlglot refuses Python subclasses of
its Generator, so differences are tree transforms, not generator methods). Nothing
outside these modules branches on the dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

#: Translates a child node (the translator's recursion).
Tx = Callable[[exp.Expression], exp.Expression]
#: A transform of one node type: the replacement, or None to leave the node as it is.
Rule = Callable[[exp.Expression, Tx], exp.Expression | None]
#: How a backend writes a call of a function in the translated SQL, from its (translated)
#: arguments.
FunctionRule = Callable[[list[exp.Expression]], exp.Expression]


@dataclass(frozen=True)
class Rules:
    """What one backend does differently.

    Attributes
    ----------
    dialect
        The sqlglot dialect that generates the SQL.
    nodes
        Node type -> transform, applied while translating (a subclass matches its
        nearest listed base).
    functions
        Lower-case function name -> how this backend writes a call of it, for the
        functions of the translated SQL (``log10``, the service functions of
        :func:`taphouse.engine.functions.service_functions` such as
        ``ivo_healpix_index``, ``taphouse_contains``...). A function not listed is
        called by its own name with its arguments. The one place where a backend maps a
        function.
    final
        A last pass over the translated tree, if any (after ``functions``).
    read_files
        A relation reading a list of Parquet files (the partitions of a HEALPix-
        partitioned table that a cone or polygon touches), or None where the backend
        does not read partitioned tables.
    """

    dialect: str
    nodes: Mapping[type[exp.Expression], Rule]
    functions: Mapping[str, FunctionRule] = field(default_factory=dict)
    final: Callable[[exp.Expression], None] | None = None
    read_files: Callable[[list[str]], exp.Expression] | None = None
    #: ``inline_cells(data, depth, ra, dec) -> (data', column)``: the backend wants the
    #: 3x3 HEALPix block of a per-request table's positions (an upload, a user table)
    #: computed now, as a list column ``column`` of its rows ``data'``, rather than per
    #: row by its SQL function (the crossmatch's expanded side); None: SQL function.
    inline_cells: Callable[[Any, int, str, str], tuple[Any, str]] | None = None
    #: The backend runs a crossmatch of two partitioned versions partition by partition
    #: itself: the translator gives it the relation ``taphouse_xmatch(...)`` (see
    #: :func:`taphouse.adql.spatial.pair_relation`) in place of the two tables.
    pair_join: bool = False
    #: ``file_tag([(tag, path), ...])``: an expression giving, for each row of
    #: ``read_files`` of those paths, the tag of the file it came from (None: cannot),
    #: so a partition-by-partition crossmatch reads its files in one scan; None: one
    #: scan per file, tagged by a constant.
    file_tag: Callable[[list[tuple[int, str]]], exp.Expression | None] | None = None

    def apply(self, node: exp.Expression, tx: Tx) -> exp.Expression | None:
        for cls in type(node).__mro__:
            rule = self.nodes.get(cls)  # type: ignore[call-overload]
            if rule is not None:
                return rule(node, tx)
            if cls is exp.Expression:
                return None
        return None

    def finish(self, tree: exp.Expression) -> None:
        """The backend's passes over a translated tree: ``functions``, then ``final``."""
        if self.functions:
            # children before parents (reversed breadth-first order), so an argument is
            # rewritten before the call that holds it
            for call in reversed(list(tree.find_all(exp.Anonymous))):
                write = self.functions.get(call.name.lower())
                if write is not None:
                    call.replace(write(list(call.expressions)))
        if self.final is not None:
            self.final(tree)


def rules_for(dialect: str) -> Rules:
    """The rules of a backend dialect (``duckdb``, ``postgres`` or ``spark``)."""
    if dialect == "duckdb":
        from taphouse.adql.rules.duckdb import RULES
    elif dialect == "postgres":
        from taphouse.adql.rules.postgres import RULES
    elif dialect == "spark":
        from taphouse.adql.rules.spark import RULES
    else:
        raise ValueError(f"no rules for dialect {dialect!r}")
    return RULES
