"""The complier analysis end to end: spec, statistics split by ``received_column`` on per-user and aggregated input,
effects overall and per segment, warnings, and where the answer is shown and stored."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from bayes_ab.aggregation.scan import ScanPlan
from bayes_ab.analysis import analyze
from bayes_ab.cli import main
from bayes_ab.compliance.effects import LOW_COMPLIANCE, analyze_compliance
from bayes_ab.compliance.statistics import received_statistics
from bayes_ab.compliance.strata import Group, strata_draws
from bayes_ab.console import render_text
from bayes_ab.data.engines import resolve_engine
from bayes_ab.errors import DataError, SpecError
from bayes_ab.report.html import write_report
from bayes_ab.spec import Compliance, SamplerSettings

from conftest import make_spec

CONJUGATE = SamplerSettings(draws=500, chains=2, seed=3, backend="conjugate")
METRICS = [{"name": "converted", "family": "conversion", "column": "converted"},
           {"name": "orders", "family": "count", "column": "orders", "role": "secondary"},
           {"name": "revenue", "family": "mean", "column": "revenue", "role": "secondary"},
           {"name": "per_visit", "family": "ratio", "numerator": "revenue", "denominator": "visits",
            "role": "secondary"}]


def users(n=8_000, seed=1, delivery=(0.5, 0.9), always=0.0):
    """Two segments whose users receive the push at different rates; only receiving it changes the outcomes."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(["new", "tenured"], n)
    arm = rng.choice(["control", "push"], n)
    share = np.where(segment == "new", *delivery)
    u = rng.random(n)
    complier = u < share
    always_taker = (u >= share) & (u < share + always)
    received = np.where(arm == "push", complier | always_taker, always_taker)
    return pd.DataFrame({
        "arm": arm, "segment": segment, "received": received.astype(int),
        "converted": (rng.random(n) < 0.1 + 0.04 * received).astype(int),
        "orders": rng.poisson(1.0 + 0.3 * received),
        "revenue": rng.gamma(2.0, 5.0, n) + 2.0 * received,
        "visits": rng.integers(1, 5, n),
    })


def spec(**extra):
    return make_spec(METRICS, segments=("segment",), arms=("control", "push"), received_column="received", **extra)


def test_every_mean_metric_gets_its_complier_effect_and_it_is_the_strata_model_on_all_users():
    data = users()
    result = analyze(spec(), data, sampler=CONJUGATE)
    assert result.effects["per_visit"].compliance is None          # a ratio is not a mean of one value per user
    found = result.effects["converted"].compliance
    assert [(r.segment, r.arm, r.is_overall) for r in found.rows] == [("overall", "push", True), ("new", "push", False),
                                                                      ("tenured", "push", False)]
    # the overall row is the strata model on the summed groups, with the same generator state: the same draws
    groups = tuple(tuple(Group(float(m.sum()), float(data.loc[m, "converted"].sum()),
                               float(data.loc[m, "converted"].sum()))
                         for m in ((data.arm == arm) & (data.received == got) for got in (0, 1)))
                   for arm in ("control", "push"))
    direct = strata_draws(np.random.default_rng(CONJUGATE.seed), *groups, binary=True, lower=0.0, upper=1.0,
                          size=CONJUGATE.chains * CONJUGATE.draws)
    overall = found.overall("push")
    assert overall.cace_abs == pytest.approx(float(np.mean(direct.cace_abs)), rel=1e-12)
    # and it agrees with the Wald estimate (ITT over the received share) within its posterior sd
    push, control = data[data.arm == "push"], data[data.arm == "control"]
    wald = (push.converted.mean() - control.converted.mean()) / push.received.mean()
    assert abs(overall.cace_abs - wald) < 0.1 * float(np.std(direct.cace_abs))
    assert overall.received == int(push.received.sum()) and overall.users == len(push)
    assert overall.complier_share == pytest.approx(push.received.mean(), abs=0.01)
    assert overall.cace_abs_low < 0.04 < overall.cace_abs_high
    assert overall.p_helps > 0.99
    assert overall.ess == CONJUGATE.chains * CONJUGATE.draws     # capped at the draws kept: 4x as many proposals


def test_compliance_that_differs_by_segment_is_warned_about_and_similar_compliance_is_not():
    differs = analyze(spec(), users(delivery=(0.3, 0.9)), sampler=CONJUGATE).effects["converted"].compliance
    assert any(re.search(r"differs between segments \(new [23]\d%, tenured (89|9[01])%\): compliers are 7\d% tenured "
                         r"against 5\d% of assigned users", w) for w in differs.warnings), differs.warnings
    similar = analyze(spec(), users(delivery=(0.8, 0.85)), sampler=CONJUGATE).effects["converted"].compliance
    assert not any("differs between segments" in w for w in similar.warnings), similar.warnings
    # just above the threshold: 55% and 90% compliance make compliers 38% new users against 50% (a shift of 0.12)
    data = users(n=30_000, delivery=(0.55, 0.9))
    near = analyze(spec(), data, sampler=CONJUGATE).effects["converted"].compliance
    push = data[data.arm == "push"]
    share = push.groupby("segment").received.mean()
    users_new = (push.segment == "new").mean()
    compliers_new = users_new * share["new"] / (users_new * share["new"] + (1 - users_new) * share["tenured"])
    # the message's numbers are the observed shares: compliance per segment, and the segment whose share among
    # compliers moved most (new users) against its share among assigned users
    expected = (f"(new {100 * share['new']:.0f}%, tenured {100 * share['tenured']:.0f}%): compliers are "
                f"{100 * compliers_new:.0f}% new against {100 * users_new:.0f}% of assigned users")
    assert any(expected in w for w in near.warnings), (expected, near.warnings)


