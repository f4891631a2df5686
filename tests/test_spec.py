from pathlib import Path

import pytest

from bayes_ab.errors import SpecError
from bayes_ab.spec import load_spec

from conftest import EXAMPLES, make_spec

VALID = """
name: demo
arm_column: arm
segments: region
arms:
  - {name: a, control: true, weight: 0.25}
  - {name: b, weight: 0.75}
metrics:
  - {name: conv, family: conversion, column: converted, direction: decrease, role: guardrail,
     prior: {effect_sd: 0.3}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_valid_spec_is_parsed_and_normalised(tmp_path):
    spec = load_spec(write(tmp_path, VALID))
    assert spec.arm_names == ("a", "b")
    assert spec.control.name == "a"
    assert [a.weight for a in spec.arms] == pytest.approx([0.25, 0.75])
    assert spec.segment_columns == ("region",)
    metric = spec.metric("conv")
    assert not metric.increase_is_good and metric.role == "guardrail"
    # the segments' default spread is a share of the overall effect's scale (0.4 x 0.3)
    assert metric.prior.effect_sd == 0.3 and metric.prior.heterogeneity_sd == 0.12


def test_every_example_spec_loads():
    paths = sorted(EXAMPLES.glob("*/*.yaml"))
    names = {p.relative_to(EXAMPLES).as_posix() for p in paths}
    assert {"push_notification/spec.yaml", "cookie_cats/spec.yaml", "group_stories/spec.yaml",
            "planning/checkout_button.yaml", "push_notification/novelty.yaml"} <= names
    for path in paths:
        spec = load_spec(path)
        assert spec.metrics and spec.source == str(path)


@pytest.mark.parametrize("old,new,field", [
    ("family: conversion", "family: binary", "metrics[0].family"),
    ("{name: b, weight: 0.75}", "{name: b, weight: -1}", "arms[1].weight"),
    ("column: converted,", "", "metrics[0].column"),
    ("segments: region", "segments: region\ncolour: red", "colour"),
    ("{effect_sd: 0.3}", "{effect_sd: 0}", "metrics[0].prior.effect_sd"),
    ("direction: decrease", "direction: down", "metrics[0].direction"),
])
def test_errors_name_the_file_and_field(tmp_path, old, new, field):
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_exactly_one_control(tmp_path):
    with pytest.raises(SpecError, match="exactly one arm"):
        load_spec(write(tmp_path, VALID.replace("{name: b, weight: 0.75}", "{name: b, control: true}")))


def test_one_arm_is_refused(tmp_path):
    with pytest.raises(SpecError, match="at least two arms"):
        load_spec(write(tmp_path, VALID.replace("  - {name: b, weight: 0.75}\n", "")))


def test_unsafe_yaml_is_refused(tmp_path):
    path = write(tmp_path, "!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")


def test_ramp_percent_is_treatment_exposure():
    """A stage's percent is the share of users who get the treatment; control keeps the planned ratio."""
    from conftest import make_spec

    spec = make_spec()                                   # 50/50: the 50% stage takes all traffic
    assert [spec.traffic_share(p) for p in (1, 25, 50, 100)] == [0.02, 0.5, 1.0, 1.0]
    assert spec.max_power_stage == 50
    three = make_spec(arms=("control", "a", "b"), ramp=[{"percent": 10}, {"percent": 60}, {"percent": 100}])
    assert three.traffic_share(10) == pytest.approx(0.15) and three.max_power_stage == 60
    with pytest.raises(SpecError, match=r"ramp\[1\].percent: 75% treatment exposure does not fit the planned split"):
        make_spec(ramp=[{"percent": 10}, {"percent": 75}, {"percent": 100}])


def test_a_measured_split_just_under_half_keeps_the_fifty_percent_stage():
    """Weights copied from a measured split (0.49982 treatment) carry the 50% stage, which takes all traffic; a stage a
    point beyond the share is still refused, with the share's digits."""
    from conftest import parse_spec

    raw = {"name": "t", "arm_column": "arm", "metrics": [{"name": "c", "family": "conversion", "column": "c"}],
           "arms": [{"name": "control", "control": True, "weight": 0.50018}, {"name": "b", "weight": 0.49982}]}
    spec = parse_spec(raw)
    assert spec.traffic_share(50) == 1.0 and spec.max_power_stage == 50
    raw["arms"] = [{"name": "control", "control": True, "weight": 0.51}, {"name": "b", "weight": 0.49}]
    with pytest.raises(SpecError, match=r"50% treatment exposure does not fit the planned split \(treatment arms get "
                                        r"49% of the experiment's users\)"):
        parse_spec(raw)


