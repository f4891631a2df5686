"""Shared fixtures: tiny sampler settings, example paths, the example spec builder, a local Spark engine."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from bayes_ab.spec import SamplerSettings, parse_spec


@pytest.fixture(autouse=True)
def _compile_in_process(monkeypatch):
    """Commands run in-process compile as library calls do, one structure at a time in the test's own process: a
    test that wants several compile workers (tests/test_warmup.py) says so."""
    monkeypatch.setenv("BAYES_AB_COMPILE_WORKERS", "1")
    yield
    from bayes_ab.posterior import DEFAULT_CACHE

    DEFAULT_CACHE.compile_workers = 1

warnings.filterwarnings("ignore", category=FutureWarning)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
COOKIE_CATS = EXAMPLES / "data" / "cookie_cats.csv"

# Small but honest: enough draws for the Monte Carlo tolerances used in the tests.
FAST = SamplerSettings(draws=500, tune=500, chains=2, seed=3)


def example_module(path: str):
    """An example script, ``examples/<path>``, loaded as a module (the examples are scripts, not a package)."""
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("example_" + path.replace("/", "_").removesuffix(".py"),
                                                         EXAMPLES / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def make_spec(metrics=None, segments=(), arms=("control", "treatment"), **extra):
    """A valid spec mapping -> ExperimentSpec, with conversion metric ``converted`` by default."""
    raw = {
        "name": "test",
        "arm_column": "arm",
        "segments": list(segments),
        "arms": [{"name": a, "control": i == 0} for i, a in enumerate(arms)],
        "metrics": metrics or [{"name": "converted", "family": "conversion", "column": "converted"}],
        **extra,
    }
    return parse_spec(raw)


@pytest.fixture
def fast_sampler() -> SamplerSettings:
    return FAST


@pytest.fixture(scope="session")
def spark():
    """A Spark engine on ``local[2]``, shared by the tests (starting the JVM takes seconds)."""
    from bayes_ab.data.spark_engine import SparkEngine

    engine = SparkEngine(master="local[2]")
    yield engine
    engine.session().stop()


def seal_outputs(folder) -> None:
    """Write the manifest ``analyze`` writes for the files in ``folder`` (hand-made stored results in tests)."""
    import json
    from pathlib import Path

    from bayes_ab.files import sha256_of

    folder = Path(folder)
    files = {p.name: sha256_of(p) for p in sorted(folder.iterdir()) if p.name != "manifest.json" and p.is_file()}
    (folder / "manifest.json").write_text(json.dumps({"experiment": folder.name, "fingerprint": "test",
                                                      "files": files}))
