"""One translation of the canonical (DuckDB-dialect) queries into every engine's and warehouse's SQL.

The queries of :mod:`bayes_ab.data.scan` are written once. sqlglot translates them; where a target lacks a
function the queries use, the expression is first rewritten into standard SQL that means the same:

- ``isnan(x)``: PostgreSQL, Redshift and Snowflake have no such function, but there NaN equals NaN, so
  ``x = CAST('NaN' AS DOUBLE)`` is the test.
- ``TRY_CAST(text AS DOUBLE)``: PostgreSQL (and Redshift) have no TRY_CAST; a text that is not a number
  would fail the whole query instead of becoming NULL, so the cast is guarded by a numeric pattern.
- ``COUNT(*) FILTER (WHERE c)``: Redshift has no FILTER clause; ``SUM(CASE WHEN c THEN 1 ELSE 0 END)``.
"""

from __future__ import annotations

from functools import lru_cache

from bayes_ab.engine_names import DIALECT_NAMES

DIALECTS: tuple[str, ...] = DIALECT_NAMES       # the command line offers them without importing sqlglot
CANONICAL = "duckdb"

_NAN_EQUALS_NAN = ("postgres", "redshift", "snowflake")
_NO_TRY_CAST = ("postgres", "redshift")
_NO_FILTER = ("redshift",)
NUMBER_PATTERN = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$|^\s*[-+]?(Infinity|inf|NaN)\s*$"


def _rewrite(dialect: str):
    from sqlglot import exp

    def rewrite(node):
        if isinstance(node, exp.IsNan) and dialect in _NAN_EQUALS_NAN:
            return exp.paren(exp.EQ(this=node.this, expression=exp.cast(exp.Literal.string("NaN"), "DOUBLE")))
        if isinstance(node, exp.TryCast) and dialect in _NO_TRY_CAST:
            value = node.this
            numeric = exp.RegexpLike(this=exp.cast(value.copy(), "TEXT"),
                                     expression=exp.Literal.string(NUMBER_PATTERN))
            return exp.Case(ifs=[exp.If(this=numeric, true=exp.Cast(this=value.copy(), to=node.args["to"].copy()))])
        if (isinstance(node, exp.Filter) and dialect in _NO_FILTER and isinstance(node.this, exp.Count)
                and isinstance(node.this.this, exp.Star)):
            condition = node.expression.this
            return exp.Sum(this=exp.Case(ifs=[exp.If(this=condition.copy(), true=exp.Literal.number(1))],
                                         default=exp.Literal.number(0)))
        return node

    return rewrite


@lru_cache(maxsize=1024)
def translate(sql: str, dialect: str) -> str:
    """``sql`` (canonical dialect) in ``dialect``'s SQL; unchanged for DuckDB.

    Raises
    ------
    ValueError
        An unknown dialect.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r} (choose from {', '.join(DIALECTS)})")
    if dialect == CANONICAL:
        return sql
    import sqlglot

    tree = sqlglot.parse_one(sql, read=CANONICAL).transform(_rewrite(dialect))
    return tree.sql(dialect=dialect)


def quoted_name(name: str, dialect: str) -> str:
    """A table or view name in ``dialect``: ``schema.table`` split at its dots, each part quoted, unless the
    name is already quoted in the dialect's own way (then it is parsed as written)."""
    from sqlglot import exp

    try:
        table = exp.to_table(name, dialect=dialect)
    except Exception:       # sqlglot's ParseError and TokenError: a name no dialect reads
        raise ValueError(f"{name!r} is not a table name") from None
    for part in ("catalog", "db", "this"):
        identifier = table.args.get(part)
        if isinstance(identifier, exp.Identifier):
            identifier.set("quoted", True)
    return table.sql(dialect=dialect)


__all__ = ["DIALECTS", "translate", "quoted_name"]