def test_plan_baselines_are_for_primaries_and_guardrails():
    from conftest import make_spec

    metrics = [{"name": "conv", "family": "conversion", "column": "c"},
               {"name": "crash", "family": "conversion", "column": "k", "role": "guardrail"},
               {"name": "clicks", "family": "conversion", "column": "x", "role": "secondary"}]
    spec = make_spec(metrics=metrics, plan={"daily_users": 1000, "baseline": {"conv": 0.1, "crash": 0.01}})
    assert set(spec.plan.baseline) == {"conv", "crash"}
    with pytest.raises(SpecError, match="plan.baseline.clicks: unknown field"):
        make_spec(metrics=metrics, plan={"daily_users": 1000, "baseline": {"conv": 0.1, "clicks": 0.2}})


# -- hostile specs (issue 17): one clear line, never a hang, a traceback or a silent rescaling -------------


def test_weights_that_do_not_sum_to_one_are_refused_not_rescaled(tmp_path):
    path = write(tmp_path, VALID.replace("weight: 0.25}", "weight: 0.5}").replace("weight: 0.75}", "weight: 0.7}"))
    with pytest.raises(SpecError, match=r"arms: weights must sum to 1.*got 1\.2 \(0\.5 \+ 0\.7\)"):
        load_spec(path)


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    """A "billion laughs" document: nine aliases per level expand to 9**9 values if anything walks them."""
    levels = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = VALID.replace("prior: {effect_sd: 0.3}", "prior: {effect_sd: *a8}")
    path = write(tmp_path, "\n".join(levels) + "\n" + text)
    with pytest.raises(SpecError, match="aliases") as err:
        load_spec(path)
    assert len(str(err.value)) < 300


def test_a_huge_spec_is_refused_before_parsing(tmp_path):
    path = write(tmp_path, VALID + "# " + "x" * 2_000_000 + "\n")
    with pytest.raises(SpecError, match="larger than"):
        load_spec(path)


def test_long_values_are_cut_in_error_messages(tmp_path):
    path = write(tmp_path, VALID.replace("direction: decrease", "direction: " + "down" * 5_000))
    with pytest.raises(SpecError, match="metrics\\[0\\].direction") as err:
        load_spec(path)
    assert len(str(err.value)) < 400 and "characters" in str(err.value)


def test_bytes_that_are_not_utf8_are_refused_with_their_offset(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(VALID.encode() + b"# caf\xe9\n")
    with pytest.raises(SpecError, match=r"not UTF-8 text \(byte 0xe9 at offset \d+\)"):
        load_spec(path)


@pytest.mark.parametrize("field,value,bound", [
    ("draws", 1_000_000_000_000, "100000"), ("tune", 10_000_000, "100000"), ("chains", 1000, "64"),
])
def test_sampler_settings_are_bounded(tmp_path, field, value, bound):
    path = write(tmp_path, VALID + f"sampler: {{{field}: {value}}}\n")
    with pytest.raises(SpecError, match=rf"sampler.{field}: must be an integer between 1 and {bound}"):
        load_spec(path)


def test_exact_integration_settings_are_read_and_bounded(tmp_path):
    spec = load_spec(write(tmp_path, VALID + "sampler: {exact: false, exact_draws: 20000}\n"))
    assert spec.sampler.exact is False and spec.sampler.exact_draws == 20000
    assert load_spec(write(tmp_path, VALID)).sampler.exact is True
    with pytest.raises(SpecError, match=r"sampler.exact_draws: must be an integer between 1000 and 2000000"):
        load_spec(write(tmp_path, VALID + "sampler: {exact_draws: 50}\n"))
    with pytest.raises(SpecError, match=r"sampler.exact: must be true or false, got 'yes please'"):
        load_spec(write(tmp_path, VALID + "sampler: {exact: yes please}\n"))


def test_description_hypothesis_and_owner_are_one_paragraph_each():
    spec = make_spec(description="A push at market open.", hypothesis="More users  trade\n that day.", owner="growth")
    assert spec.about() == {"description": "A push at market open.", "hypothesis": "More users trade that day.",
                            "owner": "growth"}
    assert make_spec().about() == {"description": None, "hypothesis": None, "owner": None}
    with pytest.raises(SpecError, match="description: is 2,001 characters long; at most 2,000"):
        make_spec(description="x" * 2001)
    with pytest.raises(SpecError, match="owner: must be a non-empty string"):
        make_spec(owner=["a"])
