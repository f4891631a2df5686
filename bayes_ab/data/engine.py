"""Where aggregation queries run: the engine interface, opened tables and column kinds.

Queries are written once, in DuckDB's SQL dialect (:mod:`bayes_ab.data.queries`,
:mod:`bayes_ab.aggregation.scan`). An engine opens a source as a :class:`Table` and runs those queries
on it, translating them to its own dialect when it needs to (Spark does, with sqlglot). The engines are
registered by name in :mod:`bayes_ab.data.engines`, above the three implementations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Union

import pandas as pd

from bayes_ab.errors import DataError



@dataclass(frozen=True)
class DatabaseSource:
    """Rows that live in a database, read by the SQL engine: a table or view by name (``schema.table`` is
    split at the dot; a quoted name is taken as written), or a SELECT in the database's own dialect."""

    table: str | None = None
    query: str | None = None

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise DataError("a database source is a table name or a query, exactly one of them")
        if self.query is not None and not self.query.strip():
            raise DataError("the database query is empty")

    @property
    def label(self) -> str:
        """How messages name it."""
        if self.table is not None:
            return f"table {self.table}"
        text = " ".join(self.query.split())
        return f"query ({text[:60]}" + ("…)" if len(text) > 60 else ")")


Source = Union[str, Path, pd.DataFrame, DatabaseSource, Any]      # Any: a Spark DataFrame

# Engine-neutral column kinds; the queries pick their cheapest correct SQL by kind.
INTEGER, FLOAT, BOOLEAN, STRING, DATE, OTHER = "integer", "float", "boolean", "string", "date", "other"
TIMESTAMP = "timestamp"     # a point in time (a switchback's rows are placed in periods by it)
NUMERIC_KINDS = (INTEGER, FLOAT, BOOLEAN)


@dataclass(frozen=True)
class Table:
    """A source opened by an engine: ``relation`` names it in SQL, ``run`` executes one query.

    ``run`` takes SQL in the canonical (DuckDB) dialect and returns the result as a DataFrame;
    ``close`` releases what opening it created (a view, a connection). ``panel_rows``: for a panel's per-user
    totals, the relation of the panel's own rows (metrics of the rows themselves read it).
    """

    engine: str
    label: str
    relation: str
    columns: dict[str, str]                   # column name -> kind (INTEGER, FLOAT, ...)
    run: Callable[[str], pd.DataFrame]
    close: Callable[[], None]
    panel_rows: str | None = None
    types: dict[str, str] = field(default_factory=dict)   # column name -> the engine's own type name, for messages

    def require_columns(self, wanted: dict[str, str]) -> None:
        """Raise :class:`DataError` naming every ``{column: purpose}`` that is absent."""
        missing = [f"{col!r} ({why})" for col, why in wanted.items() if col not in self.columns]
        if missing:
            raise DataError(
                f"{self.label}: missing column {', '.join(missing)}; "
                f"available: {', '.join(self.columns) or 'none'}"
            )

    def kind(self, column: str) -> str:
        """The kind of ``column`` (which must exist)."""
        return self.columns[column]


class Engine(Protocol):
    """Opens sources as :class:`Table` objects. Implementations: DuckDB (default) and Spark."""

    name: str

    def open(self, source: Source) -> Table:
        """Open ``source`` (a path, a pandas DataFrame, or the engine's own DataFrame)."""
        ...


def is_spark_dataframe(source: object) -> bool:
    """True for a ``pyspark.sql.DataFrame`` (checked without importing pyspark)."""
    return any(cls.__module__.startswith("pyspark.sql") and cls.__name__ == "DataFrame"
               for cls in type(source).__mro__)


@dataclass(frozen=True)
class FileInput:
    """A validated input path: ``format`` is ``"parquet"`` or ``"csv"``; ``folder`` for a directory."""

    path: Path
    format: str
    folder: bool = False


def file_input(path: str | Path) -> FileInput:
    """Check that ``path`` (file, directory of Parquet files, or glob) exists and has a known type."""
    path = Path(path)
    text = str(path)
    is_glob = any(ch in text for ch in "*?[")
    if not is_glob and not path.exists():
        raise DataError(f"{path}: data file not found")
    if path.is_dir():
        return _folder_input(path)
    if not is_glob and path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return FileInput(path, "parquet")
    if suffix in (".csv", ".tsv", ".txt") or text.endswith(".csv.gz"):
        return FileInput(path, "csv")
    raise DataError(f"{path}: unsupported file type {suffix!r} (use .parquet or .csv)")


PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz")


def _folder_input(path: Path) -> FileInput:
    """A folder of Parquet files (a partitioned dataset). CSV files beside them would be left out of the
    analysis without a word, so a folder holding any is refused; other files (``_SUCCESS``, ``.crc``) are
    the writers' bookkeeping and are ignored."""
    names = [p.name.lower() for p in path.rglob("*") if p.is_file()]
    parquet = sum(name.endswith(PARQUET_SUFFIXES) for name in names)
    csv = sum(name.endswith(CSV_SUFFIXES) for name in names)
    if csv:
        found = f"{csv} CSV file(s)" + (f" beside {parquet} Parquet file(s)" if parquet else "")
        raise DataError(f"{path}: the folder holds {found}; a data folder is read as Parquet only, so give one "
                        f"CSV file, or a glob such as {path / '*.csv'}")
    if not parquet:
        raise DataError(f"{path}: the folder holds no Parquet files")
    return FileInput(path, "parquet", folder=True)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (engines' messages can run to pages)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
