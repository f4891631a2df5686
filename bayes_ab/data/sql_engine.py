"""The warehouse engine: the aggregation queries run in a SQL database, only the aggregates come back.

Any database SQLAlchemy reaches (``postgresql+psycopg://``, ``snowflake://``, ``bigquery://``,
``redshift+psycopg2://``, ``trino://``, ``duckdb:///``) whose dialect :mod:`bayes_ab.data.dialects` writes.
The queries are those every engine runs, translated; the source (a table or the user's SELECT) enters them
as a placeholder name replaced after translation, so the user's SQL is never re-parsed or rewritten.
Statements go to the driver's cursor without parameters, so nothing in them (a ``%`` in the user's query, a
``:name``) is read as a bind parameter.
"""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from typing import Any

import pandas as pd

from bayes_ab.data.dialects import DIALECTS, quoted_name, translate
from bayes_ab.data.engine import (BOOLEAN, DATE, FLOAT, INTEGER, OTHER, STRING, TIMESTAMP, DatabaseSource, Source,
                                  Table, first_line)
from bayes_ab.data.environment import URL_VARIABLE
from bayes_ab.data.sql import quote_ident
from bayes_ab.errors import DataError

# SQLAlchemy's dialect names -> the SQL dialects the queries are translated to
SQLALCHEMY_DIALECTS = {"postgresql": "postgres", "redshift": "redshift", "snowflake": "snowflake",
                       "bigquery": "bigquery", "trino": "trino", "duckdb": "duckdb", "databricks": "spark",
                       "hive": "spark"}

# type names (lower case, without size or precision) -> kinds; the databases' own names and their aliases
_TYPE_KINDS = {
    INTEGER: ("int2", "int4", "int8", "smallint", "integer", "int", "bigint", "tinyint", "int64", "byteint",
              "hugeint", "serial", "bigserial"),
    FLOAT: ("float4", "float8", "real", "double", "double precision", "float", "float64", "numeric", "decimal",
            "number", "bignumeric"),
    BOOLEAN: ("bool", "boolean"),
    STRING: ("text", "varchar", "character varying", "char", "character", "bpchar", "string", "name"),
    DATE: ("date",),
    TIMESTAMP: ("timestamp", "timestamptz", "timestamp with time zone", "timestamp without time zone", "datetime",
                "timestamp_ntz", "timestamp_ltz", "timestamp_tz"),
}
_KIND_OF_TYPE = {name: kind for kind, names in _TYPE_KINDS.items() for name in names}


def type_kind(type_name: str) -> str:
    """The engine-neutral kind of a database type name (``numeric(10, 2)`` -> float, ``varchar(40)`` -> string).

    ``numeric`` counts as floating even with scale 0: the checks for fractional values are then kept."""
    base = type_name.lower().split("(")[0].strip()
    return _KIND_OF_TYPE.get(base, OTHER)


