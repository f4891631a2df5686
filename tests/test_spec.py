from pathlib import Path

import pytest

from bayes_ab.errors import SpecError
from bayes_ab.spec import load_spec

from conftest import EXAMPLES

VALID = """
name: demo
arm_column: arm
segments: region
arms:
  - {name: a, control: true, weight: 1}
  - {name: b, weight: 3}
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
    assert metric.prior.effect_sd == 0.3 and metric.prior.heterogeneity_sd == 0.2


def test_examples_specs_load():
    for path in EXAMPLES.glob("*/spec.yaml"):
        assert load_spec(path).metrics


@pytest.mark.parametrize("old,new,field", [
    ("family: conversion", "family: binary", "metrics[0].family"),
    ("{name: b, weight: 3}", "{name: b, weight: -1}", "arms[1].weight"),
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
        load_spec(write(tmp_path, VALID.replace("{name: b, weight: 3}", "{name: b, control: true}")))


def test_one_arm_is_refused(tmp_path):
    with pytest.raises(SpecError, match="at least two arms"):
        load_spec(write(tmp_path, VALID.replace("  - {name: b, weight: 3}\n", "")))


def test_unsafe_yaml_is_refused(tmp_path):
    path = write(tmp_path, "!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
