"""Aggregation through DuckDB against an independent pandas groupby, and bad-input errors."""

import numpy as np
import pandas as pd
import pytest

from bayes_ab.aggregation import aggregate, combine
from bayes_ab.errors import DataError

from conftest import make_spec

METRICS = [{"name": "clicked", "family": "conversion", "column": "clicked"},
           {"name": "bought", "family": "conversion", "column": "bought"}]


def users(n=5000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "user_id": np.arange(n),
        "arm": rng.choice(["control", "treatment"], n),
        "region": rng.choice(["EU", "US", "APAC"], n),
        "tier": rng.choice(["free", "pro"], n),
        "clicked": rng.random(n) < 0.3,
        "bought": (rng.random(n) < 0.05).astype(int),
    })


def spec(**extra):
    return make_spec(METRICS, segments=("region", "tier"), unit_column="user_id", **extra)


def pandas_reference(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(segment=frame["region"] + " / " + frame["tier"])
    return frame.groupby(["arm", "segment"]).agg(
        n=("user_id", "size"), clicked=("clicked", "sum"), bought=("bought", "sum"))


@pytest.mark.parametrize("fmt", ["frame", "csv", "parquet"])
def test_duckdb_aggregates_equal_pandas_groupby(tmp_path, fmt):
    frame = users()
    source = frame
    if fmt == "csv":
        source = tmp_path / "u.csv"
        frame.to_csv(source, index=False)
    elif fmt == "parquet":
        source = tmp_path / "u.parquet"
        frame.to_parquet(source)
    stats = aggregate(spec(), source)
    expected = pandas_reference(frame)
    for metric in ("clicked", "bought"):
        ds = stats[metric]
        assert list(ds["arm"].values) == ["control", "treatment"]
        got = ds.to_dataframe()[["n", "successes"]]
        pd.testing.assert_series_equal(got["n"], expected["n"], check_names=False, check_dtype=False)
        pd.testing.assert_series_equal(got["successes"], expected[metric], check_names=False,
                                       check_dtype=False)


def test_no_segment_column_gives_one_segment():
    stats = aggregate(make_spec(), users().rename(columns={"clicked": "converted"}))
    assert stats["converted"].sizes["segment"] == 1
    assert int(stats["converted"]["n"].sum()) == 5000


def test_aggregates_are_additive():
    frame = users()
    first, second = frame.iloc[:2000], frame.iloc[2000:].query("region != 'APAC'")
    whole = aggregate(spec(), pd.concat([first, second]))
    parts = combine(aggregate(spec(), first)["clicked"], aggregate(spec(), second)["clicked"])
    assert parts.equals(whole["clicked"])


def test_already_aggregated_rows_are_summed():
    frame = users()
    daily = (frame.assign(day=frame.index % 3)
             .groupby(["arm", "region", "tier", "day"], as_index=False)
             .agg(users=("user_id", "size"), clicked=("clicked", "sum"), bought=("bought", "sum")))
    from_rows = aggregate(spec(), frame)
    from_aggregates = aggregate(spec(), daily, aggregated=True)
    for metric in ("clicked", "bought"):
        assert from_aggregates[metric].equals(from_rows[metric])


def test_identifiers_are_quoted():
    frame = users().rename(columns={"clicked": 'cli"cked; DROP', "region": "my region"})
    odd = make_spec([{"name": "c", "family": "conversion", "column": 'cli"cked; DROP'}],
                    segments=("my region",))
    assert int(aggregate(odd, frame)["c"]["successes"].sum()) == int(users()["clicked"].sum())


# --- bad input -------------------------------------------------------------------------------

def test_missing_column_is_named():
    with pytest.raises(DataError, match=r"missing column 'bought'"):
        aggregate(spec(), users().drop(columns="bought"))


def test_unknown_arm_is_named():
    frame = users()
    frame.loc[3, "arm"] = "treatmnet"
    with pytest.raises(DataError, match=r"arm 'treatmnet'"):
        aggregate(spec(), frame)


def test_only_one_arm_in_data():
    frame = users().query("arm == 'control'")
    with pytest.raises(DataError, match=r"only one arm \(control\)"):
        aggregate(spec(), frame)


def test_nan_in_conversion_column():
    frame = users()
    frame["bought"] = frame["bought"].astype(float)
    frame.loc[10, "bought"] = np.nan
    with pytest.raises(DataError, match=r"'bought'.*missing values.*1 row"):
        aggregate(spec(), frame)


def test_non_binary_conversion_column():
    frame = users()
    frame.loc[5, "bought"] = 3
    with pytest.raises(DataError, match=r"'bought'.*not binary.*'3'"):
        aggregate(spec(), frame)


def test_string_conversion_column():
    frame = users()
    frame["clicked"] = np.where(frame["clicked"], "yes", "no")
    with pytest.raises(DataError, match=r"'clicked'.*not binary"):
        aggregate(spec(), frame)


def test_duplicated_user_across_arms():
    frame = users()
    frame.loc[1, "user_id"] = frame.loc[0, "user_id"]
    frame.loc[1, "arm"] = "treatment" if frame.loc[0, "arm"] == "control" else "control"
    with pytest.raises(DataError, match=r"unit id '0' appears across arms \(control, treatment\)"):
        aggregate(spec(), frame)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        aggregate(spec(), path)


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("user_id,arm,region,tier,clicked,bought\n")
    with pytest.raises(DataError, match="no rows"):
        aggregate(spec(), path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        aggregate(spec(), tmp_path / "nope.parquet")


def aggregated_rows(changes=None) -> pd.DataFrame:
    rows = pd.DataFrame({"arm": ["control", "treatment"], "region": ["EU", "EU"], "tier": ["pro", "pro"],
                         "users": [100, 100], "clicked": [10, 12], "bought": [1, 2]})
    for (row, column), value in (changes or {}).items():
        rows.loc[row, column] = value
    return rows


def test_successes_exceed_trials():
    with pytest.raises(DataError, match=r"'clicked'.* is larger than the row's users .*arm 'treatment'.*'120'"):
        aggregate(spec(), aggregated_rows({(1, "clicked"): 120}), aggregated=True)


def test_negative_counts():
    with pytest.raises(DataError, match=r"'users'.*negative.*arm 'control'"):
        aggregate(spec(), aggregated_rows({(0, "users"): -5}), aggregated=True)


def test_nan_counts():
    rows = aggregated_rows()
    rows["bought"] = rows["bought"].astype(float)
    rows.loc[1, "bought"] = np.nan
    with pytest.raises(DataError, match=r"'bought'.*missing values.*arm 'treatment'"):
        aggregate(spec(), rows, aggregated=True)


def test_fractional_counts():
    rows = aggregated_rows()
    rows["clicked"] = rows["clicked"].astype(float)
    rows.loc[0, "clicked"] = 2.5
    with pytest.raises(DataError, match=r"'clicked'.*non-integer"):
        aggregate(spec(), rows, aggregated=True)


# -- hostile data (issue 17): named and refused, never an inf sum or a dropped file -------------------------


@pytest.mark.parametrize("family,column", [("count", "trades"), ("mean", "trades")])
def test_an_infinite_metric_value_is_named_with_its_column_arm_and_segment(family, column):
    frame = users(n=400)
    frame["trades"] = frame["bought"].astype(float)
    frame.loc[7, "trades"] = -np.inf
    metric = {"name": "m", "family": family, "column": column}
    with pytest.raises(DataError, match=r"column 'trades' \(metric 'm'\) has infinite values: 1 row\(s\), first in "
                                        r"arm '\w+', segment '[^']+'; e\.g\. '-inf'"):
        aggregate(make_spec(metrics=[metric], segments=["region"]), frame)


def test_a_data_folder_with_csv_files_is_refused_not_half_read(tmp_path):
    frame = users(n=400)
    frame.iloc[:200].to_parquet(tmp_path / "part-0.parquet")
    frame.iloc[200:].to_csv(tmp_path / "part-1.csv", index=False)
    with pytest.raises(DataError, match=r"the folder holds 1 CSV file\(s\) beside 1 Parquet file\(s\)"):
        aggregate(spec(), tmp_path)
    (tmp_path / "part-1.csv").unlink()
    assert int(next(iter(aggregate(spec(), tmp_path).values()))["n"].sum()) == 200


@pytest.mark.parametrize("line, fields", [("treatment,0,5", 3), ("treatment", 1)])
def test_a_ragged_csv_row_is_named_with_its_line(tmp_path, line, fields):
    # issue 17: DuckDB read the file as one column and the error said "missing column 'arm'"
    path = tmp_path / "users.csv"
    path.write_text(f"arm,converted\ncontrol,1\n{line}\ncontrol,0\ntreatment,1\n")
    spec = make_spec([{"name": "converted", "family": "conversion", "column": "converted"}])
    with pytest.raises(DataError, match=rf"users.csv: line 3 has {fields} field\(s\) but the header has 2"):
        aggregate(spec, path)


# -- impossible aggregated rows (issue 36): each row must be a possible group of users --------------------------

RATIO = [{"name": "aov", "family": "ratio", "numerator": "revenue", "denominator": "orders"}]
MEAN = [{"name": "revenue", "family": "mean", "column": "revenue"}]


def _rows(extra: dict, users=(100, 100, 50, 50)) -> pd.DataFrame:
    """Two rows per arm (one cell each), so a bad row hides inside a cell whose totals look possible."""
    return pd.DataFrame({"arm": ["control", "treatment", "control", "treatment"], "users": list(users), **extra})


@pytest.mark.parametrize("metrics, extra, users, message", [
    # more conversions than users in one row, although the cell's totals (60 <= 150) are possible
    (METRICS[:1], {"clicked": [10, 12, 50, 4]}, (100, 100, 10, 50),
     r"column 'clicked' \(metric 'clicked'\) is larger than the row's users"),
    # users = 0 with conversions
    (METRICS[:1], {"clicked": [10, 12, 3, 4]}, (100, 100, 0, 50), r"'clicked'.* is not 0 in rows with 0 users"),
    # users = 0 with a revenue sum of 1e6: the lift would move by -98.7%
    (MEAN, {"revenue": [500.0, 520.0, 1e6, 260.0], "revenue_sq": [5e3, 5.2e3, 0.0, 2.6e3]}, (100, 100, 0, 50),
     r"'revenue'.* is not 0 in rows with 0 users"),
    # a sum too large for its sum of squares: (sum y)^2 > users * sum y^2
    (MEAN, {"revenue": [500.0, 520.0, 250.0, 2600.0], "revenue_sq": [5e3, 5.2e3, 2.5e3, 2.6e3]}, (100, 100, 50, 50),
     r"'revenue'.*squared is larger than users x 'revenue_sq'.*Cauchy-Schwarz"),
    # a ratio cross-sum that breaks Cauchy-Schwarz ("per-user correlation 14.85")
    (RATIO, {"revenue": [500.0, 520.0, 250.0, 260.0], "orders": [100, 100, 50, 50],
             "revenue_sq": [5e3, 5.2e3, 2.5e3, 2.6e3], "orders_sq": [400, 400, 200, 200],
             "revenue_x_orders": [1e3, 1.04e3, 500.0, 2.5e4], "orders_zero": [0, 0, 0, 0]}, (100, 100, 50, 50),
     r"'revenue_x_orders'.*squared is larger than 'revenue_sq' x 'orders_sq'"),
    # more users with no orders than users
    (RATIO, {"revenue": [500.0, 520.0, 250.0, 260.0], "orders": [100, 100, 50, 50],
             "revenue_sq": [5e3, 5.2e3, 2.5e3, 2.6e3], "orders_sq": [400, 400, 200, 200],
             "revenue_x_orders": [1e3, 1.04e3, 500.0, 520.0], "orders_zero": [0, 0, 0, 70]}, (100, 100, 50, 50),
     r"'orders_zero'.* is larger than the row's users"),
])
def test_an_impossible_aggregated_row_is_refused_with_its_column_and_arm(metrics, extra, users, message):
    with pytest.raises(DataError, match=message) as refused:
        aggregate(make_spec(metrics), _rows(extra, users), aggregated=True)
    assert "\n" not in str(refused.value) and "arm '" in str(refused.value)


def test_possible_aggregated_rows_pass_every_row_check():
    """The rows ``bayes-ab sql`` would print for real users (sums of one group each) pass, ratio and mean."""
    rng = np.random.default_rng(4)
    rows = []
    for arm in ("control", "treatment"):
        for _ in range(3):
            orders = rng.poisson(2, 200)
            revenue = orders * rng.gamma(2, 20, 200)
            rows.append({"arm": arm, "users": 200, "revenue": revenue.sum(), "orders": orders.sum(),
                         "revenue_sq": (revenue ** 2).sum(), "orders_sq": (orders ** 2).sum(),
                         "revenue_x_orders": (revenue * orders).sum(), "orders_zero": int((orders == 0).sum())})
    stats = aggregate(make_spec(RATIO + MEAN), pd.DataFrame(rows), aggregated=True)
    assert float(stats["aov"]["n"].sum()) == 1200 and float(stats["revenue"]["n"].sum()) == 1200
