"""The default engine: DuckDB, embedded, on Parquet/CSV files and pandas DataFrames."""

from __future__ import annotations

import uuid

import duckdb
import pandas as pd

from bayes_ab.data.engine import (BOOLEAN, DATE, FLOAT, INTEGER, OTHER, STRING, TIMESTAMP, DatabaseSource, Source,
                                  Table, file_input,
                                  first_line, is_spark_dataframe)
from bayes_ab.data.sql import quote_literal
from bayes_ab.errors import DataError

_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT", "UHUGEINT"}


def column_kind(duckdb_type: str) -> str:
    """The engine-neutral kind of a DuckDB column type."""
    name = duckdb_type.upper()
    if name in _INTEGER_TYPES:
        return INTEGER
    if name in ("FLOAT", "DOUBLE", "REAL") or name.startswith("DECIMAL"):
        return FLOAT
    if name == "BOOLEAN":
        return BOOLEAN
    if name == "VARCHAR":
        return STRING
    if name == "DATE":
        return DATE
    if name.startswith("TIMESTAMP"):
        return TIMESTAMP
    return OTHER


class DuckDBEngine:
    """Runs the aggregation queries in DuckDB.

    Parameters
    ----------
    connection
        Connection to use; by default each opened table gets its own in-memory connection.
    """

    name = "duckdb"

    def __init__(self, connection: duckdb.DuckDBPyConnection | None = None) -> None:
        self._connection = connection

    def open(self, source: Source) -> Table:
        """Register ``source`` as a view: a Parquet/CSV path (a directory or glob of Parquet files,
        hive-partitioned or not) or a pandas DataFrame."""
        if is_spark_dataframe(source):
            raise DataError("a Spark DataFrame is aggregated by the Spark engine (engine='spark'), not DuckDB")
        if isinstance(source, DatabaseSource):
            raise DataError(f"{source.label}: a database table is aggregated by the SQL engine (--engine sql)")
        con = self._connection or duckdb.connect()
        owned = self._connection is None
        con.execute("SET enable_progress_bar = false")      # a library does not draw on the console
        view = f"bayes_ab_input_{uuid.uuid4().hex[:8]}"
        if isinstance(source, pd.DataFrame):
            label = "DataFrame"
            con.register(f"{view}_df", source)
            relation = f"{view}_df"
        else:
            label = str(source)
            relation = _reader(source)

        def close() -> None:
            if owned:
                con.close()
            else:
                con.execute(f"DROP VIEW IF EXISTS {view}")

        try:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {relation}")
            described = con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()
        except duckdb.Error as exc:
            close()
            encoding = None if isinstance(source, pd.DataFrame) else _not_utf8(source)
            raise DataError(f"{label}: {encoding or f'cannot read input ({first_line(exc)})'}") from None
        if len(described) == 1 and not isinstance(source, pd.DataFrame):
            ragged = _ragged_csv_row(source, described[0][0])
            if ragged:
                close()
                raise DataError(f"{label}: {ragged}")

        def run(sql: str) -> pd.DataFrame:
            try:
                return con.execute(sql).df()
            except duckdb.Error as exc:
                # a CSV file is read as the query runs: a byte that is not UTF-8 past the sniffed sample fails here
                encoding = None if isinstance(source, pd.DataFrame) else _not_utf8(source)
                raise DataError(f"{label}: {encoding or f'query failed ({first_line(exc)})'}") from None

        return Table("duckdb", label, view, {name: column_kind(dtype) for name, dtype, *_ in described}, run, close,
                     types={name: str(dtype) for name, dtype, *_ in described})


def _ragged_csv_row(source, column: str) -> str | None:
    """Why a CSV file read as one column whose name holds delimiters: its first row of another width.

    DuckDB's dialect detection gives up on a file whose rows differ in field count and reads each line as
    one text column (named after the whole header line), which would surface as "missing column 'arm'".
    """
    import csv

    found = file_input(source)
    if found.folder or found.format == "parquet":
        return None
    delimiter = next((d for d in (",", ";", "\t", "|") if d in column), None)
    if delimiter is None:
        return None
    with open(found.path, newline="", encoding="utf-8", errors="replace") as handle:
        rows = csv.reader(handle, delimiter=delimiter)
        header = next(rows, [])
        for line, row in enumerate(rows, start=2):
            if row and len(row) != len(header):
                return (f"line {line} has {len(row)} field(s) but the header has {len(header)} "
                        f"({delimiter!r}-separated); every row needs one value per column")
    return None


def _not_utf8(source) -> str | None:
    """Where a CSV file stops being UTF-8 (line and byte), the encoding DuckDB reads; ``None`` when it is UTF-8
    throughout or is not one CSV file. Read in blocks, only after a read has failed."""
    import codecs

    try:
        found = file_input(source)
    except DataError:
        return None
    if found.folder or found.format != "csv" or str(found.path).endswith(".gz") or not found.path.is_file():
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(found.path, "rb") as handle:
        while block := handle.read(1 << 20):
            pending = decoder.getstate()[0]      # an unfinished character carried over from the previous block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                where = max(exc.start - len(pending), 0)
                line += block.count(b"\n", 0, where)
                return (f"line {line} is not UTF-8 (byte 0x{(pending + block)[exc.start]:02x}; the file looks like Latin-1 or "
                        "Windows-1252 text): save it as UTF-8")
            line += block.count(b"\n")
    return None


def _reader(source) -> str:
    found = file_input(source)
    if found.folder:
        return f"read_parquet({quote_literal(str(found.path / '**' / '*.parquet'))})"
    if found.format == "parquet":
        return f"read_parquet({quote_literal(str(found.path))})"
    return f"read_csv({quote_literal(str(found.path))}, header = true)"

