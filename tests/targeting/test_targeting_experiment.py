"""Targeting policies on a randomised experiment: the spec section, known-truth simulations, Hillstrom's campaign,
the command line, the JSON document and the report section."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from bayes_ab.cli import main
from bayes_ab.documents import DOCUMENTS, schema
from bayes_ab.errors import DataError, SpecError
from bayes_ab.spec import Learner, load_spec
from bayes_ab.targeting.experiment import analyze_targeting
from bayes_ab.targeting.simulated import policy_experiment, segmented_experiment
from tests.conftest import EXAMPLES, make_spec

HILLSTROM = EXAMPLES / "data" / "hillstrom_womens.csv"
HILLSTROM_SPEC = EXAMPLES / "hillstrom_targeting" / "spec.yaml"
FEATURES = ["x1", "x2", "x3", "x4"]


def _spec(**targeting):
    return make_spec(targeting={"features": FEATURES, **targeting})


def test_spec_defaults_and_refusals():
    t = _spec().targeting
    assert t.metrics == ("converted",) and t.treatment == "treatment" and t.top == (0.1, 0.2, 0.5)
    assert t.helps == () and t.folds == 5 and t.learner == Learner.GBM
    with pytest.raises(SpecError, match=r"targeting\.features: 'converted' is a column of metric"):
        make_spec(targeting={"features": ["x1", "converted"]})
    with pytest.raises(SpecError, match=r"targeting\.features: 'arm' is the arm column"):
        make_spec(targeting={"features": ["arm"]})
    with pytest.raises(SpecError, match=r"targeting\.helps: needs segments"):
        _spec(helps=[0.8])
    with pytest.raises(SpecError, match=r"targeting\.top: must be numbers in \(0, 1\), got 1\.5"):
        _spec(top=[0.2, 1.5])
    with pytest.raises(SpecError, match=r"targeting\.treatment: is required with 2 treatment arms"):
        make_spec(arms=("control", "a", "b"), targeting={"features": FEATURES})
    with pytest.raises(SpecError, match=r"targeting: reads one row per randomised user"):
        make_spec(cluster_column="city", targeting={"features": FEATURES})
    with pytest.raises(SpecError, match=r"targeting\.metrics: 'nope' is not a metric"):
        _spec(metrics=["nope"])
    assert make_spec(segments=["x3"], targeting={"features": FEATURES}).targeting.helps == (0.8,)


@pytest.mark.slow
def test_top_share_value_covers_the_known_truth():
    """Known uplift: the 90% interval of the top-20% policy's value holds the truth (the mean true effect over
    the users it treats, times their share) in about 90% of experiments, and treating everyone's holds the mean
    effect. 200 experiments with the linear learner (binomial sd 2.1 points: bounds at 3 sd); the 300 of
    benchmarks/targeting.py with gradient boosting are the calibration run."""
    spec = _spec(top=[0.2], learner="linear")
    covered, inside_all = 0, 0
    runs = 200
    for seed in range(runs):
        frame, tau = policy_experiment(4_000, seed)
        table = analyze_targeting(spec, frame, draws=1_000).tables[0]
        top = table.policy("top_0.2")
        truth = float(np.mean(table.assignments["top_0.2"] * tau))
        covered += top.low <= truth <= top.high
        everyone = table.policy("treat_all")
        inside_all += everyone.low <= tau.mean() <= everyone.high
    assert 0.84 * runs <= covered <= 0.96 * runs
    assert 0.84 * runs <= inside_all <= 0.96 * runs


def test_ranking_finds_the_users_who_gain():
    frame, tau = policy_experiment(20_000, 11)
    table = analyze_targeting(_spec(top=[0.2]), frame, draws=1_000).tables[0]
    top = table.assignments["top_0.2"]
    assert tau[top].mean() > 1.5 * tau.mean()        # the top fifth gains half as much again as the average
    assert table.curve.p_qini_positive > 0.95


def test_hillstrom_top_fifth_agrees_with_the_plain_randomised_difference():
    """On the real campaign: the cross-fitted top-20% policy's doubly-robust value and the plain difference in
    means among the users it treats (times their share) agree within the value's posterior sd."""
    result = analyze_targeting(load_spec(HILLSTROM_SPEC), HILLSTROM, draws=2_000)
    for table in result.tables:
        top = table.policy("top_0.2")
        sd = (top.high - top.low) / 3.29
        assert abs(top.value - top.difference) < sd, table.metric
        assert top.treated_share == pytest.approx(0.2, abs=0.001)
    visit = result.tables[0]
    assert visit.metric == "visit" and visit.policy("treat_all").value > 0.03     # the e-mail brings visits
    assert visit.policy("treat_all").total == pytest.approx(visit.policy("treat_all").value * 1_000_000)


