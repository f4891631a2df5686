"""The novelty analysis end to end on the push-notification panel (examples/push_notification/panel.py):
known truth, a market holiday in both arms, the long-run lift in the numbers, the sentence and the report."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from bayes_ab.analysis import analyze
from bayes_ab.decision import recommend
from bayes_ab.novelty.effects import LIKELY, analyze_novelty
from bayes_ab.aggregation.panel import panel_statistics
from bayes_ab.spec import load_spec

from conftest import EXAMPLES, example_module, FAST

SPEC = EXAMPLES / "push_notification" / "novelty.yaml"


def generator():
    return example_module("push_notification/panel.py")


@pytest.fixture(scope="module")
def decaying():
    """The example: +8% in the first week settling at +1.5%, with the market holiday."""
    return analyze(load_spec(SPEC), generator().panel(), sampler=FAST)


def test_the_long_run_lift_covers_the_truth_and_novelty_is_found(decaying):
    found = decaying.effects["trades"].novelty.arm("push")
    truth = generator().LONG_RUN
    assert found.long_run_low <= truth <= found.long_run_high
    assert found.p_novelty >= LIKELY and found.likely == "novelty" and found.used
    first_week_truth = generator().true_weekly_lift(0)
    assert found.weeks[0].rel_low <= first_week_truth <= found.weeks[0].rel_high
    assert found.weeks[0].rel_lift > found.long_run


def test_the_metrics_numbers_and_decision_read_the_long_run_lift(decaying):
    effects = decaying.effects["trades"]
    found = effects.novelty.arm("push")
    row = effects.overall("push")
    assert abs(row.rel_low - found.long_run_low) < 1e-9 and abs(row.rel_high - found.long_run_high) < 1e-9
    assert "[the lift shown is the long-run lift]" in effects.model_note
    # the whole-test lift the model would have reported is larger than the long-run one
    assert found.weeks[0].observed > row.rel_lift
    # the decision runs on the long-run posterior: the fit it reads holds it, and its severe-harm check is
    # the probability computed from those draws
    from bayes_ab.decision.evidence import evidence_from_fit

    fit = decaying.fits["trades"]
    assert fit.idata.posterior.attrs["long_run_arms"] == "push"
    rec = recommend(decaying, stage=25, days=7)
    severe = next(r for r in rec.reasons if r.name == "severe harm: trades P(worse by > 10%)")
    assert severe.probability == pytest.approx(evidence_from_fit(fit, "push", 0.1).p_severe, abs=1e-12)
    assert rec.action == "advance", rec.text()


def test_the_sentence_says_where_the_lift_is_settling(decaying):
    text = " ".join(decaying.sentences())
    assert "in the first week and is settling at" in text
    assert "probability the early lift overstates the long-run effect; the numbers above are the long-run lift" in text


def test_auto_uses_the_long_run_lift_only_when_novelty_or_primacy_is_likely(decaying):
    # the example's conversion fades too little to be sure (P(novelty) about 0.93 < 0.95): the whole-test lift
    found = decaying.effects["trade_conversion"].novelty.arm("push")
    assert found.p_novelty < LIKELY and found.likely is None and not found.used
    assert "[the lift shown is the long-run lift]" not in decaying.effects["trade_conversion"].model_note
    # a lift of +40% fading to +1.5%: novelty is likely and the long-run lift is used
    strong = analyze(load_spec(SPEC), generator().panel(n_users=20_000, early=0.4, seed=3), sampler=FAST)
    found = strong.effects["trade_conversion"].novelty.arm("push")
    assert found.likely == "novelty" and found.used
    assert "[the lift shown is the long-run lift]" in strong.effects["trade_conversion"].model_note


def test_a_constant_effect_with_a_market_holiday_is_not_flagged():
    # the holiday cuts trading to a tenth in both arms on one date: the ratio does not move
    rows = generator().panel(long_run=0.03, early=0.0, seed=22, holiday_factor=0.05)
    spec = load_spec(SPEC)
    stats = panel_statistics(spec, rows)["trades"]
    found, _ = analyze_novelty(stats, spec.metric("trades"), 0.9, 20_000, 1)
    arm = found.arm("push")
    assert arm.likely is None
    assert arm.long_run_low <= 0.03 <= arm.long_run_high


def test_the_report_has_the_lift_by_week_section(decaying, tmp_path):
    from bayes_ab.report import write_report

    html = write_report(decaying, tmp_path).read_text()
    assert 'id="novelty"' in html and "Lift by week since exposure" in html
    assert html.count('aria-label="relative lift of') == 2 and "long run" in html
    # the sensitivity table sets no whole-test flat-prior lift beside a long-run one; probabilities as elsewhere
    assert "not comparable: the model's lift is the long-run lift" in html
    assert "100.0%" not in html.split('id="novelty"')[1].split("</section>")[0]


def test_summary_records_the_novelty_analysis(decaying, tmp_path):
    import json

    decaying.save(tmp_path)
    summary = json.loads((tmp_path / "push_novelty" / "summary.json").read_text())
    assert summary["novelty"]["trades"]["push"]["used"] is True
    assert len(summary["novelty"]["trades"]["push"]["weeks"]) == len(
        decaying.effects["trades"].novelty.arm("push").weeks)


def test_checkin_on_a_panel_scans_it_whole_and_records_the_look(tmp_path):
    from dataclasses import replace

    from bayes_ab.checkins import checkin

    spec = replace(load_spec(SPEC), sampler=FAST)
    done = checkin(spec, generator().panel(n_users=6000, seed=5), stage=25, days=7, models_dir=tmp_path)
    assert done.aggregation is None and done.record.look == 1
    assert done.analysis.effects["trades"].novelty is not None


def test_weekly_lifts_are_reported_for_every_observed_week(decaying):
    found = decaying.effects["trades"].novelty.arm("push")
    assert [w.week for w in found.weeks] == list(range(5))
    assert all(np.isfinite(w.observed) for w in found.weeks)


def test_a_panel_without_a_complete_week_says_the_lift_is_the_whole_tests():
    rows = generator().panel(n_users=3000, seed=8)
    rows = rows[rows["day"] <= rows["exposure_day"].min() + timedelta(days=5)]
    result = analyze(load_spec(SPEC), rows, sampler=FAST)
    effects = result.effects["trades"]
    assert effects.novelty.arms == ()
    assert any("no complete week since exposure" in w for w in effects.warnings)
    assert "Caution: no complete week since exposure" in " ".join(result.sentences())
