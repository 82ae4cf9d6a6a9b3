"""Arithmetic that has no value is an error on every backend.

ADQL does not say what ``x / 0``, ``MOD(x, 0)``, ``LOG(0)``, ``SQRT(-1)``,
``ACOS(2)`` or ``POWER(0, -1)`` give. PostgreSQL (and so DaCHS, the ESA and GAVO
archives) refuses them with an error; DuckDB answers ``inf``, ``NaN`` or (for an
integer ``MOD``) an error of its own, Spark ``NULL`` or ``NaN``. An astronomer who
divides by a zero parallax should hear about it, the same on every backend, so the
DuckDB and Spark rules raise PostgreSQL's own messages where PostgreSQL would
(:func:`arithmetic_rules`); the PostgreSQL rules need nothing. The query fails with a
400 naming the problem. NULL stays NULL and NaN stays NaN (as in PostgreSQL).

A guard is a ``CASE`` on the argument (``x / CASE WHEN y = 0 THEN error(...) ELSE y
END``): the argument is written twice (each engine computes a repeated expression once
where it can). A constant argument in the function's domain needs none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from sqlglot import exp

from taphouse.adql.geometry import constant
from taphouse.adql.rules import Rule, Tx

DIVISION_BY_ZERO = "division by zero"
LOG_OF_ZERO = "cannot take logarithm of zero"
LOG_OF_NEGATIVE = "cannot take logarithm of a negative number"
SQRT_OF_NEGATIVE = "cannot take square root of a negative number"
OUT_OF_RANGE = "input is out of range"
ZERO_TO_NEGATIVE_POWER = "zero raised to a negative power is undefined"
NEGATIVE_TO_FRACTION = ("a negative number raised to a non-integer power yields a complex"
                        " result")
#: The messages (PostgreSQL's own words): an engine error with one of them is the
#: user's message as it is (:func:`arithmetic_error`).
ARITHMETIC_ERRORS = frozenset({DIVISION_BY_ZERO, LOG_OF_ZERO, LOG_OF_NEGATIVE,
                               SQRT_OF_NEGATIVE, OUT_OF_RANGE, ZERO_TO_NEGATIVE_POWER,
                               NEGATIVE_TO_FRACTION})

#: The backend's expression that fails the query with a message.
Fail = Callable[[str], exp.Expression]


class Check(NamedTuple):
    """A value an argument must not have: the SQL test of an argument x, the same test
    of a constant, and the message."""

    when: Callable[[exp.Expression], exp.Expression]
    holds: Callable[[float], bool]
    message: str


def arithmetic_error(sentence: str) -> str | None:
    """``sentence`` (an engine error's first sentence, its prefixes removed) if it is
    the error of a guard written here, else None."""
    text = sentence.strip().rstrip(".")
    return text if text in ARITHMETIC_ERRORS else None


def _compared(op: type[exp.Expression], to: int) -> Callable[[exp.Expression], exp.Expression]:
    return lambda x: op(this=x, expression=exp.Literal.number(to))


def _above_one(x: exp.Expression) -> exp.Expression:
    # NaN compares above every number on DuckDB and Spark: NaN stays NaN
    return exp.And(this=exp.GT(this=x.copy(), expression=exp.Literal.number(1)),
                   expression=exp.Not(this=exp.Anonymous(this="isnan", expressions=[x])))


_ZERO = Check(_compared(exp.EQ, 0), lambda v: v == 0, DIVISION_BY_ZERO)
_NEGATIVE_LOG = Check(_compared(exp.LT, 0), lambda v: v < 0, LOG_OF_NEGATIVE)
_ZERO_LOG = Check(_compared(exp.EQ, 0), lambda v: v == 0, LOG_OF_ZERO)
DIVISOR = [_ZERO]
LOGARITHM = [_NEGATIVE_LOG, _ZERO_LOG]
BASE = [*LOGARITHM, Check(_compared(exp.EQ, 1), lambda v: v == 1, DIVISION_BY_ZERO)]
SQUARE_ROOT = [Check(_compared(exp.LT, 0), lambda v: v < 0, SQRT_OF_NEGATIVE)]
SINE_OR_COSINE = [Check(_compared(exp.LT, -1), lambda v: v < -1, OUT_OF_RANGE),
                  Check(_above_one, lambda v: v > 1, OUT_OF_RANGE)]


def checked(x: exp.Expression, checks: list[Check], fail: Fail,
            value: float | None = None) -> exp.Expression:
    """``x``, failing the query with a check's message where that check holds; ``value``
    is x's constant value, if known (one that passes every check needs no guard)."""
    if value is not None and not math.isnan(value) and not any(
            c.holds(value) for c in checks):
        return x
    return exp.Case(ifs=[exp.If(this=c.when(x.copy()), true=fail(c.message)) for c in checks],
                    default=x)


def arithmetic_rules(fail: Fail) -> dict[type[exp.Expression], Rule]:
    """Node rules raising PostgreSQL's errors (see the module docstring) on a backend
    whose SQL gives a value instead; ``fail(message)`` is its expression that fails the
    query with that message (DuckDB's ``error``, Spark's ``raise_error``)."""

    def quotient(node: exp.Expression, tx: Tx) -> exp.Expression:
        divisor = checked(tx(node.expression), DIVISOR, fail, constant(node.expression))
        flags = {k: v for k, v in node.args.items() if k in ("typed", "safe")}
        return node.__class__(this=tx(node.this), expression=divisor, **flags)

    def logarithm(node: exp.Expression, tx: Tx) -> exp.Expression:
        x = node.args.get("expression")
        if isinstance(node, exp.Log) and x is not None:
            # LOG(b, x) (LOG10 parses as LOG(10, x)): PostgreSQL computes LN(x) / LN(b),
            # so a base of 1 is a division by zero
            return exp.Log(this=checked(tx(node.this), BASE, fail, constant(node.this)),
                           expression=checked(tx(x), LOGARITHM, fail, constant(x)))
        # ADQL's LOG is the natural logarithm
        return exp.Ln(this=checked(tx(node.this), LOGARITHM, fail, constant(node.this)))

    def square_root(node: exp.Expression, tx: Tx) -> exp.Expression:
        return exp.Sqrt(this=checked(tx(node.this), SQUARE_ROOT, fail, constant(node.this)))

    def inverse(node: exp.Expression, tx: Tx) -> exp.Expression:
        return node.__class__(this=checked(tx(node.this), SINE_OR_COSINE, fail,
                                           constant(node.this)))

    def power(node: exp.Expression, tx: Tx) -> exp.Expression:
        base, exponent = tx(node.this), tx(node.expression)
        b, e = constant(node.this), constant(node.expression)
        ifs = []
        if not ((b is not None and b != 0) or (e is not None and e >= 0)):
            zero = exp.and_(_compared(exp.EQ, 0)(base.copy()),
                            _compared(exp.LT, 0)(exponent.copy()))
            ifs.append(exp.If(this=zero, true=fail(ZERO_TO_NEGATIVE_POWER)))
        if not ((b is not None and b >= 0)
                or (e is not None and (not math.isfinite(e) or e.is_integer()))):
            # NaN and infinite exponents: PostgreSQL's values (NaN <> ROUND(NaN) is false)
            fraction = exp.NEQ(this=exponent.copy(), expression=exp.Round(this=exponent.copy()))
            negative = exp.and_(_compared(exp.LT, 0)(base.copy()), fraction)
            ifs.append(exp.If(this=negative, true=fail(NEGATIVE_TO_FRACTION)))
        call = exp.Pow(this=base, expression=exponent)
        return exp.Case(ifs=ifs, default=call) if ifs else call

    return {exp.Div: quotient, exp.Mod: quotient, exp.Log: logarithm, exp.Ln: logarithm,
            exp.Sqrt: square_root, exp.Acos: inverse, exp.Asin: inverse, exp.Pow: power}

