"""Policies from logs that were not randomised: labels without leakage, overlap refused when poor, and the
doubly-robust and IPW values against the known truth of a simulation built from Hillstrom's customers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayes_ab.cli import main
from bayes_ab.errors import DataError
from bayes_ab.spec import Learner
from bayes_ab.targeting.logs import LogColumns, evaluate_logged, labelled_decisions
from bayes_ab.targeting.simulated import sending_logs
from tests.conftest import EXAMPLES

FEATURES = ("history", "recency", "womens", "newbie", "score")
END = pd.Timestamp("2026-04-01")


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / "data" / "hillstrom_womens.csv")


def _label(logs, **kw):
    return labelled_decisions(logs.decisions, logs.features, logs.outcomes, FEATURES, window_days=14,
                              observed_until=kw.pop("until", END), **kw)


def test_labels_read_only_what_was_known_before_the_decision(customers):
    logs = sending_logs(customers.sample(3_000, random_state=1).reset_index(drop=True), seed=1)
    rows, notes = _label(logs, columns=LogColumns(propensity="propensity"))
    assert notes == ()
    # the snapshots written an hour after each decision reveal the outcome; the as-of join never reads them
    assert np.allclose(rows["history"], logs.features["history"][:3_000])
    assert np.allclose(rows["score"], logs.score)
    # outcomes: the visits in the window (each counts 1), not the visit two hours before the decision
    visited = logs.outcomes.iloc[: len(logs.outcomes) - 3_000]
    expected = rows["__user"].isin(visited["user"]).astype(float)
    assert np.array_equal(rows["__outcome"].to_numpy(), expected.to_numpy())


def test_open_windows_are_left_out_and_named(customers):
    logs = sending_logs(customers.head(2_000), seed=2)
    until = logs.decisions["decided_at"].min() + pd.Timedelta(days=18)
    rows, notes = _label(logs, until=until)
    closed = logs.decisions["decided_at"] + pd.Timedelta(days=14) <= until
    assert len(rows) == int(closed.sum()) < 2_000
    assert notes and "outcome window had not closed" in notes[0]


def test_bad_logs_are_refused_with_the_column(customers):
    logs = sending_logs(customers.head(500), seed=3)
    late = logs.features.assign(as_of=logs.features["as_of"] + pd.Timedelta(days=3))   # every snapshot too late
    with pytest.raises(DataError, match=r"500 decision\(s\) have no feature snapshot .* stamped before the decision"):
        labelled_decisions(logs.decisions, late, logs.outcomes, FEATURES, window_days=14, observed_until=END)
    bad = logs.decisions.assign(sent=2)
    with pytest.raises(DataError, match=r"column 'sent' must be 0/1; 500 row"):
        labelled_decisions(bad, logs.features, logs.outcomes, FEATURES, window_days=14)
    bad = logs.decisions.assign(propensity=1.0)
    with pytest.raises(DataError, match=r"column 'propensity' \(logged propensity\) must be strictly between"):
        labelled_decisions(bad, logs.features, logs.outcomes, FEATURES, window_days=14,
                           columns=LogColumns(propensity="propensity"))
    with pytest.raises(DataError, match=r"missing column 'womens' \(feature\)"):
        labelled_decisions(logs.decisions, logs.features.drop(columns="womens"), logs.outcomes, FEATURES,
                           window_days=14)


def test_overlap_counts_extreme_propensities_on_both_sides_and_kish_sizes():
    from bayes_ab.targeting.logs import Overlap

    sent = np.array([True, True, False, False])
    o = Overlap.of(np.array([0.99, 0.5, 0.5, 0.01]), sent)
    assert o.extreme_share == 0.5 and (o.minimum, o.maximum) == (0.01, 0.99)
    assert o.ess_sent == pytest.approx((1 / 0.99 + 2) ** 2 / (1 / 0.99 ** 2 + 4) / 2)
    assert o.ess_not_sent == pytest.approx((2 + 1 / 0.99) ** 2 / (4 + 1 / 0.99 ** 2) / 2)
    assert Overlap.of(np.full(4, 0.5), sent).problems() == []
    assert len(Overlap.of(np.array([0.985, 0.5, 0.5, 0.5]), sent).problems()) == 1      # 25% above 0.98


def test_the_minimum_number_of_decisions_is_200(customers):
    logs = sending_logs(customers.head(200), seed=7)
    rows, _ = _label(logs)
    assert len(rows) == 200
    with pytest.raises(DataError, match=r"199 decision\(s\) with a closed outcome window; at least 200"):
        labelled_decisions(logs.decisions.head(199), logs.features, logs.outcomes, FEATURES, window_days=14,
                           observed_until=END)


def test_poor_overlap_is_refused(customers):
    logs = sending_logs(customers.head(3_000), seed=4)
    decided = logs.decisions.assign(propensity=np.where(logs.score > 0, 0.995, 0.005),
                                    sent=(logs.score > 0).astype(int))          # a deterministic sender
    rows, _ = labelled_decisions(decided, logs.features, logs.outcomes, FEATURES, window_days=14,
                                 columns=LogColumns(propensity="propensity"), observed_until=END)
    with pytest.raises(DataError, match=r"overlap too poor .* have a propensity below 0\.02 or above 0\.98"):
        evaluate_logged(rows, FEATURES, learner=Learner.LINEAR, draws=200)


@pytest.mark.parametrize("logged", [True, False])
def test_doubly_robust_and_ipw_find_the_truth_where_the_naive_comparison_does_not(customers, logged):
    """One simulated log of 42,693 customers: sends favour the customers who visit anyway (naive difference
    about 4x the true effect). With the logged propensity, and with a cross-fitted model of it, both
    estimators' 90% intervals hold the true value of sending to everyone and to the sender's top 20%
    (benchmarks/targeting.py runs 200 such logs for the bias)."""
    logs = sending_logs(customers, seed=5)
    rows, _ = _label(logs, columns=LogColumns(propensity="propensity" if logged else None))
    unknown = rows["score"].nlargest(10).index             # the best-scored users' scores went missing
    rows.loc[unknown, "score"] = np.nan
    result = evaluate_logged(rows, FEATURES, score="score", top=(0.2,), learner=Learner.LINEAR, draws=2_000)
    assert not result.doubly_robust.assignments["score_top_0.2"][unknown].any()     # a missing score ranks last
    truth = {"treat_all": logs.effect.mean(),
             "score_top_0.2": float(np.mean(result.doubly_robust.assignments["score_top_0.2"] * logs.effect))}
    naive = rows.loc[rows["__sent"] == 1, "__outcome"].mean() - rows.loc[rows["__sent"] == 0, "__outcome"].mean()
    assert naive > 2.5 * truth["treat_all"]
    for table in (result.doubly_robust, result.ipw):
        for name, value in truth.items():
            p = table.policy(name)
            assert p.low <= value <= p.high, (table.estimator, name, p, value)
    assert result.overlap.extreme_share == 0 and result.overlap.ess_sent > 0.3


def test_policy_logs_command(customers, tmp_path, capsys):
    logs = sending_logs(customers.head(4_000), seed=6)
    paths = {}
    for name in ("decisions", "features", "outcomes"):
        paths[name] = tmp_path / f"{name}.parquet"
        getattr(logs, name).to_parquet(paths[name])
    args = ["policy-logs", "--decisions", str(paths["decisions"]), "--features", str(paths["features"]),
            "--outcomes", str(paths["outcomes"]), "--feature-columns", ",".join(FEATURES), "--window-days", "14",
            "--score", "score", "--until", "2026-04-01", "--learner", "linear"]
    assert main(args + ["--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["schema"] == "bayes-ab/offpolicy" and doc["propensity"].startswith("linear model")
    assert "send to the top 20% by score" in out.err and "overlap:" in out.err
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    from bayes_ab.documents import DOCUMENTS, schema
    registry = Registry().with_resources((schema(k)["$id"], Resource.from_contents(schema(k))) for k in DOCUMENTS)
    Draft202012Validator(schema("offpolicy"), registry=registry).validate(doc)
    assert main(args[:-6] + ["--score", "nope"]) == 2
    assert "--score 'nope': must be one of --feature-columns" in capsys.readouterr().err
    assert main(args + ["--top", "0,5"]) == 2
    assert "each share must be in (0, 1)" in capsys.readouterr().err
