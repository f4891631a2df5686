"""The CLI end to end: Cookie Cats against the exact flat-prior answer, and one-line errors."""

import argparse
import json
import subprocess
import sys

import arviz as az
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import integrate, stats as st

from bayes_ab.cli import main

from conftest import COOKIE_CATS, EXAMPLES


def exact_flat_prior_p_greater(s_t, n_t, s_c, n_c) -> float:
    """P(p_t > p_c) under Beta(1, 1) priors, by adaptive quadrature (independent of bayes_ab)."""
    t, c = st.beta(1 + s_t, 1 + n_t - s_t), st.beta(1 + s_c, 1 + n_c - s_c)
    lo, hi = c.ppf(1e-12), c.isf(1e-12)
    value, _ = integrate.quad(lambda x: c.pdf(x) * t.sf(x), lo, hi, points=[c.mean()], limit=500)
    return value


@pytest.fixture(scope="module")
def cookie_cats_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cc")
    code = main(["analyze", str(EXAMPLES / "cookie_cats" / "spec.yaml"), "--data", str(COOKIE_CATS),
                 "--models-dir", str(out / "models"), "--reports-dir", str(out / "reports"), "--report"])
    assert code == 0
    return out


def test_a_warning_travels_with_the_result_it_qualifies(cookie_cats_run):
    # issue 17: the one player with 49,854 rounds was flagged on the console only
    from bayes_ab.analysis import read_manifest

    folder = cookie_cats_run / "models" / "cookie_cats"
    summary = json.loads((folder / "summary.json").read_text())
    [warning] = summary["warnings"]["game_rounds"]
    assert warning.startswith("one user of arm 'gate_30' with 49,854 alone raises that arm's mean by 1.11")
    rounds = [s for s in summary["sentences"] if "game rounds" in s]
    assert rounds and all(f"Caution: {warning}." in s for s in rounds)
    assert not any("Caution" in s for s in summary["sentences"] if "game rounds" not in s)
    report = (cookie_cats_run / "reports" / "cookie_cats.html").read_text()
    assert report.count("Caution: one user of arm &#39;gate_30&#39; with 49,854") >= 2   # headline and metric
    manifest = read_manifest(folder)                          # one complete run, every file as written
    assert set(manifest["files"]) == {"retention_1.nc", "retention_7.nc", "game_rounds.nc", "effects.csv",
                                      "summary.json"}
    assert manifest["fingerprint"] == summary["fingerprint"]


@pytest.mark.parametrize("metric", ["retention_1", "retention_7"])
def test_cookie_cats_matches_exact_flat_prior_answer(cookie_cats_run, metric):
    raw = pd.read_csv(COOKIE_CATS)
    counts = raw.groupby("version")[metric].agg(["sum", "size"])
    exact = exact_flat_prior_p_greater(counts.loc["gate_40", "sum"], counts.loc["gate_40", "size"],
                                       counts.loc["gate_30", "sum"], counts.loc["gate_30", "size"])
    effects = pd.read_csv(cookie_cats_run / "models" / "cookie_cats" / "effects.csv")
    row = effects.query("metric == @metric and segment == 'overall' and arm == 'gate_40'").iloc[0]
    summary = json.loads((cookie_cats_run / "models" / "cookie_cats" / "summary.json").read_text())
    ess = summary["diagnostics"][metric]["min_ess_bulk"]
    assert summary["diagnostics"][metric]["problems"] == []
    tolerance = 4 * np.sqrt(max(exact * (1 - exact), 1e-4) / ess) + 0.005
    assert abs(row["p_beat_control"] - exact) < tolerance, (row["p_beat_control"], exact)


def test_cookie_cats_posterior_is_written_as_netcdf(cookie_cats_run):
    idata = az.from_netcdf(cookie_cats_run / "models" / "cookie_cats" / "retention_7.nc")
    assert set(idata.posterior["mean"].dims) == {"chain", "draw", "arm", "segment"}
    assert list(idata.posterior["arm"].values) == ["gate_30", "gate_40"]
    assert int(idata.constant_data["n"].sum()) == 90_189


def test_cli_prints_effects_and_sentence(cookie_cats_run, capsys):
    main(["analyze", str(EXAMPLES / "cookie_cats" / "spec.yaml"), "--data", str(COOKIE_CATS),
          "--models-dir", str(cookie_cats_run / "again")])
    out = capsys.readouterr().out
    assert "probability that gate_40 increases retention 7" in out
    assert "diagnostics:" in out and "90,189 users" in out


