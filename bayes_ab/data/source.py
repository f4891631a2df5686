"""Open per-user or aggregated input (Parquet, CSV, pandas DataFrame) as a DuckDB view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import duckdb
import pandas as pd

from bayes_ab.data.sql import quote_literal
from bayes_ab.errors import DataError

Source = Union[str, Path, pd.DataFrame]
VIEW = "bayes_ab_input"


@dataclass(frozen=True)
class OpenedSource:
    """A source registered as the view ``VIEW`` on ``connection``, with its column types."""

    connection: duckdb.DuckDBPyConnection
    label: str
    columns: dict[str, str]
    rows: int

    def require_columns(self, wanted: dict[str, str]) -> None:
        """Raise :class:`DataError` naming every ``{column: purpose}`` that is absent."""
        missing = [f"{col!r} ({why})" for col, why in wanted.items() if col not in self.columns]
        if missing:
            raise DataError(
                f"{self.label}: missing column {', '.join(missing)}; "
                f"available: {', '.join(self.columns) or 'none'}"
            )


def open_source(source: Source, connection: duckdb.DuckDBPyConnection | None = None) -> OpenedSource:
    """Register ``source`` as a DuckDB view and describe it.

    Parameters
    ----------
    source
        Path to a ``.parquet`` or ``.csv`` file (a directory or glob of Parquet files also works),
        or a pandas DataFrame.
    connection
        DuckDB connection to use; a new in-memory one by default.

    Raises
    ------
    DataError
        Missing, empty or unreadable input.
    """
    con = connection or duckdb.connect()
    if isinstance(source, pd.DataFrame):
        label = "DataFrame"
        con.register(f"{VIEW}_df", source)
        relation = f"{VIEW}_df"
    else:
        label = str(source)
        relation = _reader(Path(source))
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {VIEW} AS SELECT * FROM {relation}")
        described = con.execute(f"DESCRIBE SELECT * FROM {VIEW}").fetchall()
        rows = con.execute(f"SELECT COUNT(*) FROM {VIEW}").fetchone()[0]
    except duckdb.Error as exc:
        raise DataError(f"{label}: cannot read input ({_first_line(exc)})") from None
    if rows == 0:
        raise DataError(f"{label}: the input has no rows")
    return OpenedSource(con, label, {name: dtype for name, dtype, *_ in described}, rows)


def _reader(path: Path) -> str:
    text = str(path)
    is_glob = any(ch in text for ch in "*?[")
    if not is_glob and not path.exists():
        raise DataError(f"{path}: data file not found")
    if not is_glob and path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if path.is_dir():
        return f"read_parquet({quote_literal(str(path / '**' / '*.parquet'))})"
    if suffix in (".parquet", ".pq"):
        return f"read_parquet({quote_literal(text)})"
    if suffix in (".csv", ".tsv", ".txt") or text.endswith(".csv.gz"):
        return f"read_csv({quote_literal(text)}, header = true)"
    raise DataError(f"{path}: unsupported file type {suffix!r} (use .parquet or .csv)")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
