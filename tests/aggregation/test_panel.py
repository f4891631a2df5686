"""A daily panel's statistics against pandas on the same rows, and the checks of panel input."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_ab.aggregation import aggregate
from bayes_ab.errors import DataError, SpecError
from bayes_ab.aggregation.panel import panel_statistics, weekly_means

from conftest import make_spec

METRICS = [{"name": "trades", "family": "count", "column": "trades", "novelty": True},
           {"name": "traded", "family": "conversion", "column": "traded", "novelty": "auto"}]
START = date(2026, 3, 2)


def spec(metrics=METRICS, **extra):
    return make_spec(metrics, unit_column="user_id", day_column="exposure_day", activity_column="day", **extra)


def rows(n_users=600, seed=0, last_day=30):
    rng = np.random.default_rng(seed)
    out = []
    for user in range(n_users):
        exposed = int(rng.integers(0, 15))
        arm = "control" if rng.random() < 0.5 else "treatment"
        for d in range(exposed, last_day + 1):
            trades = int(rng.poisson(0.4))
            if trades or d == exposed:
                out.append((user, arm, START + timedelta(days=exposed), START + timedelta(days=d), trades, int(trades > 0)))
    return pd.DataFrame(out, columns=["user_id", "arm", "exposure_day", "day", "trades", "traded"])


def expected_weekly(frame: pd.DataFrame, column: str, how: str):
    """Per arm x weekly cohort: users, weekly sums and cross sums, from pandas (every user, absent weeks 0)."""
    frame = frame.assign(week=[(d - e).days // 7 for d, e in zip(frame["day"], frame["exposure_day"])])
    weeks = int(frame["week"].max()) + 1
    per_user = frame.pivot_table(index=["user_id", "arm", "exposure_day"], columns="week", values=column,
                                 aggfunc=how, fill_value=0).reindex(columns=range(weeks), fill_value=0).reset_index()
    first = frame["exposure_day"].min()
    per_user["cohort"] = [(e - first).days // 7 for e in per_user["exposure_day"]]
    return per_user, weeks


def test_weekly_sums_and_cross_sums_equal_pandas():
    frame = rows()
    stats = panel_statistics(spec(), frame)
    for name, how in (("trades", "sum"), ("traded", "max")):
        got = stats[name]
        per_user, weeks = expected_weekly(frame, name, how)
        assert got.sizes["week"] == weeks
        for (arm, cohort), users in per_user.groupby(["arm", "cohort"]):
            a = list(got["arm"].values).index(arm)
            values = users[list(range(weeks))].to_numpy(dtype=float)
            assert got["users"].values[a, cohort] == len(users)
            np.testing.assert_allclose(got["sum"].values[a, cohort], values.sum(axis=0))
            np.testing.assert_allclose(got["cross"].values[a, cohort], values.T @ values)


def test_a_cohort_week_is_complete_only_when_its_last_exposed_user_has_lived_it():
    frame = rows(last_day=30)
    got = panel_statistics(spec(), frame)["trades"]
    latest = frame.groupby(frame["exposure_day"].map(lambda e: (e - START).days // 7))["exposure_day"].max()
    last = (frame["day"].max() - START).days
    for cohort, day in latest.items():
        offset = (day - START).days
        for week in range(got.sizes["week"]):
            assert got["complete"].values[cohort, week] == (offset + 7 * (week + 1) - 1 <= last)


def test_weekly_means_and_their_covariance_are_the_sample_moments():
    frame = rows(seed=1)
    got = panel_statistics(spec(), frame)["trades"]
    mean, cov = weekly_means(got)
    per_user, weeks = expected_weekly(frame, "trades", "sum")
    users = per_user[(per_user["arm"] == "control") & (per_user["cohort"] == 0)][list(range(weeks))].to_numpy(float)
    np.testing.assert_allclose(mean[0, 0], users.mean(axis=0))
    np.testing.assert_allclose(cov[0, 0], np.cov(users.T) / len(users), atol=1e-12)


def test_per_user_totals_of_the_panel_feed_the_ordinary_statistics():
    frame = rows(seed=2)
    stats = aggregate(spec(), frame)
    totals = frame.groupby(["user_id", "arm"]).agg(trades=("trades", "sum"), traded=("traded", "max")).reset_index()
    assert int(stats["trades"]["n"].sum()) == frame["user_id"].nunique()
    for arm in ("control", "treatment"):
        mine = totals[totals["arm"] == arm]
        assert int(stats["traded"]["successes"].sel(arm=arm).sum()) == int(mine["traded"].sum())
        hist = stats["trades"]["users"].sel(arm=arm).sum("segment")
        assert float((hist * hist["value"]).sum()) == float(mine["trades"].sum())


def test_a_missing_or_negative_day_value_reaches_the_ordinary_checks():
    frame = rows(seed=3)
    frame.loc[5, "trades"] = -2
    # the checks read each user's total, so what they count is users (one user's two bad days are one)
    frame.loc[frame.index[frame["user_id"] == frame.loc[5, "user_id"]], "trades"] = -2
    with pytest.raises(DataError, match=r"column 'trades' .* has negative counts: 1 user\(s\), first in arm"):
        aggregate(spec(), frame)
    frame = rows(seed=3).astype({"trades": float})
    frame.loc[7, "trades"] = np.nan
    with pytest.raises(DataError, match="column 'trades' .* has missing values"):
        aggregate(spec(), frame)


def test_activity_before_exposure_is_refused_with_its_count():
    frame = rows(seed=4)
    frame.loc[3, "day"] = frame.loc[3, "exposure_day"] - timedelta(days=2)
    with pytest.raises(DataError, match=r"1 row\(s\) have an activity day \('day'\) before the user's exposure day"):
        panel_statistics(spec(), frame)


@pytest.mark.parametrize("metrics, extra, message", [
    (METRICS, {"activity_column": None}, "activity_column: is required by novelty"),
    ([{"name": "r", "family": "ratio", "numerator": "a", "denominator": "b", "novelty": True}], {},
     "novelty: is not available for ratio metrics"),
    ([{"name": "k", "family": "retention", "column": "c", "observed_column": "o"}], {},
     "a daily panel cannot carry retention metric 'k'"),
    ([{"name": "t", "family": "count", "column": "t", "novelty": "sometimes"}], {}, "must be true, false or auto"),
])
def test_spec_errors_name_the_field(metrics, extra, message):
    base = {"unit_column": "user_id", "day_column": "exposure_day", "activity_column": "day"} | extra
    with pytest.raises(SpecError, match=message):
        make_spec(metrics, **base)


def test_a_panel_needs_unit_ids():
    with pytest.raises(SpecError, match="unit_column: is required with activity_column"):
        make_spec(METRICS, day_column="exposure_day", activity_column="day")


def test_spark_gives_the_same_panel_statistics_and_totals_as_duckdb(spark):
    frame = rows(n_users=300, seed=6)
    on_duckdb = panel_statistics(spec(), frame)
    on_spark = panel_statistics(spec(), frame, engine=spark)
    for name in on_duckdb:
        for var in ("users", "sum", "cross", "complete"):
            np.testing.assert_array_equal(on_spark[name][var].values, on_duckdb[name][var].values, err_msg=var)
    totals_spark, totals_duckdb = aggregate(spec(), frame, engine=spark), aggregate(spec(), frame)
    for name in totals_duckdb:
        for var in totals_duckdb[name].data_vars:
            np.testing.assert_array_equal(totals_spark[name][var].values, totals_duckdb[name][var].values)


def test_spark_gives_the_same_clustered_quantile_statistics_as_duckdb(spark):
    """A quantile of the panel's rows (users as clusters): the window sums per user agree on both engines."""
    quantile = spec(METRICS + [{"name": "trades_p90", "family": "quantile", "column": "trades", "quantile": 0.9}])
    frame = rows(n_users=300, seed=7)
    on_spark, on_duckdb = aggregate(quantile, frame, engine=spark)["trades_p90"], aggregate(quantile, frame)["trades_p90"]
    xr.testing.assert_identical(on_spark, on_duckdb)
    assert float(on_duckdb["events"].sum()) == len(frame) > float(on_duckdb["n"].sum())


