"""Small SQL helpers shared by the aggregation backends."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (column or view name), doubling embedded quotes."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote an SQL string literal, doubling embedded single quotes."""
    return "'" + str(value).replace("'", "''") + "'"
