"""`bayes-ab warmup`: the models an experiment's data need, compiled into a throwaway cache, then only loaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from bayes_ab.cli import main
from bayes_ab.errors import SpecError
from bayes_ab.posterior import ModelCache, fit
from bayes_ab.aggregation import aggregate
from bayes_ab.spec import SamplerSettings, load_spec


def test_warmup_compiles_once_and_a_later_fit_only_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    n = 4000
    pd.DataFrame({"arm": rng.choice(["control", "treatment"], n), "region": rng.choice(["eu", "us", "apac"], n),
                  "converted": (rng.random(n) < 0.1).astype(int)}).to_csv(tmp_path / "users.csv", index=False)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "warm", "segments": ["region"], "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
        "metrics": [{"name": "converted", "family": "conversion", "column": "converted"},
                    {"name": "converted_too", "family": "conversion", "column": "converted"}],
        "sampler": {"draws": 200, "tune": 200, "chains": 2, "seed": 1}}))
    argv = ["warmup", str(spec_path), "--data", str(tmp_path / "users.csv")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "converted (conversion): compiled" in out
    assert "converted_too (conversion): the structure of an earlier metric (converted)" in out
    assert main(argv) == 0                                       # idempotent: the second run compiles nothing
    assert "converted (conversion): loaded from the model cache" in capsys.readouterr().out
    spec = load_spec(spec_path)
    cache = ModelCache()
    stats = aggregate(spec, tmp_path / "users.csv")
    fit(stats["converted"], spec.metrics[0], spec.sampler, cache)
    assert cache.compilations == 1 and cache.from_disk == 1      # the check-in loads what warmup compiled


def test_warmup_of_a_closed_form_or_an_integrable_model_compiles_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(4)
    pd.DataFrame({"arm": rng.choice(["control", "treatment"], 500),
                  "converted": (rng.random(500) < 0.1).astype(int)}).to_csv(tmp_path / "users.csv", index=False)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "plain", "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
        "metrics": [{"name": "converted", "family": "conversion", "column": "converted"}]}))
    assert main(["warmup", str(spec_path), "--data", str(tmp_path / "users.csv")]) == 0
    assert "converted (conversion): integrated exactly: nothing to compile" in capsys.readouterr().out
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


# -- every family's structures, without a spec (`warmup --all`) ------------------------------------------------


def test_every_familys_warmup_statistics_lead_it_to_the_structure_they_are_named_for():
    """A case named "binomial, small cells" must be one: statistics that drifted to another variant (a large cell
    where a small one was meant) would warm the wrong structure and leave the named one to the first check-in."""
    from bayes_ab.families import registry
    from bayes_ab.models.gaussian_pool import NORMAL_CELLS, is_normal_cells

    sampled = set()
    for name, family in registry().items():
        for arms, segments in ((("c", "t"), ("a", "b", "c")), (("c", "t", "u"), tuple("abcdefghijkl"))):
            for case in family.warmup_cases(arms, segments):
                variant = family.variant(case.stats, case.metric)
                likelihood, size = case.label.split(", ")[0], case.label.split(", ")[-1]
                assert variant.split("+")[0] == likelihood or variant == likelihood == NORMAL_CELLS, (name, case.label)
                assert is_normal_cells(variant) == (size == "large cells"), (name, case.label, variant)
                assert case.stats.sizes["arm"] == len(arms) and case.stats.sizes["segment"] == len(segments)
                sampled.add(name)
    assert sampled == {"conversion", "count", "mean", "ratio", "retention"}


def test_the_tasks_are_one_per_structure_and_cover_every_class():
    from bayes_ab.families import registry
    from bayes_ab.models.hierarchy import CLASS_REPRESENTATIVES, size_classes
    from bayes_ab.posterior.fit import structure_of
    from bayes_ab.posterior.warmup import warmup_tasks

    tasks, notes = warmup_tasks()
    expected = [task.build().compile_seconds for task in tasks]
    assert expected == sorted(expected, reverse=True)               # the longest first
    assert (tasks[0].family, tasks[0].arms) == ("mean", 3) and tasks[-1].family != "mean"
    keys = [structure_of(task.build().stats, task.build().metric) for task in tasks]
    assert None not in keys and len(set(keys)) == len(keys)
    cases = sum(len(family.warmup_cases(("c",) * arms, ("s",) * segments)) for family in registry().values()
                for arms in CLASS_REPRESENTATIVES["arm"] for segments in CLASS_REPRESENTATIVES["segment"])
    assert len(tasks) + len(notes) == cases
    classes = {tuple(size_classes({"arm": arms, "segment": segments}).values())
               for arms in CLASS_REPRESENTATIVES["arm"] for segments in CLASS_REPRESENTATIVES["segment"]}
    assert len(classes) == len(CLASS_REPRESENTATIVES["arm"]) * len(CLASS_REPRESENTATIVES["segment"])
    assert {(a, s) for a in ("two", "three or more") for s in ("one", "2 to 9", "10 or more")} == classes
    # the 12-segment normal-cells, mean, ratio and retention models are their 3-segment structures
    assert sum("the structure of" in note for note in notes) >= 10


def test_warmup_all_compiles_size_free_structures_that_serve_other_sizes(tmp_path, monkeypatch, capsys):
    """Two structures on two processes in a throwaway cache; a later fit at another segment count only loads."""
    import bayes_ab.posterior.warmup as warmup
    from bayes_ab.families.ratio import RatioParams, ratio_stats
    from bayes_ab.metric import Metric

    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path / "cache"))
    tasks = [warmup.WarmupTask("ratio", 0, 2, 1), warmup.WarmupTask("ratio", 0, 2, 3)]
    monkeypatch.setattr(warmup, "warmup_tasks", lambda sampler=None: (tasks, ["a case that compiles nothing"]))
    assert main(["warmup", "--all", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 structures to prepare on 2 process(es); 1 more cases" in out
    assert "ratio delta, 2 arms x 3 segment(s): compiled for any size of its class" in out
    assert "ratio delta, 2 arms x 1 segment(s): compiled for any size of its class" in out
    assert main(["warmup", "--all", "--workers", "1"]) == 0                    # idempotent
    assert out.count("[") == 2 and capsys.readouterr().out.count("loaded from the model cache") == 2

    rng = np.random.default_rng(5)
    n = rng.integers(300, 600, (2, 7)).astype(float)
    den = n * rng.uniform(1.5, 2.5, (2, 7))
    num = den * rng.uniform(1.0, 1.3, (2, 7))
    stats = ratio_stats(["control", "treatment"], [f"s{i}" for i in range(7)], n,
                        {"sum_num": num, "sum_den": den, "sum_num2": 3 * num ** 2 / n, "sum_den2": 3 * den ** 2 / n,
                         "sum_num_den": 3 * num * den / n}, "per_session")
    cache = ModelCache()
    metric = Metric(name="per_session", family="ratio", params=RatioParams("revenue", "sessions"))
    fit(stats, metric, SamplerSettings(draws=100, tune=100, chains=2, seed=1), cache)
    assert cache.compilations == 1 and cache.from_disk == 1          # 7 segments: the 3-segment entry serves


def test_warmup_all_takes_no_spec_and_a_spec_takes_no_workers(tmp_path, capsys):
    for argv, message in ((["warmup", "--all", "spec.yaml"], "--all takes no spec or data (got spec)"),
                          (["warmup", "--all", "--workers", "0"], "--workers must be at least 1"),
                          (["warmup", "spec.yaml", "--workers", "0"], "--workers must be at least 1"),
                          (["warmup"], "warmup needs a spec (with --data), or --all")):
        assert main(argv) == 2
        assert message in capsys.readouterr().err


# -- an analysis's missing structures, compiled at once (`compile_ahead`) -------------------------------------


def _two_structures(tmp_path):
    """Statistics of a ratio and a mean metric (two structures), 2 arms x 3 segments."""
    rng = np.random.default_rng(6)
    n = 3000
    rows = pd.DataFrame({"arm": rng.choice(["control", "treatment"], n), "region": rng.choice(["a", "b", "c"], n),
                         "revenue": rng.gamma(2.0, 3.0, n), "sessions": rng.integers(1, 5, n)})
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "two", "segments": ["region"], "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
        "metrics": [{"name": "per_session", "family": "ratio", "numerator": "revenue", "denominator": "sessions"},
                    {"name": "revenue", "family": "mean", "column": "revenue"}],
        "sampler": {"draws": 100, "tune": 100, "chains": 2, "seed": 1}}))
    spec = load_spec(spec_path)
    return spec, aggregate(spec, rows)


def test_an_analysis_compiles_its_missing_structures_at_once_and_the_fits_load_them(tmp_path, monkeypatch):
    from bayes_ab.models.compiled import cache_root
    from bayes_ab.posterior.warmup import compile_ahead

    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path / "cache"))
    spec, stats = _two_structures(tmp_path)
    assert compile_ahead(stats, spec.metrics, spec.sampler, ModelCache()) == 0          # one worker: nothing
    cache = ModelCache(compile_workers=2)
    assert compile_ahead(stats, spec.metrics, spec.sampler, cache) == 2
    assert len(list(cache_root().iterdir())) == 2 and cache.compilations == 0
    for metric in spec.metrics:
        fit(stats[metric.name], metric, spec.sampler, cache)
    assert cache.compilations == 2 and cache.from_disk == 2                 # the fits only loaded them
    assert compile_ahead(stats, spec.metrics, spec.sampler, cache) == 0                  # nothing missing now


def test_compile_ahead_leaves_one_missing_structure_and_other_backends_to_the_fit(tmp_path, monkeypatch):
    from dataclasses import replace

    from bayes_ab.posterior.warmup import compile_ahead
    from bayes_ab.sampling import Backend

    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path / "cache"))
    spec, stats = _two_structures(tmp_path)
    cache = ModelCache(compile_workers=2)
    assert compile_ahead(stats, spec.metrics[:1], spec.sampler, cache) == 0
    assert compile_ahead(stats, spec.metrics, replace(spec.sampler, backend=Backend.PYMC), cache) == 0
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("layout.json"))


def test_a_failing_compile_worker_is_left_to_the_fit():
    """A worker that raises (here: a square root of -1) yields nothing; the other calls still give their results."""
    import math

    from bayes_ab.posterior.warmup import _run

    assert sorted(_run(math.sqrt, [(-1.0,), (4.0,)], 2, quiet=True), key=str) == [2.0, None]


def test_the_command_line_compiles_on_every_core_unless_told(monkeypatch):
    from bayes_ab.cli import _compile_on_every_core
    from bayes_ab.posterior import DEFAULT_CACHE

    monkeypatch.delenv("BAYES_AB_COMPILE_WORKERS")
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    _compile_on_every_core()
    assert DEFAULT_CACHE.compile_workers == 6
    monkeypatch.setenv("BAYES_AB_COMPILE_WORKERS", "3")
    _compile_on_every_core()
    assert DEFAULT_CACHE.compile_workers == 3
    for bad in ("zero", "0"):
        monkeypatch.setenv("BAYES_AB_COMPILE_WORKERS", bad)
        with pytest.raises(SpecError, match=rf"\$BAYES_AB_COMPILE_WORKERS: must be a whole number >= 1, got '{bad}'"):
            _compile_on_every_core()


def test_the_warm_ups_start_no_more_processes_than_asked_or_than_structures(tmp_path, monkeypatch):
    import bayes_ab.posterior.warmup as warmup

    asked = []

    def run(function, calls, workers, quiet=False):
        asked.append(workers)
        return [(call[1], ("compiled", 0.5)) for call in calls] if function is warmup._prepare_metric else []

    monkeypatch.setattr(warmup, "_run", run)
    spec, stats = _two_structures(tmp_path)               # two metrics, two structures
    lines = []
    for workers in (1, 8):
        warmup.prepare_metrics(stats, spec.metrics, spec.sampler, workers, tell=lines.append)
    assert asked == [1, 2] and "  revenue (mean): compiled (0.5 s)" in lines
    tasks = [warmup.WarmupTask("ratio", 0, 2, 1), warmup.WarmupTask("ratio", 0, 2, 3)]
    monkeypatch.setattr(warmup, "warmup_tasks", lambda sampler=None: (tasks, []))
    for workers in (1, 5):
        warmup.warm_everything(workers=workers, tell=lines.append)
    assert asked[2:] == [1, 2] and "2 structures to prepare on 1 process(es)" in " ".join(lines)
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path / "cache"))
    assert warmup.compile_ahead(stats, spec.metrics, spec.sampler, ModelCache(compile_workers=8)) == 2
    assert asked[4:] == [2]                                 # two missing structures: two processes, not eight


def test_a_prepared_structure_reports_its_own_seconds(tmp_path, monkeypatch):
    from bayes_ab.families.conversion import conversion_stats
    from bayes_ab.metric import Metric
    from bayes_ab.posterior.warmup import _prepare

    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path / "cache"))
    stats = conversion_stats(["control", "treatment"], ["all"], np.array([[500], [500]]), np.array([[50], [60]]),
                             "converted")
    done, seconds = _prepare(stats, Metric(name="converted", family="conversion", column="converted"),
                             SamplerSettings())
    assert done == "integrated exactly: nothing to compile" and 0 <= seconds < 60