def test_a_user_with_two_rows_for_one_day_is_refused_not_counted_twice():
    frame = rows(seed=5)
    twice = pd.concat([frame, frame.iloc[[10, 11]]], ignore_index=True)
    with pytest.raises(DataError, match=r"2 \(user, day\) pair\(s\) have more than one row \(4 rows in all; e\.g\. "
                                        r"user '\d+'\) in columns 'user_id' and 'day'"):
        aggregate(spec(), twice)
    assert int(aggregate(spec(), frame)["trades"]["n"].sum()) == frame["user_id"].nunique()


def test_users_without_their_exposure_day_row_are_refused_with_the_count():
    """A panel built from activity alone leaves out every user who never came back; the users who did come back
    but have no exposure-day row are the visible sign of it."""
    frame = rows(seed=8)
    on_exposure = frame["day"] == frame["exposure_day"]
    later = frame.loc[~on_exposure, "user_id"].unique()
    dropped = frame[~(on_exposure & frame["user_id"].isin(later[:7]))]
    with pytest.raises(DataError, match=rf"7 of {dropped['user_id'].nunique()} user\(s\) have no row on their "
                                        r"exposure day \(e\.g\. user '\d+'; columns 'day' and 'exposure_day'\)"):
        aggregate(spec(), dropped)


