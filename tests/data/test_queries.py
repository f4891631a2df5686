"""The data checks by column type: each cheap detector catches the bad value it is there for, and the
checks that a type rules out cost nothing."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from bayes_ab.aggregation import aggregate
from bayes_ab.data.engine import BOOLEAN, FLOAT, INTEGER, STRING
from bayes_ab.data.queries import Column, numeric_checks
from bayes_ab.errors import DataError

from conftest import make_spec

CONVERSION = [{"name": "converted", "family": "conversion", "column": "x"}]
COUNT = [{"name": "trades", "family": "count", "column": "x"}]
MEAN = [{"name": "revenue", "family": "mean", "column": "x"}]


def rows(values) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({"arm": ["control", "treatment"] * (n // 2) + ["control"] * (n % 2), "x": values})


@pytest.mark.parametrize("metrics, values, message", [
    (CONVERSION, [0, 1, 2, 0], r"is not binary .*: 1 row\(s\)"),                         # integer: MIN/MAX
    (CONVERSION, [0.0, 1.0, 0.5, 1.0], r"is not binary .*: 1 row\(s\)"),                 # float: counted
    (CONVERSION, ["0", "1", "yes", "1"], r"is not binary .*: 1 row\(s\).*'yes'"),        # text
    (CONVERSION, [0.0, np.nan, 1.0, 1.0], r"has missing values \(NULL/NaN\): 1 row\(s\)"),  # NaN: MAX
    (CONVERSION, pd.array([0, None, 1, 1], dtype="Int64"), r"has missing values .*: 1 row\(s\).*NULL"),
    (COUNT, [0, 3, -1, 2], r"has negative counts: 1 row\(s\)"),                          # integer: MIN
    (COUNT, [0.0, 3.0, 1.5, 2.0], r"has non-integer counts: 1 row\(s\)"),
    (COUNT, ["0", "3", "many", "2"], r"has non-numeric values: 1 row\(s\).*'many'"),
    (MEAN, ["1.5", "2", "n/a", "3"], r"has non-numeric values: 1 row\(s\).*'n/a'"),
    (MEAN, [1.5, 2.0, 2.5, 3.0] * 2 + [np.nan, 1.0], r"has missing values \(NULL/NaN\): 1 row\(s\), first in arm 'control'"),
])
def test_each_detector_catches_its_bad_value(metrics, values, message):
    with pytest.raises(DataError, match=message):
        aggregate(make_spec(metrics), rows(values))


def test_booleans_and_integers_need_no_value_checks():
    assert [c.alias for c in numeric_checks(Column("x", INTEGER), "m", "a", whole=True, minimum=0)] \
        == ["a_missing", "a_below"]
    assert [c.alias for c in numeric_checks(Column("x", BOOLEAN), "m", "a", whole=True, minimum=0)] == ["a_missing"]
    assert [c.alias for c in numeric_checks(Column("x", FLOAT), "m", "a", whole=True, minimum=0)] \
        == ["a_missing", "a_infinite", "a_below", "a_fractional"]
    assert [c.alias for c in numeric_checks(Column("x", STRING), "m", "a", whole=True, minimum=0)] \
        == ["a_missing", "a_nonnumeric", "a_infinite", "a_below", "a_fractional"]


def test_text_numbers_and_booleans_aggregate_like_numbers():
    reference = aggregate(make_spec(CONVERSION), rows([0, 1, 1, 0, 1, 1]))["converted"]
    for values in (["0", "1", "1", "0", "1", "1"], [False, True, True, False, True, True]):
        got = aggregate(make_spec(CONVERSION), rows(values))["converted"]
        assert got["successes"].values.tolist() == reference["successes"].values.tolist() == [[2], [2]]


def test_a_metric_column_that_cannot_hold_numbers_is_refused_naming_the_input_and_its_type():
    with pytest.raises(DataError, match=r"^DataFrame: column 'x' \(metric 'revenue'\) is of type DATE .*; values must be "
                                        r"numbers$"):
        aggregate(make_spec(MEAN), rows([date(2026, 1, 1), date(2026, 1, 2)]))


def test_csv_columns_of_infinities_and_timestamps_name_the_file_and_the_type(tmp_path):
    infinite = tmp_path / "inf.csv"
    infinite.write_text("arm,x\ncontrol,inf\ntreatment,inf\ncontrol,inf\ntreatment,inf\n")
    with pytest.raises(DataError, match=r"inf\.csv: column 'x' \(metric 'revenue'\) is of type DATE \(a CSV column of "
                                        r"only 'inf' or 'infinity' is read as dates"):
        aggregate(make_spec(MEAN), infinite)
    stamps = tmp_path / "stamps.csv"
    stamps.write_text("arm,x\ncontrol,2024-01-01 10:00:00\ntreatment,2024-01-01 11:00:00\n")
    with pytest.raises(DataError, match=r"stamps\.csv: column 'x' \(metric 'revenue'\) is of type TIMESTAMP; values"):
        aggregate(make_spec(MEAN), stamps)


@pytest.mark.parametrize("rows_before", [0, 40_000])
def test_a_csv_file_that_is_not_utf8_names_the_line_and_the_byte(tmp_path, rows_before):
    """Latin-1 text in the sniffed sample fails when the file is opened, further down when it is read: both say so."""
    path = tmp_path / "latin1.csv"
    lines = ["arm,converted,city"] + ["control,1,A", "treatment,0,B"] * (rows_before // 2)
    path.write_bytes(("\n".join(lines) + "\n").encode() + "control,1,M\u00fcnchen\ntreatment,0,K\u00f6ln\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"latin1\.csv: line {rows_before + 2} is not UTF-8 \(byte 0xfc; .*save it as UTF-8$"):
        aggregate(make_spec(segments=("city",)), path)


def test_a_sum_that_overflows_is_named_in_words_with_its_cell():
    spec = make_spec([{"name": "r", "family": "ratio", "numerator": "num", "denominator": "den"}])
    frame = pd.DataFrame({"arm": ["control", "treatment"] * 3, "num": [1e200, 1, 2, 3, 4, 5], "den": [1, 1, 2, 2, 3, 3]})
    with pytest.raises(DataError, match=r"^metric 'r': the sum of the squared numerators is inf in arm 'control', "
                                        r"segment 'all users': the values are too large"):
        aggregate(spec, frame)
