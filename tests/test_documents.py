"""Machine-readable output: the versioned documents of analyze, checkin and history, validated against the JSON
Schemas the package ships, the same summary.json in the results folder and every look's folder, and one formatter
for a loss wherever it is printed."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from bayes_ab.cli import main
from bayes_ab.documents import DOCUMENTS, document, dumps, json_ready, schema

REGISTRY = Registry().with_resources(
    (schema(kind)["$id"], Resource.from_contents(schema(kind))) for kind in DOCUMENTS)


def validate(kind: str, doc: dict) -> None:
    Draft202012Validator(schema(kind), registry=REGISTRY).validate(doc)


def strict(text: str) -> dict:
    """Parse JSON refusing NaN and infinities, as strict parsers do."""
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def experiment(tmp_path):
    rng = np.random.default_rng(4)
    n = 6_000
    arm = rng.choice(["control", "push"], n)
    received = (arm == "push") & (rng.random(n) < 0.8)
    pd.DataFrame({"arm": arm, "tenure": rng.choice(["new", "old"], n), "received": received.astype(int),
                  "converted": (rng.random(n) < 0.10 + 0.02 * received).astype(int),
                  "opted_out": (rng.random(n) < 0.02).astype(int)}).to_csv(tmp_path / "users.csv", index=False)
    (tmp_path / "spec.yaml").write_text(json.dumps({
        "name": "docs", "arms": [{"name": "control", "control": True}, {"name": "push"}], "segments": "tenure",
        "received_column": "received",
        "metrics": [{"name": "converted", "family": "conversion", "column": "converted"},
                    {"name": "opt_out", "family": "conversion", "column": "opted_out", "role": "guardrail",
                     "direction": "decrease"}],
        "sampler": {"backend": "conjugate", "draws": 500, "chains": 2, "seed": 1}}))
    return tmp_path


def in_points(loss: float) -> str:
    """A conversion loss as every output prints it, written out here: percentage points with two decimals, or two
    significant digits below 0.1."""
    points = loss * 100
    return f"{points:.{2 if points >= 0.1 else 1 - math.floor(math.log10(points))}f}"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_analyze_json_is_one_valid_document_on_stdout_and_the_text_goes_to_stderr(experiment, capsys):
    code, out, err = run(capsys, "analyze", str(experiment / "spec.yaml"), "--data", str(experiment / "users.csv"),
                         "--models-dir", str(experiment / "models"), "--stage", "5", "--days", "2", "--json")
    assert code == 0
    doc = strict(out)                         # the whole of stdout is the document
    validate("analysis", doc)
    assert doc["schema"] == "bayes-ab/analysis" and doc["schema_version"] == 1
    assert "Experiment docs" in err and "Recommendation:" in err
    assert doc["recommendation"]["action"] in ("hold", "advance", "rollback")
    overall = next(r for r in doc["metrics"]["converted"]["effects"] if r["is_overall"] and r["arm"] == "push")
    control = next(r for r in doc["metrics"]["converted"]["effects"] if r["is_overall"] and r["arm"] == "control")
    assert control["rel_lift"] is None                                  # no NaN in strict JSON
    assert doc["metrics"]["converted"]["compliance"]["rows"][0]["segment"] == "overall"
    assert doc["metrics"]["opt_out"]["margin"] == pytest.approx(0.02)
    # summary.json holds the same document (without the outputs written)
    stored = strict((experiment / "models" / "docs" / "summary.json").read_text())
    validate("analysis", stored)
    assert {k: v for k, v in doc.items() if k != "outputs"} == stored
    assert str(experiment / "models" / "docs" / "summary.json") in doc["outputs"]["written"]
    assert overall["loss_ship_abs"] == stored["metrics"]["converted"]["effects"][1]["loss_ship_abs"]


def test_checkin_and_history_json_validate_and_each_look_folder_holds_the_summary(experiment, capsys):
    models = experiment / "models"
    docs = []
    for day, as_of in ((1, "2026-05-01"), (2, "2026-05-02")):
        code, out, err = run(capsys, "checkin", str(experiment / "spec.yaml"), "--data",
                             str(experiment / "users.csv"), "--models-dir", str(models), "--stage", "5", "--days",
                             str(day), "--as-of", as_of, "--json")
        assert code == 0 and "recorded look" in err
        docs.append(strict(out))
        validate("checkin", docs[-1])
    assert [d["look"]["look"] for d in docs] == [1, 2] and docs[1]["look"]["days"] == 2
    folder = models / "docs" / docs[1]["look"]["posterior_dir"]
    in_look = strict((folder / "summary.json").read_text())
    validate("analysis", in_look)
    assert in_look["fingerprint"] == docs[1]["fingerprint"]
    assert in_look["metrics"]["converted"]["effects"] == docs[1]["metrics"]["converted"]["effects"]

    code, out, _ = run(capsys, "history", "docs", "--models-dir", str(models), "--json")
    assert code == 0
    past = strict(out)
    validate("history", past)
    assert [look["stage"] for look in past["looks"]] == [5, 5]
    assert set(past["looks"][0]["metrics"]) == {"converted", "opt_out"}
    push = next(r for r in past["looks"][1]["metrics"]["converted"]["effects"] if r["arm"] == "push")
    assert push["loss_ship_abs"] == next(r for r in docs[1]["metrics"]["converted"]["effects"]
                                         if r["is_overall"] and r["arm"] == "push")["loss_ship_abs"]
    code, out, _ = run(capsys, "history", "docs", "--models-dir", str(models), "--json", "--metric", "opt_out")
    assert set(strict(out)["looks"][0]["metrics"]) == {"opt_out"}
    code, out, _ = run(capsys, "history", "docs", "--models-dir", str(models))
    assert "opt_out" in out and "P(beyond margin)" in out and "    5%" in out     # guardrails and the stage
    # the history table's loss is the console's: absolute, in percentage points for a conversion
    line = next(row for row in out.splitlines() if re.match(r"\s+2\s.*\sconverted\s+push\s", row))
    assert f" {in_points(push['loss_ship_abs'])} percentage points " in line
    code, _, err = run(capsys, "history", "docs", "--models-dir", str(models), "--metric", "revenue")
    assert code == 2 and "--metric revenue: no look of 'docs' records it (metrics: converted, opt_out)" in err


def test_one_formatter_gives_the_loss_in_the_console_table_the_sentence_and_the_report(experiment, capsys):
    code, out, _ = run(capsys, "analyze", str(experiment / "spec.yaml"), "--data", str(experiment / "users.csv"),
                       "--models-dir", str(experiment / "models"), "--report", "--reports-dir",
                       str(experiment / "reports"))
    assert code == 0
    stored = strict((experiment / "models" / "docs" / "summary.json").read_text())
    loss = next(r for r in stored["metrics"]["converted"]["effects"]
                if r["is_overall"] and r["arm"] == "push")["loss_ship_abs"]
    shown = in_points(loss)
    sentence = stored["metrics"]["converted"]["sentences"]["push"]
    assert f"expected loss if shipped: {shown} percentage points" in sentence
    table_line = next(line for line in out.splitlines() if re.match(r"\s+overall\s+push\s", line))
    assert f" {shown} " in table_line
    page = (experiment / "reports" / "docs.html").read_text()
    assert f"<td>{shown}</td>" in page


def test_json_ready_turns_numpy_and_non_finite_values_into_strict_json():
    doc = document("analysis", {"a": np.float64("nan"), "b": np.int64(3), "c": np.array([1.5, np.inf]),
                                "d": (np.bool_(True),)})
    assert strict(dumps(doc)) == {"schema": "bayes-ab/analysis", "schema_version": 1, "a": None, "b": 3,
                                  "c": [1.5, None], "d": [True]}
    assert json_ready({1: float("-inf")}) == {"1": None}
    with pytest.raises(ValueError, match="unknown document kind"):
        document("report", {})


def test_the_schemas_refuse_a_document_missing_or_changing_a_field(experiment, capsys):
    _, out, _ = run(capsys, "analyze", str(experiment / "spec.yaml"), "--data", str(experiment / "users.csv"),
                    "--models-dir", str(experiment / "models"), "--json")
    doc = strict(out)
    validate("analysis", doc)
    broken = json.loads(out)
    del broken["metrics"]["converted"]["effects"][1]["p_beat_control"]
    with pytest.raises(Exception, match="'p_beat_control' is a required property"):
        validate("analysis", broken)
    broken = json.loads(out)
    broken["metrics"]["converted"]["effects"][1]["p_beat_control"] = 1.5
    with pytest.raises(Exception, match="1.5 is greater than the maximum of 1"):
        validate("analysis", broken)
    broken = json.loads(out)
    broken["schema_version"] = 2
    with pytest.raises(Exception, match="1 was expected"):
        validate("analysis", broken)


def test_plan_and_simulate_json_validate(tmp_path, capsys):
    from conftest import EXAMPLES

    spec = str(EXAMPLES / "planning" / "two_percent_baseline.yaml")
    code, out, _ = run(capsys, "plan", spec, "--experiments", "20", "--workers", "1", "--json")
    assert code == 0
    plan = strict(out)
    validate("plan", plan)
    fixed = plan["fixed_horizon"][0]
    assert fixed["control_users"] == 21_109 and plan["plan"]["daily_users"] == 10_000   # as the text says
    assert {row["scenario"] for row in plan["assurance"]} == {"planned effect", "no effect"}
    code, out, err = run(capsys, "simulate", spec, "--experiments", "20", "--workers", "1", "--models-dir",
                         str(tmp_path), "--json")
    assert code == 0 and "Stopping rule" in err
    simulated = strict(out)
    validate("simulation", simulated)
    assert {row["rule"] for row in simulated["rows"]} >= {"default"} and simulated["written"]
    for row in simulated["rows"]:
        assert sum(row[k] for k in ("ship", "rollback", "stop_no_effect", "undecided")) == pytest.approx(1.0)
    code, _, err = run(capsys, "plan", spec, "--calibrate", "--json")
    assert code == 2 and "--json is not available with --calibrate" in err
