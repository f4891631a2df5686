"""One translation of the canonical (DuckDB-dialect) queries into every engine's and warehouse's SQL.

The queries of :mod:`bayes_ab.aggregation.scan` are written once. sqlglot translates them; where a target lacks a
function the queries use, the expression is first rewritten into standard SQL that means the same:

- ``isnan(x)``: PostgreSQL, Redshift and Snowflake have no such function, but there NaN equals NaN, so
  ``x = CAST('NaN' AS DOUBLE)`` is the test.
- ``TRY_CAST(text AS DOUBLE)``: PostgreSQL (and Redshift) have no TRY_CAST; a text that is not a number
  would fail the whole query instead of becoming NULL, so the cast is guarded by a numeric pattern.
- ``COUNT(*) FILTER (WHERE c)``: Redshift has no FILTER clause; ``SUM(CASE WHEN c THEN 1 ELSE 0 END)``.
"""

from __future__ import annotations

from functools import lru_cache

DIALECTS: tuple[str, ...] = ("postgres", "bigquery", "snowflake", "redshift", "trino", "spark", "duckdb")
"""The dialects ``bayes-ab sql`` writes (sqlglot is imported only to translate, so naming them costs nothing)."""
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


def split_name(name: str) -> list[str]:
    """The parts of ``catalog.schema.table``: split at dots outside quotes; a part in double quotes or
    backticks is taken as written (a doubled quote inside stands for one), any other part literally.

    Raises
    ------
    ValueError
        An empty name or part, an unclosed quote, text after a closing quote, or more than three parts.
    """
    parts, current, quote, quoted, i = [], [], None, False, 0
    while i < len(name):
        ch = name[i]
        if quote is not None:
            if ch == quote and i + 1 < len(name) and name[i + 1] == quote:
                current.append(ch)
                i += 1
            elif ch == quote:
                quote = None
            else:
                current.append(ch)
        elif ch in "\"`" and not current and not quoted:
            quote, quoted = ch, True
        elif ch == ".":
            parts.append(("".join(current), quoted))
            current, quoted = [], False
        elif quoted:
            raise ValueError(f"{name!r} is not a table name (text after a closing quote)")
        else:
            current.append(ch)
        i += 1
    if quote is not None:
        raise ValueError(f"{name!r} is not a table name (a quote is not closed)")
    parts.append(("".join(current), quoted))
    if any(not text.strip() and not was_quoted for text, was_quoted in parts) or not 1 <= len(parts) <= 3:
        raise ValueError(f"{name!r} is not a table name (table, schema.table or catalog.schema.table)")
    return [text for text, _ in parts]


def quoted_name(name: str, dialect: str) -> str:
    """A table or view name in ``dialect``: ``schema.table`` split at its dots, every part quoted the dialect's
    way; a part already quoted is taken as written. Nothing in a name is read as SQL (a ``;`` or ``--`` is part
    of the identifier)."""
    from sqlglot import exp

    return ".".join(exp.to_identifier(part, quoted=True).sql(dialect=dialect) for part in split_name(name))


__all__ = ["DIALECTS", "translate", "quoted_name", "split_name"]
