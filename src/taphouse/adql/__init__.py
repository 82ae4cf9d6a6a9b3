"""ADQL 2.1: parse, check, resolve names against a scope, and translate to backend SQL.

>>> t = translate("SELECT TOP 5 ra, dec FROM gaia.source", scope)   # doctest: +SKIP
>>> t.sql, t.columns, t.limit                                         # doctest: +SKIP
"""

from taphouse.adql.errors import AdqlError
from taphouse.adql.scope import Scope, inline_name
from taphouse.adql.translator import Translation, parse, translate

__all__ = ["AdqlError", "Scope", "Translation", "inline_name", "parse", "translate"]