def test_too_few_users_and_missing_features_are_refused():
    frame, _ = policy_experiment(150, 1)
    with pytest.raises(DataError, match=r"at least 100 users in each of 'control' and 'treatment'.*smaller has"):
        analyze_targeting(_spec(), frame)
    frame, _ = policy_experiment(2_000, 1)
    with pytest.raises(DataError, match=r"missing column 'x4' \(targeting feature\)"):
        analyze_targeting(_spec(), frame.drop(columns="x4"))


def test_command_line_json_validates_and_errors_are_one_line(tmp_path, capsys):
    frame, _ = policy_experiment(3_000, 2)
    data = tmp_path / "rows.parquet"
    frame.to_parquet(data)
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": "t", "arm_column": "arm", "arms": [{"name": "control", "control": True},
                                {"name": "treatment"}], "metrics": [{"name": "converted", "family": "conversion",
                                "column": "converted"}], "targeting": {"features": FEATURES, "learner": "linear"}}))
    assert main(["target", str(spec), "--data", str(data), "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    registry = Registry().with_resources((schema(k)["$id"], Resource.from_contents(schema(k))) for k in DOCUMENTS)
    Draft202012Validator(schema("targeting"), registry=registry).validate(doc)
    assert doc["metrics"][0]["policies"][0]["name"] == "treat_all"
    assert "treat the top 20% by predicted uplift" in out.err
    assert main(["target", str(spec), "--data", str(data), "--aggregated"]) == 2
    assert "needs one row per user" in capsys.readouterr().err
    bare = tmp_path / "bare.yaml"
    bare.write_text(spec.read_text().replace(', "targeting": {"features": ["x1", "x2", "x3", "x4"], '
                                             '"learner": "linear"}', ""))
    assert main(["target", str(bare), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "targeting: is required" in err


def test_report_and_summary_carry_the_policy_table(tmp_path, fast_sampler):
    from dataclasses import replace

    from bayes_ab.analysis import analyze
    from bayes_ab.report import write_report

    frame, _ = policy_experiment(3_000, 3)
    spec = replace(_spec(learner="linear"), sampler=fast_sampler)
    result = analyze(spec, frame)
    assert result.targeting is not None
    summary = result.document()
    registry = Registry().with_resources((schema(k)["$id"], Resource.from_contents(schema(k))) for k in DOCUMENTS)
    Draft202012Validator(schema("analysis"), registry=registry).validate(json.loads(json.dumps(summary)))
    assert summary["targeting"]["metrics"][0]["metric"] == "converted"
    page = write_report(result, tmp_path).read_text()
    assert "Who should get it: targeting policies" in page and "treat the top 20% by predicted uplift" in page
    assert "converted: uplift curve (90% band)" in page and "<title>top 20%: " in page     # the figure, hoverable
    with pytest.raises(DataError, match="targeting needs one row per user"):
        agg = pd.DataFrame({"arm": ["control", "treatment"], "users": [10, 10], "converted": [1, 2]})
        analyze(spec, agg, aggregated=True)


def _segmented(n: int, seed: int) -> pd.DataFrame:
    """Three segments: +6 points in 'a' and 'b', -8 points in 'c' (a fifth of the users), on a 30% rate."""
    return segmented_experiment(n, seed, {"a": 0.06, "b": 0.06, "c": -0.08}, {"a": 0.4, "b": 0.4, "c": 0.2})


def test_a_segment_policy_that_beats_treating_everyone_names_the_segments():
    from bayes_ab.targeting.value import segment_rollout

    spec = make_spec(segments=["seg"], targeting={"features": ["noise", "seg"], "learner": "linear"})
    table = analyze_targeting(spec, _segmented(12_000, 1), draws=2_000).tables[0]
    assert table.segment_helps["c"] < 0.05 < 0.95 < min(table.segment_helps["a"], table.segment_helps["b"])
    helps = table.policy("helps_0.8")
    assert helps.treated_share == pytest.approx(0.8, abs=0.02) and helps.p_better_than_all > 0.95
    rollout = segment_rollout(table, 0.95)
    assert rollout.segments == ("a", "b") and rollout.excluded == ("c",)
    from dataclasses import replace

    def at(p_better):
        return replace(table, policies=tuple(replace(p, p_better_than_all=p_better) if p.helps else p
                                             for p in table.policies))
    assert segment_rollout(at(0.95), 0.95) is not None and segment_rollout(at(0.9499), 0.95) is None   # >=
    # no heterogeneity: no segment policy leaves users out, no targeted rollout
    same = _segmented(12_000, 2).assign(converted=lambda f: (np.random.default_rng(3).random(len(f)) <
                                                             0.3 + 0.05 * (f["arm"] == "treatment")).astype(int))
    assert segment_rollout(analyze_targeting(spec, same, draws=1_000).tables[0], 0.95) is None


def test_the_rule_turns_a_ship_into_a_targeted_rollout_from_the_policy_table():
    from bayes_ab.decision import Action, decide
    from bayes_ab.decision.checks import RuleCheck
    from bayes_ab.decision.evidence import MetricEvidence

    spec = make_spec(segments=["seg"], targeting={"features": ["noise", "seg"]})
    ev = {"converted": MetricEvidence(spec.metric("converted"), beyond_margin=np.zeros(100, bool), ess={},
                                      p_beat=0.999, loss_ship_rel=0.0001, loss_keep_rel=0.01, p_rope=0.2,
                                      p_beyond_margin=0.0, p_severe=0.0)}
    check = RuleCheck("targeting: converted segment policy P(better than treating everyone)", "x", "y", False)
    rec = decide(spec, 50, 7, 50_000, "treatment", ev, segments=("a", "b", "c"), policy_targeting=(check, ("a", "b")))
    assert rec.action == Action.SHIP and rec.targeted_segments == ("a", "b")
    assert "targeted: only a, b, by the targeting table" in rec.headline and check in rec.reasons
    plain = decide(spec, 50, 7, 50_000, "treatment", ev, segments=("a", "b", "c"), policy_targeting=(check, ()))
    assert plain.targeted_segments == () and "targeted" not in plain.headline
    harmed = decide(spec, 50, 7, 50_000, "treatment", ev, harmed_segments=("c",), segments=("a", "b", "c"),
                    policy_targeting=(check, ("a",)))
    assert harmed.targeted_segments == ("a", "b") and check not in harmed.reasons     # confident harm first


def test_early_in_a_ramp_the_analysis_goes_on_without_the_policy_tables(tmp_path, fast_sampler):
    """A check-in at 1% has too few users to cross-fit: the look is recorded with a note, not refused; a later
    look with enough users carries the tables into its summary."""
    from dataclasses import replace

    from bayes_ab.checkins import checkin

    spec = replace(_spec(learner="linear"), sampler=fast_sampler)
    small, _ = policy_experiment(120, 4)
    early = checkin(spec, small, stage=None, days=None, models_dir=tmp_path)
    assert early.analysis.targeting is None
    assert early.analysis.targeting_note.startswith("targeting not evaluated: ")
    assert "at least 100 users" in early.analysis.targeting_note
    later = checkin(spec, policy_experiment(3_000, 4)[0], stage=None, days=None, models_dir=tmp_path)
    # the later look's own folder: folder names sort by the as-of second, then by a random suffix
    summary = json.loads((tmp_path / "test" / later.record.posterior_dir / "summary.json").read_text())
    assert later.analysis.targeting is not None and summary["targeting"]["metrics"][0]["metric"] == "converted"


def test_the_rule_reads_the_primarys_segment_policies_for_the_targeting_arm():
    from types import SimpleNamespace

    from bayes_ab.decision.rules import _policy_targeting

    spec = make_spec(segments=["seg"], targeting={"features": ["noise", "seg"], "learner": "linear"})
    harmed = analyze_targeting(spec, _segmented(12_000, 1), draws=1_000)
    check, treat = _policy_targeting(SimpleNamespace(spec=spec, targeting=harmed), "treatment")
    assert treat == ("a", "b") and not check.passed and check.limit == spec.decision.targeting_better
    assert "a targeted rollout to a, b (leaving out c)" in check.detail
    assert _policy_targeting(SimpleNamespace(spec=spec, targeting=harmed), "other arm") is None
    even = segmented_experiment(12_000, 5, {"a": 0.04, "b": 0.04, "c": 0.04}, {"a": 0.4, "b": 0.4, "c": 0.2})
    check, treat = _policy_targeting(SimpleNamespace(spec=spec, targeting=analyze_targeting(spec, even, draws=1_000)),
                                     "treatment")
    assert treat == () and check.passed


def test_segments_are_named_as_the_analysis_names_them():
    """A targeted rollout names segments the analysis knows: boolean and decimal segment values read alike
    ('false / 1.5', not 'False / 1.5')."""
    from bayes_ab.aggregation import aggregate

    frame = _segmented(6_000, 2)
    frame["flag"], frame["level"] = frame["seg"] == "c", np.where(frame["seg"] == "a", 1.5, 2.0)
    spec = make_spec(segments=["flag", "level"], targeting={"features": ["noise"], "learner": "linear"})
    named = set(analyze_targeting(spec, frame, draws=200).tables[0].segment_helps)
    assert named == {str(s) for s in aggregate(spec, frame)["converted"]["segment"].values}
    assert "false / 1.5" in named
