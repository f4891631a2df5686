"""Past results: an imported table with one-line errors, finished experiments read from models/, and the
prior file's round trip and refusals."""

from __future__ import annotations

import json
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import yaml

from bayes_ab.cli import main
from bayes_ab.errors import DataError, SpecError
from bayes_ab.priors import from_models, learn_prior, load_prior, read_table

from conftest import seal_outputs


def _history(path, n=12, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.002, 0.01, n)
    frame = pd.DataFrame({"experiment": [f"e{i}" for i in range(n)], "metric": "conversion",
                          "estimate": rng.normal(0.001, 0.005, n) + rng.normal(0, s), "standard_error": s})
    frame.to_csv(path, index=False)
    return frame


def test_a_table_is_read_and_its_mistakes_named_by_line(tmp_path):
    good = _history(tmp_path / "past.csv")
    results = read_table(tmp_path / "past.csv").results
    assert len(results) == 12 and results[3].estimate == pytest.approx(good["estimate"][3])
    cases = {
        "missing column 'standard_error'": good.drop(columns="standard_error"),
        "line 3: estimate is not a number": good.assign(estimate=good["estimate"].astype(object).where(
            good.index != 1, "n/a")),
        "line 2: standard_error must be > 0": good.assign(standard_error=good["standard_error"].where(
            good.index != 0, 0.0)),
        "line 4: experiment 'e0', metric 'conversion', arm 'treatment' also on line 2": good.assign(
            experiment=good["experiment"].where(good.index != 2, "e0")),
        "line 5: estimate must be a finite number": good.assign(estimate=good["estimate"].where(
            good.index != 3, np.inf)),
    }
    for message, frame in cases.items():
        frame.to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_table(tmp_path / "bad.csv")


def _stored(folder, name, action, lift, low, high, interval=0.9):
    out = folder / name
    out.mkdir(parents=True)
    summary = {"experiment": name, "interval": interval, "metrics": {"conv": {"family": "conversion", "role": "primary"}}}
    if action is not None:
        summary["recommendation"] = {"action": action}
    (out / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame([
        {"metric": "conv", "segment": "overall", "arm": "control", "is_control": True, "is_overall": True,
         "rel_lift": np.nan, "rel_low": np.nan, "rel_high": np.nan},
        {"metric": "conv", "segment": "overall", "arm": "b", "is_control": False, "is_overall": True,
         "rel_lift": lift, "rel_low": low, "rel_high": high},
        {"metric": "conv", "segment": "mobile", "arm": "b", "is_control": False, "is_overall": False,
         "rel_lift": 0.5, "rel_low": 0.4, "rel_high": 0.6},
    ]).to_csv(out / "effects.csv", index=False)
    seal_outputs(out)


def test_finished_experiments_are_read_from_models_and_running_ones_skipped(tmp_path):
    _stored(tmp_path, "done", "ship", 0.02, 0.01, 0.03)
    _stored(tmp_path, "rolled", "rollback", -0.03, -0.05, -0.01, interval=0.95)
    _stored(tmp_path, "running", "advance", 0.01, 0.0, 0.02)
    _stored(tmp_path, "one_off", None, 0.01, 0.0, 0.02)
    found = from_models(tmp_path)
    by_name = {r.experiment: r for r in found.results}
    assert set(by_name) == {"done", "rolled"}
    assert by_name["done"].standard_error == pytest.approx(0.02 / (2 * NormalDist().inv_cdf(0.95)))
    assert by_name["rolled"].standard_error == pytest.approx(0.04 / (2 * NormalDist().inv_cdf(0.975)))
    assert by_name["done"].family == "conversion" and by_name["done"].role == "primary"
    assert any(s.startswith("running: no final decision (advance)") or "advance" in s for s in found.skipped)
    assert any(s.startswith("one_off:") for s in found.skipped)


def test_the_prior_file_round_trips_and_records_its_provenance(tmp_path):
    _history(tmp_path / "past.csv", n=8)
    learned, past, path = learn_prior(tmp_path / "priors" / "conv.yaml", tables=[str(tmp_path / "past.csv")],
                                      metric="conversion")
    prior = load_prior(path)
    assert prior.experiments == 8 and prior.form == learned.chosen.form
    assert prior.location == pytest.approx(learned.chosen.location)
    document = yaml.safe_load(path.read_text())
    assert len(document["provenance"]["results"]) == 8 and document["provenance"]["selection"] == {"metric": "conversion"}
    assert set(document["alternatives"]) == {"normal", "student_t"}
    assert "learned from 8 experiments" in prior.describe()


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(bayes_ab_prior=2), "bayes_ab_prior: expected format version 1"),
    (lambda d: d["distribution"].update(scale=-1.0), "distribution.scale: must be > 0"),
    (lambda d: d["distribution"].update(scale=0.0), "distribution.scale: must be > 0"),
    (lambda d: d["distribution"].update(df=0.0), "distribution.df: must be > 0"),
    (lambda d: d["distribution"].update(form="cauchy"), "distribution.form: must be one of"),
    (lambda d: d["distribution"].update(location="big"), "distribution.location: must be a finite number"),
    (lambda d: d["provenance"].update(experiments=0), "provenance.experiments: must be a positive integer"),
])
def test_a_damaged_prior_file_is_refused_naming_the_field(tmp_path, edit, message):
    _history(tmp_path / "past.csv", n=8)
    _, _, path = learn_prior(tmp_path / "p.yaml", tables=[str(tmp_path / "past.csv")])
    document = yaml.safe_load(path.read_text())
    document["distribution"].setdefault("df", 3.0)
    document["distribution"]["form"] = "student_t"
    edit(document)
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(SpecError, match=f"p.yaml: {message}"):
        load_prior(path)


