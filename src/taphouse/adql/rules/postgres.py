"""PostgreSQL: what the translated tree needs before sqlglot's ``postgres`` dialect
writes it (NUMERIC where ADQL means DOUBLE, CHAR padding, array subscripts)."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlglot import exp

from taphouse.adql.columns import describe
from taphouse.adql.rules import Rules, Tx
from taphouse.adql.spatial import CELL_COLUMN

_PG_TYPES = {"short": "SMALLINT", "int": "INT", "long": "BIGINT", "float": "REAL",
             "double": "DOUBLE"}


def _pg_cast(e: exp.Expression, datatype: str) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build(_PG_TYPES.get(datatype, "DOUBLE")))


def _double(e: exp.Expression) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build("DOUBLE"))


def _numeric(e: exp.Expression) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build("DECIMAL"))


#: The second column of a per-request table's HEALPix blocks: where each range ends.
HIGH_SUFFIX = "_hi"
#: The expanded side's column holding where its cell range ends (beside ``_th_cell``).
CELL_HIGH = CELL_COLUMN + HIGH_SUFFIX


def _block_ranges(tree: exp.Expression) -> set[str]:
    """Where the expanded side unnests a per-request table's precomputed blocks
    (:func:`inline_cells`: runs of adjacent cells, first cells in one column, last cells
    in ``<column>_hi``), unnest both in lockstep (``_th_cell``, ``_th_cell_hi``).
    Returns the aliases of those expanded sides."""
    aliases = set()
    for alias in list(tree.find_all(exp.Alias)):
        un = alias.this
        if not (alias.alias == CELL_COLUMN and isinstance(un, exp.Unnest)
                and len(un.expressions) == 1 and isinstance(un.expressions[0], exp.Column)
                and un.expressions[0].name.startswith("_th_nb")):
            continue
        select = alias.parent
        if not isinstance(select, exp.Select):
            continue
        col = un.expressions[0]
        high = exp.column(exp.to_identifier(col.name + HIGH_SUFFIX, quoted=True),
                          table=exp.to_identifier(col.table, quoted=True))
        select.append("expressions", exp.Alias(
            this=exp.Unnest(expressions=[high]),
            alias=exp.to_identifier(CELL_HIGH, quoted=True)))
        sub = select.parent
        if isinstance(sub, exp.Subquery) and sub.alias:
            aliases.add(sub.alias)
    return aliases


def _cell_ranges(tree: exp.Expression, ranged: set[str]) -> None:
    """A crossmatch's ``hpx >> k = cell`` (the catalogue's order-29 index against the
    expanded side's cells) as ``hpx BETWEEN cell << k AND (cell << k) + 2^k - 1``: the
    same rows (both are non-negative), but PostgreSQL probes the index's B-tree for
    each cell instead of sorting or hashing the whole catalogue by ``hpx >> k``. Where
    the expanded side has runs of cells (``ranged`` aliases), one probe per run:
    ``hpx BETWEEN cell << k AND ((cell_hi + 1) << k) - 1``, and a cell computed per row
    (the other side has no index) ``BETWEEN cell AND cell_hi``."""
    for eq in list(tree.find_all(exp.EQ)):
        shifted, cell = eq.this, eq.expression
        if not (isinstance(cell, exp.Column) and cell.name == CELL_COLUMN):
            continue
        if not (isinstance(shifted, exp.BitwiseRightShift)
                and isinstance(shifted.this, exp.Column)
                and isinstance(shifted.expression, exp.Literal)):
            if cell.table in ranged:  # a cell computed per row (the other side's)
                eq.replace(exp.Between(this=shifted.copy(), low=cell.copy(), high=exp.column(
                    exp.to_identifier(CELL_HIGH, quoted=True),
                    table=exp.to_identifier(cell.table, quoted=True))))
            continue
        k = int(shifted.expression.this)
        low = exp.BitwiseLeftShift(this=cell.copy(), expression=exp.Literal.number(k))
        high: exp.Expression = exp.Add(this=exp.Paren(this=low.copy()),
                                       expression=exp.Literal.number((1 << k) - 1))
        if cell.table in ranged:
            last = exp.column(exp.to_identifier(CELL_HIGH, quoted=True),
                              table=exp.to_identifier(cell.table, quoted=True))
            high = exp.Sub(this=exp.Paren(this=exp.BitwiseLeftShift(
                this=exp.Paren(this=exp.Add(this=last, expression=exp.Literal.number(1))),
                expression=exp.Literal.number(k))), expression=exp.Literal.number(1))
        eq.replace(exp.Between(this=shifted.this.copy(), low=low, high=high))


def runs_of_cells(block: Any) -> tuple[Any, Any, Any]:
    """Each row of ``block`` (n x 9 cells, -1 for none) as runs of adjacent cells:
    (first cells, last cells, runs per row), flat, rows in order."""
    import numpy as np

    c = np.sort(block, axis=1)
    dup = np.zeros_like(c, dtype=bool)
    dup[:, 1:] = c[:, 1:] == c[:, :-1]
    c = np.sort(np.where(dup, -1, c), axis=1)
    prev = np.full_like(c, -10)
    prev[:, 1:] = np.where(c[:, :-1] < 0, -10, c[:, :-1])
    nxt = np.full_like(c, -10)
    nxt[:, :-1] = c[:, 1:]
    valid = c >= 0
    start = valid & (prev != c - 1)
    end = valid & (nxt != c + 1)
    return c[start], c[end], start.sum(axis=1)


def inline_cells(data: Any, depth: int, ra: str, dec: str) -> tuple[Any, str]:
    """``Rules.inline_cells``: the rows of a per-request table with the 3x3 HEALPix
    block of each position at ``depth`` (the cells DuckDB's
    ``taphouse_healpix_neighbours`` gives: the same function), computed when the rows
    are copied to PostgreSQL, as runs of adjacent cells (4.5 per block on average
    instead of 9: half the index probes): ``bigint[]`` columns ``column`` (first cell of
    each run) and ``column_hi`` (last). Returns a callable giving the rows, and
    ``column``."""
    column = f"_th_nb{depth}_" + hashlib.sha1(f"{ra}\0{dec}".encode()).hexdigest()[:10]

    def rows() -> Any:
        import numpy as np
        import pyarrow as pa

        from taphouse.engine.functions import healpix_neighbours
        from taphouse.engine.postgres import arrow_table

        table = arrow_table(data() if callable(data) else data)
        if column in table.column_names:
            return table
        ra_a, dec_a = (table.column(_named(table.column_names, n)).combine_chunks()
                       for n in (ra, dec))
        cells = healpix_neighbours(pa.array(np.full(len(ra_a), depth), pa.int64()),
                                   ra_a.cast(pa.float64()), dec_a.cast(pa.float64()))
        lengths = np.asarray(cells.value_lengths().fill_null(0))
        flat = np.asarray(cells.flatten())
        block = np.full((len(cells), 9), -1, dtype=np.int64)
        block[np.arange(9)[None, :] < lengths[:, None]] = flat
        first, last, runs = runs_of_cells(block)
        offsets = pa.array(np.concatenate([[0], np.cumsum(runs)]).astype(np.int32))
        mask = cells.is_null()
        return table.append_column(column, pa.ListArray.from_arrays(
            offsets, pa.array(first, pa.int64()), mask=mask)).append_column(
            column + HIGH_SUFFIX, pa.ListArray.from_arrays(
                offsets, pa.array(last, pa.int64()), mask=mask))
    return rows, column


def _named(names: list[str], name: str) -> str:
    same = [n for n in names if n == name] or [n for n in names if n.lower() == name.lower()]
    if len(same) != 1:
        raise ValueError(f"no single column {name!r} in a per-request table")
    return same[0]


def _final(tree: exp.Expression) -> None:
    """Last PostgreSQL touches on the translated tree (literals written by the
    translator included)."""
    _cell_ranges(tree, _block_ranges(tree))
    for node in list(tree.find_all(exp.Literal, exp.Bracket)):
        if isinstance(node, exp.Literal):
            if not node.is_string and any(c in node.this for c in ".eE") and not (
                    isinstance(node.parent, exp.Cast) and node.parent.to.is_type(
                        exp.DataType.Type.DOUBLE)):
                # PostgreSQL reads 1.5 and 1e2 as NUMERIC; ADQL values with a point or
                # an exponent are approximate numbers
                node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE")))
        elif not isinstance(node.this, exp.Column | exp.Paren):
            # f(x)[1] is a syntax error there: (f(x))[1]
            node.set("this", exp.Paren(this=node.this))


def _special(node: exp.Expression, tx: Tx) -> exp.Expression | None:
    """PostgreSQL differences: functions that exist only for NUMERIC there (ROUND and
    TRUNC to n places, MOD of approximate values, LOG(b, x)) or return NUMERIC where
    ADQL's result is DOUBLE or BIGINT (AVG, SUM), and CHAR padding."""
    if isinstance(node, exp.Round | exp.Trunc):
        # NUMERIC rounds halves away from zero (ROUND(12.5) = 13), DOUBLE to even; the
        # result is cast back to the type the result metadata says
        datatype = describe(node).datatype
        decimals = node.args.get("decimals")
        rounded = node.__class__(this=_numeric(tx(node.this)),
                                 decimals=tx(decimals) if decimals is not None else None)
        return _pg_cast(rounded, datatype)
    if isinstance(node, exp.Avg | exp.Sum):
        # AVG of integers and SUM of BIGINT are NUMERIC there
        datatype = describe(node).datatype
        total = node.__class__(this=tx(node.this))
        return _pg_cast(total, datatype)
    if isinstance(node, exp.Log) and node.args.get("expression") is not None:
        # LOG(b, x) is NUMERIC-only there
        return exp.Div(this=exp.Ln(this=_double(tx(node.expression))),
                       expression=exp.Ln(this=_double(tx(node.this))))
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.CHAR):
        # CHAR(n) pads with blanks on PostgreSQL (not on DuckDB): same answers with VARCHAR
        return exp.Cast(this=tx(node.this), to=exp.DataType(
            this=exp.DataType.Type.VARCHAR, expressions=node.to.expressions))
    if isinstance(node, exp.Mod):
        datatype = describe(node).datatype
        if datatype in ("float", "double"):
            new = exp.Mod(this=_numeric(tx(node.this)), expression=_numeric(tx(node.expression)))
            return _pg_cast(new, datatype)
    return None


def _log10(args: list[exp.Expression]) -> exp.Expression:
    # LOG10 of an integer would be NUMERIC
    return exp.Anonymous(this="LOG10", expressions=[_double(args[0])])


RULES = Rules(dialect="postgres",
              nodes={t: _special for t in (exp.Round, exp.Trunc, exp.Avg, exp.Sum, exp.Log,
                                           exp.Cast, exp.Mod)},
              functions={"log10": _log10}, final=_final, inline_cells=inline_cells)