def test_p_helps_follows_the_metrics_direction():
    """Receiving the push raises revenue: P(helps) is high when more is better, low when less is better."""
    data = users()
    more = analyze(spec(), data, sampler=CONJUGATE).effects["revenue"].compliance.overall("push")
    metrics = [dict(m, direction="decrease") if m["name"] == "revenue" else m for m in METRICS]
    less = analyze(make_spec(metrics, segments=("segment",), arms=("control", "push"), received_column="received"),
                   data, sampler=CONJUGATE).effects["revenue"].compliance.overall("push")
    assert more.p_helps > 0.99 and less.p_helps < 0.01
    assert less.cace_abs == pytest.approx(more.cace_abs)


def test_two_sided_compliance_differing_by_segment_is_read_as_complier_shares():
    """With always-takers (30% of users receive it whatever the arm), a segment's compliers are its treatment arm's
    received share minus its control arm's: 30% and 60% here, not the 60% and 90% received."""
    data = users(n=30_000, delivery=(0.3, 0.6), always=0.3)
    found = analyze(spec(compliance="two-sided"), data, sampler=CONJUGATE).effects["converted"].compliance
    warning = next(w for w in found.warnings if "differs between segments" in w)
    assert re.search(r"\(new (29|3[01])%, tenured (59|6[01])%\)", warning), warning


def test_one_segment_has_only_the_overall_row_and_each_arm_its_own():
    data = users(n=6_000).drop(columns="segment")
    data["arm"] = np.where((data.arm == "push") & (np.arange(len(data)) % 2 == 0), "email", data.arm)
    three = make_spec(METRICS[:1], arms=("control", "push", "email"), received_column="received")
    found = analyze(three, data, sampler=CONJUGATE).effects["converted"].compliance
    assert [(r.segment, r.arm) for r in found.rows] == [("overall", "push"), ("overall", "email")]
    assert found.overall("email").users == int((data.arm == "email").sum())
    assert found.overall("push").users == int((data.arm == "push").sum())


def test_low_compliance_is_warned_about():
    found = analyze(spec(), users(n=20_000, delivery=(0.1, 0.12)), sampler=CONJUGATE).effects["converted"].compliance
    assert found.overall("push").complier_share < LOW_COMPLIANCE
    assert any("are compliers: the complier effect is the effect of assignment divided by" in w
               for w in found.warnings), found.warnings
    fair = analyze(spec(), users(n=20_000, delivery=(0.28, 0.3)), sampler=CONJUGATE).effects["converted"].compliance
    assert not any("are compliers" in w for w in fair.warnings), fair.warnings


def test_a_control_user_who_received_it_is_refused_under_one_sided_compliance_and_read_under_two_sided():
    data = users(always=0.1)
    with pytest.raises(DataError, match=r"column 'received' \(received_column\): \d+ user\(s\) of the control arm "
                                        r"'control' received the treatment.*compliance: two-sided"):
        analyze(spec(), data, sampler=CONJUGATE)
    found = analyze(spec(compliance="two-sided"), data, sampler=CONJUGATE).effects["converted"].compliance
    assert found.compliance == Compliance.TWO_SIDED and "monotonicity" in found.assumptions
    push, control = data[data.arm == "push"], data[data.arm == "control"]
    first_stage = push.received.mean() - control.received.mean()
    wald = (push.converted.mean() - control.converted.mean()) / first_stage
    row = found.overall("push")
    assert row.complier_share == pytest.approx(first_stage, abs=0.01)
    assert row.cace_abs == pytest.approx(wald, abs=0.15 * (row.cace_abs_high - row.cace_abs_low))


@pytest.mark.parametrize("value, message", [
    (2, "has value '2'; it must be 0/1 or true/false"),
    (None, "has missing values"),
])
def test_a_received_value_that_is_not_0_or_1_is_refused(value, message):
    data = users(n=500)
    data["received"] = data["received"].astype(object)
    data.loc[data.index[data.arm == "push"][0], "received"] = value
    with pytest.raises(DataError, match=rf"column 'received' \(received_column\) {message}"):
        analyze(spec(), data, sampler=CONJUGATE)


def test_boolean_received_values_are_read():
    data = users(n=2_000)
    flags = data.assign(received=data["received"].astype(bool))
    stats = received_statistics(spec(), data)["converted"]
    assert received_statistics(spec(), flags)["converted"].equals(stats)