def test_cli_learns_and_refuses_in_one_line(tmp_path, capsys):
    _history(tmp_path / "past.csv", n=10)
    out = tmp_path / "priors" / "p.yaml"
    assert main(["priors", "learn", "--table", str(tmp_path / "past.csv"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Learned from 10 past result(s)" in printed and "chosen:" in printed and out.exists()
    assert main(["priors", "learn", "--table", str(tmp_path / "past.csv"), "--metric", "revenue",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "for metric 'revenue': at least 5 are needed" in err
    assert main(["priors", "learn", "--models-dir", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_cli_refuses_a_folder_as_out_and_results_that_fit_no_finite_distribution(tmp_path, capsys):
    _history(tmp_path / "past.csv", n=8)
    (tmp_path / "priors").mkdir()
    assert main(["priors", "learn", "--table", str(tmp_path / "past.csv"), "--out", str(tmp_path / "priors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a folder; name the prior file to write" in err
    table = pd.read_csv(tmp_path / "past.csv")
    table.loc[0, "estimate"] = 4.4e301
    table.to_csv(tmp_path / "extreme.csv", index=False)
    out = tmp_path / "extreme.yaml"
    assert main(["priors", "learn", "--table", str(tmp_path / "extreme.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "largest |estimate| 4.4e+301" in err and not out.exists()


def test_a_prior_file_of_one_experiment_is_read_as_written(tmp_path):
    """The file format takes any positive count (learning needs 5; a file may have been written by hand)."""
    _history(tmp_path / "past.csv", n=8)
    _, _, path = learn_prior(tmp_path / "p.yaml", tables=[str(tmp_path / "past.csv")])
    document = yaml.safe_load(path.read_text())
    document["provenance"]["experiments"] = 1
    document["distribution"].update(form="student_t", df=1.0)       # Cauchy tails, as ASOS learns
    path.write_text(yaml.safe_dump(document))
    prior = load_prior(path)
    assert prior.experiments == 1 and prior.df == 1.0