@pytest.mark.parametrize("args,message", [
    (["--data", "missing.csv"], "data file not found"),
    (["--data", str(COOKIE_CATS), "--aggregated"], "missing column 'users'"),
    # argument errors come before the data is read or a model fitted (the data file here does not exist)
    (["--data", "missing.csv", "--stage", "33", "--days", "1"], "stage 33% is not in the ramp plan"),
    (["--data", "missing.csv", "--stage", "25"], "--stage 25 needs --days"),
])
def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys, args, message):
    code = main(["analyze", str(EXAMPLES / "cookie_cats" / "spec.yaml"), "--models-dir", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("bayes-ab: error:") and message in err and len(err.strip().splitlines()) == 1


def test_bad_spec_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narms: []\nmetrics: []\n")
    assert main(["analyze", str(bad), "--data", str(COOKIE_CATS)]) == 2
    assert "arms" in capsys.readouterr().err


PLANNING = EXAMPLES / "planning"


def test_plan_prints_assurance_and_the_fixed_horizon_reference(capsys):
    code = main(["plan", str(PLANNING / "two_percent_baseline.yaml"), "--experiments", "30", "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Plan for two_percent_baseline: 10,000 users/day" in out and "planned effect: decided by day 7" in out
    assert "needs 21,109 control and 21,109 treatment users" in out      # Fleiss formula, see test_fixed_horizon


def test_plan_takes_baseline_and_traffic_from_the_command_line(capsys):
    code = main(["plan", str(PLANNING / "checkout_button.yaml"), "--baseline", "checkout_conversion=0.05",
                 "--daily-traffic", "40000", "--effect", "0.2", "--days", "7", "--experiments", "10",
                 "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "40,000 users/day" in out and "+20.0%" in out


@pytest.mark.parametrize("args,message", [
    (["--baseline", "1.5"], "the baseline rate must be in (0, 1), got 1.5"),
    (["--baseline", "checkout_conversion=abc"], "'abc' is not a number"),
    (["--daily-traffic", "0"], "plan.daily_users: must be an integer >= 1, got 0"),
    (["--effect", "0"], "an effect of zero cannot be planned for"),
    (["--baseline", "nope=0.1"], "no metric named 'nope'"),
])
def test_plan_bad_input_is_one_line(capsys, args, message):
    code = main(["plan", str(PLANNING / "checkout_button.yaml"), "--experiments", "5", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_hold_prints_the_outlook(tmp_path, capsys):
    code = main(["analyze", str(EXAMPLES / "cookie_cats" / "spec.yaml"), "--data", str(COOKIE_CATS),
                 "--models-dir", str(tmp_path), "--stage", "1", "--days", "0", "--daily-traffic", "20000",
                 "--outlook-days", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "Hold at 1%: minimum exposure not reached" in out
    # 1% of treatment exposure in a 50/50 test: 2% of the 20,000 users a day, both arms counted
    assert "If the test stays at 1% (about 400 users a day, both arms): a decision is" in out
    assert "% within 1 day, " in out and "posterior draws)." in out


def test_option_prefixes_are_not_guessed(capsys):
    """``--out`` is no abbreviation of ``--outlook-days``: an unknown option is an error naming it, not a
    different option with a confusing complaint about its value."""
    with pytest.raises(SystemExit) as stop:
        main(["report", str(EXAMPLES / "cookie_cats" / "spec.yaml"), "--data", str(COOKIE_CATS), "--out", "x.html"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --out x.html" in capsys.readouterr().err


def test_help_answers_without_importing_the_statistical_stack():
    """`bayes-ab --help` and every subcommand's must not pay for PyMC, ArviZ, SciPy or pandas (seconds of
    imports)."""
    from bayes_ab.cli import _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"analyze", "checkin", "plan", "sql", "priors", "simulate"} <= set(commands)
    argvs = [["--help"]] + [[name, "--help"] for name in commands]
    code = ("import sys\nfrom bayes_ab.cli import main\n"
            f"for argv in {argvs!r}:\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('pymc', 'arviz', 'scipy', 'pandas', 'pytensor', 'duckdb', 'xarray')"
            " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_families_lists_every_registered_family_with_its_baseline_form(capsys):
    from bayes_ab.families import registry

    assert main(["families"]) == 0
    out = capsys.readouterr().out
    for name, family in registry().items():
        if not family.declared:         # a design's family (a switchback's cells): a spec cannot name it
            assert f"\n{name}: " not in "\n" + out
            continue
        assert f"\n{name}: " in "\n" + out
        form = ",".join(f.upper() for f in family.baseline_fields) or "RATE"
        block = ("\n" + out).split(f"\n{name}: ", 1)[1].split("\n\n", 1)[0]
        assert f"--baseline METRIC={form}\n" in block
    assert "--baseline METRIC=MEAN,DISPERSION" in out and "--baseline METRIC=RATE" in out



SPEC = EXAMPLES / "cookie_cats" / "spec.yaml"


@pytest.mark.parametrize("option", ["--models-dir", "--reports-dir"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, option):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    args = ["analyze", str(SPEC), "--data", str(tmp_path / "not-read.csv"), option, str(blocker), "--report"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bayes-ab: error: {option} {blocker}: is a file, not a folder")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("days", ["-4", "nan", "inf"])
def test_days_must_be_a_finite_non_negative_number(tmp_path, capsys, days):
    args = ["checkin", str(SPEC), "--data", str(COOKIE_CATS), "--stage", "25", "--days", days,
            "--models-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "--days: must be a finite number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "cookie_cats").exists()


def test_a_look_in_the_future_is_refused(tmp_path, capsys):
    args = ["checkin", str(SPEC), "--data", str(COOKIE_CATS), "--stage", "25", "--days", "4",
            "--as-of", "2099-01-01T00:00:00Z", "--models-dir", str(tmp_path)]
    assert main(args) == 2
    assert "is in the future" in capsys.readouterr().err


def test_plan_calibrate_prints_and_writes_the_decision_block(capsys, tmp_path):
    import yaml

    out_file = tmp_path / "decision.yaml"
    code = main(["plan", str(PLANNING / "two_percent_baseline.yaml"), "--calibrate", "--experiments", "20",
                 "--days", "6", "--workers", "1", "--write", str(out_file)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Calibration of two_percent_baseline: 20 simulated experiments per scenario" in out
    assert "Paste into the spec:\ndecision:\n  ship_beat: " in out and f"written: {out_file}" in out
    block = yaml.safe_load(out_file.read_text())["decision"]
    assert 0.5 < block["ship_beat"] < 1 and "20 experiments per scenario" in block["calibration"]


@pytest.mark.parametrize("args,message", [
    (["--write", "x.yaml"], "--write needs --calibrate"),
    (["--calibrate", "--correlation", "1.5"], "--correlation: must be in [0, 1), got 1.5"),
])
def test_calibration_arguments_are_checked_before_any_simulation(capsys, tmp_path, args, message):
    code = main(["plan", str(PLANNING / "two_percent_baseline.yaml"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_write_onto_a_folder_is_refused_before_the_simulation(capsys, tmp_path):
    code = main(["plan", str(PLANNING / "two_percent_baseline.yaml"), "--calibrate", "--write", str(tmp_path)])
    assert code == 2 and "is a folder, not a file" in capsys.readouterr().err


def test_exit_code_says_the_recommendation_when_asked(tmp_path, capsys):
    """Opt-in: a scheduler alerts on a rollback by the exit code; without --stage the flag is refused at once."""
    from bayes_ab.cli import ACTION_EXIT_CODES

    args = ["analyze", str(EXAMPLES / "cookie_cats" / "spec.yaml"), "--data", str(COOKIE_CATS),
            "--models-dir", str(tmp_path / "models")]
    assert main(args + ["--exit-code"]) == 2
    assert "--exit-code needs --stage" in capsys.readouterr().err
    code = main(args + ["--stage", "50", "--days", "7", "--exit-code"])
    action = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Recommendation: "))
    expected = {"Hold": "hold", "Advance": "advance", "Ship": "ship", "Stop": "stop_no_effect", "Roll": "rollback"}
    word = action.removeprefix("Recommendation: ").split()[0]
    assert code == ACTION_EXIT_CODES[expected[word]] and len(set(ACTION_EXIT_CODES.values())) == 5
    assert 2 not in ACTION_EXIT_CODES.values() and 0 not in ACTION_EXIT_CODES.values()


@pytest.mark.parametrize("argv, option", [
    (["--daily-traffic", "0"], "--daily-traffic"),
    (["--outlook-days", "0"], "--outlook-days"),
])
def test_outlook_arguments_are_refused_before_any_data_is_read(tmp_path, capsys, argv, option):
    """A zero traffic was silently ignored and zero days ahead failed after the fit: both are one line before any
    data is read (the data file here does not even exist)."""
    code = main(["analyze", str(EXAMPLES / "cookie_cats" / "spec.yaml"), "--data", str(tmp_path / "absent.csv"),
                 "--models-dir", str(tmp_path), "--stage", "1", "--days", "0", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{option}: must be a whole number >= 1, got 0" in err[0]


CITIES = EXAMPLES / "city_recommendations"


def test_plan_of_a_cluster_randomised_spec_gives_the_design_effect_and_the_clusters_needed(capsys):
    code = main(["plan", str(CITIES / "spec.yaml"), "--baseline", "conversion=0.1", "--effect", "0.02", "--icc", "0.02",
                 "--cluster-size", "1000", "--clusters", "30", "--json"])
    found = json.loads(capsys.readouterr().out)["plans"][0]
    assert code == 0 and found["design_effect"] == pytest.approx(20.98)
    assert found["power"] < 0.05 and found["needed_per_arm"] > 1000


@pytest.mark.parametrize("argv, message", [
    (["plan", str(CITIES / "spec.yaml"), "--baseline", "0.1"], "give --icc (intra-cluster correlation"),
    (["plan", str(CITIES / "spec.yaml"), "--icc", "0.02", "--cluster-size", "100"], "give --baseline conversion="),
    (["plan", str(PLANNING / "checkout_button.yaml"), "--icc", "0.02"], "plan a cluster-randomised spec"),
    (["simulate", str(CITIES / "spec.yaml")], "simulate draws independent users"),
])
def test_cluster_planning_arguments_are_one_line(capsys, argv, message):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


SWITCHBACK = EXAMPLES / "latency_switchback"


def test_schedule_writes_a_balanced_randomised_schedule(tmp_path, capsys):
    out = tmp_path / "schedule.csv"
    code = main(["schedule", "--units", "eu,us,ap,sa", "--periods", "48", "--start", "2026-11-02T00:00",
                 "--period", "1h", "--arms", "control,fast_api", "--seed", "3", "--out", str(out)])
    table = pd.read_csv(out)
    assert code == 0 and len(table) == 4 * 48 and set(table["arm"]) == {"control", "fast_api"}
    assert (table.groupby("period")["arm"].apply(lambda a: (a == "fast_api").sum()) == 2).all()
    assert table["starts"].iloc[-1] == "2026-11-03 23:00:00"


def test_plan_of_a_switchback_spec_gives_power_and_periods_needed(capsys):
    code = main(["plan", str(SWITCHBACK / "spec.yaml"), "--baseline", "latency_ms=320", "--cell-sd", "15",
                 "--units", "8", "--periods", "24", "--effect", "0.01", "--json"])
    found = json.loads(capsys.readouterr().out)["plans"][0]
    assert code == 0 and found["washout"] == 1 and found["power"] < 0.8 < 1 and found["periods_needed"] > 24


@pytest.mark.parametrize("argv, message", [
    (["plan", str(SWITCHBACK / "spec.yaml"), "--units", "8"], "give --units, --periods and --cell-sd"),
    (["plan", str(PLANNING / "checkout_button.yaml"), "--units", "8"], "plan a switchback spec"),
    (["schedule", "--units", "a", "--periods", "4", "--out", "x.csv"], "two or more distinct units"),
    (["schedule", "--units", "a,b", "--periods", "4", "--start", "2026-01-01", "--out", "x.csv"],
     "--start and --period go together"),
    (["schedule", "--units", "a,b", "--periods", "4", "--arms", "a", "--out", "x.csv"], "give two different names"),
])
def test_switchback_arguments_are_one_line(capsys, argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_no_outlook_for_a_cluster_design(capsys):
    code = main(["analyze", str(CITIES / "spec.yaml"), "--data", str(CITIES / "data" / "users.parquet"),
                 "--stage", "50", "--days", "3", "--daily-traffic", "5000", "--models-dir", "/nonexistent/never"])
    err = capsys.readouterr().err
    assert code == 2 and "--daily-traffic: the outlook simulates independent users" in err, err


def test_simulate_refuses_a_switchback_spec_even_with_a_plan(tmp_path, capsys):
    """A switchback's family has no simulated users: with a plan: section the simulation would have started and
    failed inside; it is refused in one line, naming the planning that applies."""
    raw = yaml.safe_load((SWITCHBACK / "spec.yaml").read_text())
    raw["plan"] = {"daily_users": 10000, "baseline": {"latency_ms": {"mean": 320, "sd": 100}}}
    spec = tmp_path / "switchback.yaml"
    spec.write_text(yaml.safe_dump(raw))
    code = main(["simulate", str(spec), "--experiments", "2", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--units U --periods P --cell-sd S" in err and len(err.strip().splitlines()) == 1, err


def test_simulate_with_covariate_correlations_prints_the_rule_without_them_too(tmp_path, capsys):
    """A plan with covariate correlations simulates adjusted posteriors, then the default rule on the same experiments
    without the covariates, so that the days saved read side by side; a plan that leaves out a metric's correlation
    is refused in one line."""
    raw = yaml.safe_load((EXAMPLES / "push_notification" / "cuped.yaml").read_text())
    raw["plan"]["days"] = 6
    spec = tmp_path / "cuped.yaml"
    spec.write_text(yaml.safe_dump(raw))
    code = main(["simulate", str(spec), "--experiments", "3", "--workers", "1", "--models-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Without the covariates (trade_conversion correlation 0.5 ignored):" in out
    assert out.count("Stopping rule 'default' simulated") == 2
    del raw["plan"]["covariate_correlation"]
    spec.write_text(yaml.safe_dump(raw))
    code = main(["simulate", str(spec), "--experiments", "3", "--workers", "1", "--models-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "plan.covariate_correlation.trade_conversion: is required" in err, err
