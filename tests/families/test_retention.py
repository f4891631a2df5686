"""Retention family: censoring-aware survival model vs the naive day-N flag, and bad input."""

import numpy as np
import pandas as pd
import pytest

from bayes_ab.analysis import analyze
from bayes_ab.aggregation import aggregate
from bayes_ab.families.retention import retention_milestones
from bayes_ab.errors import DataError
from bayes_ab.families.retention import kaplan_meier
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

HAZARD = {"control": 0.10, "treatment": 0.08}
SETTINGS = SamplerSettings(draws=1000, tune=1000, chains=2, seed=6)


def retention_spec(horizon=7, max_day=14):
    return make_spec([{"name": "retention", "family": "retention", "column": "churn_day",
                       "observed_column": "days_observed", "horizon": horizon, "max_day": max_day}])


def users_mid_test(n=30_000, seed=0) -> pd.DataFrame:
    """Users exposed uniformly over the last 14 days; churn day geometric; censored at today."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(list(HAZARD), n)
    observed = rng.integers(0, 15, n)
    churn = rng.geometric(np.vectorize(HAZARD.get)(arm)).astype(float)
    churn[churn > observed] = np.nan                 # not seen churning (yet)
    return pd.DataFrame({"arm": arm, "churn_day": churn, "days_observed": observed})


def test_survival_model_recovers_d7_where_the_naive_flag_is_biased():
    frame = users_mid_test()
    result = analyze(retention_spec(), frame, sampler=SETTINGS)
    effects = result.effects["retention"]
    milestones = retention_milestones(result.fits["retention"]).set_index(["day", "arm"])
    assert sorted(set(milestones.index.get_level_values("day"))) == [1, 7]   # curve ends at day 14
    for arm, hazard in HAZARD.items():
        for day in (1, 7):
            row = milestones.loc[(day, arm)]
            assert row["low"] < (1 - hazard) ** day < row["high"]
    for arm, hazard in HAZARD.items():
        truth = (1 - hazard) ** 7
        row = effects.overall(arm)
        assert row.mean_low < truth < row.mean_high, (arm, row.mean_low, truth, row.mean_high)
        # naive: "retained on day 7" among everyone exposed, counting the not-yet-observable as lost
        users = frame[frame["arm"] == arm]
        naive = np.mean((users["days_observed"] >= 7) & ~(users["churn_day"] <= 7))
        assert naive < truth - 0.15
    treatment = effects.overall("treatment")
    true_lift = (0.92 / 0.90) ** 7 - 1
    assert treatment.rel_low < true_lift < treatment.rel_high


def test_life_table_matches_a_direct_count_and_kaplan_meier():
    frame = users_mid_test(n=2000, seed=1)
    stats = aggregate(retention_spec(), frame)["retention"]
    control = frame[frame["arm"] == "control"]
    for day in (1, 5, 14):
        at_risk = ((control["days_observed"] >= day) & ~(control["churn_day"] < day)).sum()
        lost = (control["churn_day"] == day).sum()
        assert int(stats["at_risk"].sel(arm="control", day=day).sum()) == at_risk
        assert int(stats["lost"].sel(arm="control", day=day).sum()) == lost
    assert int(stats["n"].sum()) == 2000
    curve = kaplan_meier(stats["at_risk"].values[0, 0], stats["lost"].values[0, 0])
    # Kaplan-Meier by its definition, from the users themselves: the product over days of the share of users
    # still observed and retained at the start of a day who are not lost on it
    churn, observed = control["churn_day"].to_numpy(), control["days_observed"].to_numpy()
    direct, survival = [], 1.0
    for day in range(1, 15):
        at_risk = np.sum((observed >= day) & ~(churn < day))
        survival *= 1 - np.sum(churn == day) / at_risk if at_risk else 1.0
        direct.append(survival)
    np.testing.assert_allclose(curve, direct, rtol=1e-12)
    assert 0.05 < curve[6] < 0.95       # a curve that moves: the product has something to check


def test_churn_beyond_the_observation_window_is_refused():
    frame = users_mid_test(n=100)
    frame.loc[0, ["churn_day", "days_observed"]] = [9, 4]
    with pytest.raises(DataError, match=r"'churn_day'.*beyond the observation window"):
        aggregate(retention_spec(), frame)


@pytest.mark.parametrize("column,value,message", [
    ("churn_day", 0, "churn days below 1"),
    ("days_observed", -2, "negative days observed"),
    ("days_observed", np.nan, "missing values"),
])
def test_bad_retention_days_are_refused(column, value, message):
    frame = users_mid_test(n=100)
    frame.loc[3, column] = value
    with pytest.raises(DataError, match=message):
        aggregate(retention_spec(), frame)
