"""The decision scenarios in examples/: seeded data with known truth -> the action a reviewer expects.

Each scenario runs with the spec's own sampler settings (full diagnostics), so these are `slow`.
"""

from __future__ import annotations

import importlib.util

import pytest

from bayes_ab.analysis import analyze
from bayes_ab.decision import recommend
from bayes_ab.effects.retention import retention_milestones
from bayes_ab.spec import load_spec
from conftest import EXAMPLES

pytestmark = pytest.mark.slow


def scenario(name: str):
    """The example's generator module and its spec."""
    module_spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / name / "generate.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module, load_spec(EXAMPLES / name / "spec.yaml")


def test_checkout_more_buyers_smaller_baskets_rolls_back_on_revenue():
    generator, spec = scenario("checkout")
    result = analyze(spec, generator.generate())
    conversion = result.effects["purchase_conversion"].overall("one_page_checkout")
    revenue = result.effects["revenue_per_user"].overall("one_page_checkout")
    assert conversion.p_beat_control > 0.9                     # the secondary metric looks like a win
    truth = {arm: t["purchase"] * t["order_value"] for arm, t in generator.TRUTH.items()}
    true_lift = truth["one_page_checkout"] / truth["control"] - 1
    assert revenue.rel_low <= true_lift <= revenue.rel_high
    rec = recommend(result, stage=25, days=7)
    assert rec.action == "rollback" and "revenue_per_user" in rec.headline
    assert rec.deciding_check.name.startswith("primary revenue_per_user: P(beat control)")


def test_onboarding_recovers_d7_retention_mid_test_and_advances():
    generator, spec = scenario("onboarding")
    result = analyze(spec, generator.generate())
    d7 = retention_milestones(result.fits["retention_d7"]).query("day == 7").set_index("arm")
    for arm, hazard in generator.HAZARD.items():
        truth = (1 - hazard) ** 7
        assert d7.loc[arm, "low"] <= truth <= d7.loc[arm, "high"], arm
    rec = recommend(result, stage=25, days=7)
    assert (rec.action, rec.to_stage) == ("advance", 50)
    guardrails = [r for r in rec.reasons if r.name.startswith("guardrail ")]
    assert {r.name.split(":")[0] for r in guardrails} == {"guardrail crash_rate", "guardrail support_tickets"}
    assert all(r.passed for r in guardrails)


def test_group_stories_rolls_back_on_the_mute_rate_guardrail():
    generator, spec = scenario("group_stories")
    result = analyze(spec, generator.generate())
    dms = result.effects["story_dms"].overall("group_stories")
    assert dms.rel_low <= generator.LIFT["dms"] <= dms.rel_high
    mute = result.effects["mute_rate"].overall("group_stories")
    assert mute.rel_low <= generator.LIFT["muted"] <= mute.rel_high
    rec = recommend(result, stage=25, days=7)
    assert rec.action == "rollback"
    mute_check = next(r for r in rec.reasons if r.name.startswith("guardrail mute_rate"))
    assert not mute_check.passed
    cannibalization = next(r for r in rec.reasons if r.name.startswith("guardrail public_story_posts"))
    assert cannibalization.passed or cannibalization.value == "not evaluated"