def masked(url: Any) -> str:
    """The URL as messages may show it: the password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:           # not a URL at all: say so without echoing what may be a secret
        return "<the database URL>"


class SQLEngine:
    """Runs the aggregation queries in a SQL database through SQLAlchemy.

    Parameters
    ----------
    url
        SQLAlchemy database URL; default: the ``BAYES_AB_DATABASE_URL`` environment variable (which keeps
        the password out of shell history and process lists).
    connect_args
        Extra arguments for the driver's ``connect`` (e.g. ``{"connect_timeout": 10}``).
    """

    name = "sql"

    def __init__(self, url: str | None = None, connect_args: dict[str, Any] | None = None) -> None:
        self.url = url or os.environ.get(URL_VARIABLE)
        self.connect_args = dict(connect_args or {})

    def open(self, source: Source) -> Table:
        """Open a :class:`~bayes_ab.data.engine.DatabaseSource` (or a table name) in the database."""
        if isinstance(source, str):
            source = DatabaseSource(table=source)
        if not isinstance(source, DatabaseSource):
            raise DataError("the SQL engine reads a database table or query (--table or the spec's query), "
                            f"not {type(source).__name__}")
        if not self.url:
            raise DataError(f"the SQL engine needs a database URL: --url, or the {URL_VARIABLE} environment variable")
        try:
            import sqlalchemy
            from sqlalchemy import exc
        except ImportError:
            raise DataError("the SQL engine needs SQLAlchemy and a driver: pip install 'bayes-ab[sql]'") from None
        where = masked(self.url)
        try:
            engine = sqlalchemy.create_engine(self.url, connect_args=self.connect_args, poolclass=sqlalchemy.pool.NullPool)
        except exc.NoSuchModuleError as error:
            raise DataError(f"{where}: no SQLAlchemy dialect or driver for this URL ({first_line(error)})") from None
        except (exc.ArgumentError, ValueError) as error:
            raise DataError(f"{where}: not a database URL ({first_line(error)})") from None
        except ImportError as error:
            raise DataError(f"{where}: the database driver is not installed ({first_line(error)})") from None
        dialect = SQLALCHEMY_DIALECTS.get(engine.dialect.name)
        if dialect is None:
            engine.dispose()
            raise DataError(f"{where}: bayes-ab cannot write SQL for {engine.dialect.name!r} databases "
                            f"(it writes {', '.join(DIALECTS)})")
        driver_error = engine.dialect.loaded_dbapi.Error
        try:
            connection = engine.raw_connection()      # the driver's own connection: statements sent as written
        except (exc.DBAPIError, driver_error) as error:
            engine.dispose()
            raise DataError(f"{where}: cannot connect ({_reason(error)})") from None
        placeholder = f"bayes_ab_source_{uuid.uuid4().hex[:8]}"
        try:
            relation = (quoted_name(source.table, dialect) if source.table is not None
                        else f"(\n{source.query.strip().rstrip(';')}\n) AS {quote_ident('bayes_ab_source')}")
        except ValueError as error:
            connection.close()
            engine.dispose()
            raise DataError(f"{source.label}: {error}") from None
        label = f"{source.label} ({where})"
        standin = quoted_name(placeholder, dialect)

        def execute(sql: str, failure: str) -> tuple[list, list]:
            """The rows and the description of one statement; a driver error is one line after ``failure``."""
            cursor = connection.cursor()
            try:
                cursor.execute(sql)
                return cursor.fetchall(), cursor.description
            except driver_error as error:
                _rollback(connection)
                raise DataError(f"{label}: {failure} ({first_line(error)})") from None
            finally:
                cursor.close()

        def run(sql: str) -> pd.DataFrame:
            text = translate(sql, dialect)
            if standin not in text:
                raise DataError(f"{label}: internal error, the query lost its source")
            rows, description = execute(text.replace(standin, relation), f"query failed on {engine.dialect.name}")
            return _numbers(pd.DataFrame(rows, columns=[column[0] for column in description]))

        def close() -> None:
            connection.close()
            engine.dispose()

        try:        # column names and kinds from the description of a query that returns no rows
            _, description = execute(f"SELECT * FROM {relation} WHERE 1 = 0", "cannot read it")
        except DataError:
            close()
            raise
        columns = {column[0]: type_kind(_type_name(column[1])) for column in description}
        return Table("sql", label, quote_ident(placeholder), columns, run, close,
                     types={column[0]: _type_name(column[1]) for column in description})


def _type_name(type_code: Any) -> str:
    """A result column's type name: PostgreSQL drivers give type OIDs, looked up in the driver's catalogue;
    others give the name itself."""
    if isinstance(type_code, str):
        return type_code
    if isinstance(type_code, int):
        try:
            from psycopg.postgres import types

            info = types.get(type_code)
            if info is not None:
                return info.name
        except ImportError:
            pass
        try:
            from psycopg2.extensions import string_types

            caster = string_types.get(type_code)
            if caster is not None:
                return caster.name.lower()
        except ImportError:
            pass
    return "unknown"


def _reason(error) -> str:
    """The driver's own first line (SQLAlchemy wraps it with the statement, which may be long)."""
    return first_line(error.orig) if getattr(error, "orig", None) is not None else first_line(error)


def _rollback(connection) -> None:
    """After a failed statement PostgreSQL refuses the next one until the transaction is rolled back."""
    try:
        connection.rollback()
    except Exception:       # the connection itself is gone: the next statement reports it
        pass


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Exact decimals (SUM of integers in PostgreSQL is NUMERIC) as floats, as the other engines give them."""
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            first = column.dropna()
            if len(first) and isinstance(first.iloc[0], Decimal):
                frame[name] = column.astype(float)
    return frame


__all__ = ["SQLEngine", "masked", "type_kind"]
