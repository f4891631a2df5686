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