def test_aggregated_rows_give_the_same_statistics_as_per_user_rows():
    data = users(n=3_000)
    the_spec = spec()
    table = resolve_engine(None, data).open(data)
    try:
        sql = ScanPlan.for_table(the_spec, table).aggregated_rows(table.relation).sql
        assert '"received"' in sql.split("FROM")[0]                # the rows keep the received value they share
        rows = table.run(sql)
    finally:
        table.close()
    direct = received_statistics(the_spec, data)
    grouped = received_statistics(the_spec, rows, aggregated=True)
    for name, ds in direct.items():
        for var in ("n", "sum", "sumsq"):
            np.testing.assert_allclose(grouped[name][var].values, ds[var].values, rtol=1e-12)


def test_the_answer_is_in_the_sentence_the_console_the_summary_and_the_report(tmp_path):
    result = analyze(spec(), users(), sampler=CONJUGATE)
    sentences = " ".join(result.sentences())
    assert "Among the users who receive push when assigned to it (compliers," in sentences
    assert "The decision rests on the effect of assigning it." in sentences
    text = render_text(result)
    assert "changes the metric only through receiving it (received = 1; the exclusion restriction)" in text
    result.save(tmp_path / "models")
    summary = json.loads((tmp_path / "models" / "test" / "summary.json").read_text())
    stored = summary["compliance"]["converted"]
    assert stored["compliance"] == "one-sided" and stored["rows"][0]["segment"] == "overall"
    assert stored["rows"][0]["cace_abs"] == pytest.approx(result.effects["converted"].compliance.rows[0].cace_abs)
    page = write_report(result, tmp_path / "reports").read_text()
    assert 'id="compliance"' in page and "complier average causal effect" in page


@pytest.mark.parametrize("extra, message", [
    ({"compliance": "two-sided"}, "compliance: needs received_column"),
    ({"received_column": "arm"}, "received_column: 'arm' is already the arm column"),
    ({"received_column": "segment"}, "received_column: 'segment' is already a segment column"),
    ({"received_column": "converted"}, "received_column: 'converted' is a column of metric 'converted'"),
    ({"received_column": "received", "compliance": "sometimes"}, "compliance: 'sometimes' is not one of"),
])
def test_spec_errors_name_the_field(extra, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_spec(METRICS, segments=("segment",), **extra)


def test_a_spec_without_a_mean_metric_cannot_ask_for_complier_effects():
    with pytest.raises(SpecError, match="received_column: the complier effect .* the spec has none"):
        make_spec([METRICS[3]], received_column="received")


def test_no_receiver_in_the_treatment_leaves_no_complier_effect_and_says_so():
    data = users(n=1_000).assign(received=0)
    found = analyze(spec(), data, sampler=CONJUGATE).effects["converted"].compliance
    assert found.rows == () and "nobody assigned to it received it" in found.warnings[0]
    assert len(found.warnings) == 1                    # said once, for the overall scope, not per segment


def test_the_command_line_refuses_bad_received_values_in_one_line(tmp_path, capsys):
    data = users(n=500).assign(received=3)
    data.to_csv(tmp_path / "users.csv", index=False)
    (tmp_path / "spec.yaml").write_text(json.dumps({
        "name": "cli", "arms": [{"name": "control", "control": True}, {"name": "push"}], "segments": "segment",
        "received_column": "received", "metrics": METRICS[:1]}))
    code = main(["analyze", str(tmp_path / "spec.yaml"), "--data", str(tmp_path / "users.csv"),
                 "--models-dir", str(tmp_path / "models")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "column 'received' (received_column) has value '3'" in err[0]


def test_analyze_compliance_reads_each_segment_on_its_own():
    """A segment's row is the strata model on that segment's groups only."""
    data = users(n=6_000)
    stats = received_statistics(spec(), data)["revenue"]
    found = analyze_compliance(stats, spec().metric("revenue"), interval=0.9, compliance=Compliance.ONE_SIDED,
                               received_column="received", draws=4_000, seed=1)
    new = next(r for r in found.rows if r.segment == "new")
    part = data[data.segment == "new"]
    p, c = part[part.arm == "push"], part[part.arm == "control"]
    wald = (p.revenue.mean() - c.revenue.mean()) / p.received.mean()
    assert new.cace_abs == pytest.approx(wald, abs=0.1 * (new.cace_abs_high - new.cace_abs_low))
    assert new.users == len(p) and new.received == int(p.received.sum())


def test_the_independence_test_is_scipys_chi_square_without_correction():
    from scipy.stats import chi2_contingency

    from bayes_ab.compliance.effects import independence_p_value

    rng = np.random.default_rng(4)
    for columns in (2, 3, 7):
        for _ in range(20):
            table = rng.integers(1, 400, size=(2, columns))
            assert independence_p_value(table) == pytest.approx(
                chi2_contingency(table, correction=False)[1], rel=1e-9, abs=1e-300)