def test_a_busy_panel_missing_a_whole_day_is_refused_a_quiet_one_is_not():
    frame = rows(seed=9)
    gap = START + timedelta(days=20)
    with pytest.raises(DataError, match=r"column 'day' \(activity day\) has no row at all on 1 day\(s\) between busy "
                                        r"days \(20\+ rows\): 2026-03-22; a day of the panel is missing"):
        aggregate(spec(), frame[frame["day"] != gap])
    # integer day numbers: the same check
    numbered = frame.assign(day=[(d - START).days for d in frame["day"]],
                            exposure_day=[(d - START).days for d in frame["exposure_day"]])
    with pytest.raises(DataError, match=r"on 1 day\(s\) between busy days \(20\+ rows\): 20;"):
        aggregate(spec(), numbered[numbered["day"] != 20])
    # 6 users: days with a row or two, three with none -- a small panel's quiet days, not missing data
    small = rows(n_users=6, seed=9)
    first = min(small["day"])
    assert sum(first + timedelta(days=d) not in set(small["day"]) for d in range((max(small["day"]) - first).days)) == 3
    assert int(aggregate(spec(), small)["trades"]["n"].sum()) == 6


def test_an_empty_day_beside_a_quiet_one_passes_and_many_are_listed_with_their_count():
    frame = rows(seed=9)
    # the panel's last days thinned to a handful of rows: a gap between a busy day and a quiet one is not taken as
    # missing data (the quiet side could have had none)
    late = frame["day"] >= START + timedelta(days=26)
    quiet = pd.concat([frame[~late], frame[late].groupby("day").head(5)], ignore_index=True)
    assert int(aggregate(spec(), quiet[quiet["day"] != START + timedelta(days=26)])["trades"]["n"].sum()) > 0
    # exactly 20 rows on each side is busy enough
    edge = pd.concat([frame[frame["day"] < START + timedelta(days=25)],
                      frame[frame["day"] == START + timedelta(days=27)].head(20)], ignore_index=True)
    edge = edge[edge["day"] != START + timedelta(days=24)]
    counts = edge.groupby("day").size()
    assert counts[START + timedelta(days=23)] >= 20 and counts[START + timedelta(days=27)] == 20
    with pytest.raises(DataError, match=r"on 3 day\(s\) between busy days \(20\+ rows\): 2026-03-26, 2026-03-27, "
                                        r"2026-03-28;"):
        aggregate(spec(), edge)
    wide = frame[(frame["day"] < START + timedelta(days=17)) | (frame["day"] > START + timedelta(days=22))]
    with pytest.raises(DataError, match=r"on 6 day\(s\) between busy days \(20\+ rows\): 2026-03-19, 2026-03-20, "
                                        r"2026-03-21, \.\.\.;"):
        aggregate(spec(), wide)


def test_the_calendar_checks_read_a_date_panel_without_novelty_and_leave_a_request_panel_alone():
    frame = rows(seed=10)
    plain = [{"name": "trades", "family": "count", "column": "trades"}]        # no novelty: a DATE column is a day
    with pytest.raises(DataError, match="has no row at all on 1 day"):
        aggregate(spec(plain), frame[frame["day"] != START + timedelta(days=20)])
    # rows keyed by a request number: no exposure day to find, no calendar (each user's requests numbered 0, 1, ...)
    requests = frame.assign(day=frame.groupby("user_id").cumcount() + 1000,
                            exposure_day=[(d - START).days for d in frame["exposure_day"]])
    assert int(aggregate(spec(plain), requests)["trades"]["n"].sum()) == frame["user_id"].nunique()
    # the same numbers read as days by a novelty metric: most users lack their exposure-day row
    with pytest.raises(DataError, match=r"user\(s\) have no row on their exposure day"):
        aggregate(spec(), requests)
