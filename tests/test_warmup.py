"""`bayes-ab warmup`: the models an experiment's data need, compiled into a throwaway cache, then only loaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from bayes_ab.cli import main
from bayes_ab.posterior import ModelCache, fit
from bayes_ab.aggregation import aggregate
from bayes_ab.spec import load_spec


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
    assert "converted_too (conversion): the structure of an earlier metric" in out
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
    from bayes_ab.spec import SamplerSettings

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
                          (["warmup", "spec.yaml", "--workers", "2"], "--workers needs --all"),
                          (["warmup"], "warmup needs a spec (with --data), or --all")):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
