"""An analysis's outputs are one unit: a manifest names the files of one run; a partial run is recognisable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayes_ab.analysis as analysis_module
from bayes_ab.analysis import analyze, read_manifest
from bayes_ab.errors import DataError, SpecError
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

CONJUGATE = SamplerSettings(draws=500, chains=2, seed=3, backend="conjugate")
METRICS = [{"name": "converted", "family": "conversion", "column": "converted", "role": "primary"},
           {"name": "revenue", "family": "mean", "column": "revenue"}]


def users(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"arm": rng.choice(["control", "treatment"], n),
                         "converted": (rng.random(n) < 0.2).astype(int),
                         "revenue": rng.gamma(2.0, 5.0, n)})


def test_a_run_killed_while_saving_leaves_no_manifest_and_the_next_run_cleans_up(tmp_path, monkeypatch):
    spec = make_spec(METRICS)
    first = analyze(spec, users(2000, 1), sampler=CONJUGATE)
    first.save(tmp_path)
    folder = tmp_path / "test"
    assert read_manifest(folder)["fingerprint"] == first.fingerprint

    second = analyze(spec, users(3000, 2), sampler=CONJUGATE)
    original, calls = analysis_module.write_atomically, {"n": 0}

    def dies_on_the_second_file(path, write):
        calls["n"] += 1
        if calls["n"] == 2:
            stale = path.with_name(f".{path.name}.999999999-0a1b2c3d.tmp")    # what a killed writer leaves
            stale.write_bytes(b"half")
            raise KeyboardInterrupt
        return original(path, write)

    monkeypatch.setattr(analysis_module, "write_atomically", dies_on_the_second_file)
    with pytest.raises(KeyboardInterrupt):
        second.save(tmp_path)
    monkeypatch.undo()
    with pytest.raises(SpecError, match="manifest.json: missing; .* not one complete run"):
        read_manifest(folder)                                 # converted.nc is new, revenue.nc still old
    second.save(tmp_path)
    assert read_manifest(folder)["fingerprint"] == second.fingerprint
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_file_replaced_after_the_run_is_reported(tmp_path):
    spec = make_spec(METRICS)
    analyze(spec, users(2000, 3), sampler=CONJUGATE).save(tmp_path)
    (tmp_path / "test" / "effects.csv").write_text("metric\nforged\n")
    with pytest.raises(SpecError, match="effects.csv: not the file of the run"):
        read_manifest(tmp_path / "test")


def test_a_metric_that_never_varies_is_refused_with_its_value(tmp_path):
    # issue 17: identical constant arms came out as "P(beat) < 0.1%, P(best) control > 99.9%"
    frame = users(2000, 4).assign(revenue=7.5)
    with pytest.raises(DataError, match=r"metric 'revenue' \(column 'revenue'\): every user of every arm has "
                                        r"the value 7\.5: there is nothing to compare"):
        analyze(make_spec(METRICS), frame, sampler=CONJUGATE)


def test_empty_cells_and_a_metric_with_no_conversions_are_flagged(tmp_path):
    frame = users(3000, 5).assign(segment=lambda f: np.where(f.index % 3 == 0, "a", "b"), converted=0)
    frame.loc[(frame["segment"] == "a") & (frame["arm"] == "control"), "segment"] = "b"
    spec = make_spec(METRICS, segments=("segment",))
    effects = analyze(spec, frame, sampler=CONJUGATE).effects
    assert effects["revenue"].warnings == (
        "arm 'control' has no users in segment(s) 'a': its effect there is the prior's and the other "
        "segments', not measured",)
    assert effects["converted"].warnings[-1] == ("no user has converted in any arm yet: there is nothing to "
                                                 "compare, the lift is the prior's")


_SAVE_IN_ANOTHER_PROCESS = """
import sys, time
sys.path.insert(0, {tests!r})
from conftest import make_spec
from test_analysis import CONJUGATE, METRICS, users
from bayes_ab.analysis import analyze
result = analyze(make_spec(METRICS), users(1000, 9), sampler=CONJUGATE)
print("ready", flush=True)
result.save({models!r})
print("saved", time.time(), flush=True)
"""


def test_a_second_process_waits_for_the_writer_of_the_same_folder_and_a_dead_writer_holds_nothing(tmp_path):
    """Real processes: while this one holds the experiment's folder, another `save` into it waits; it finishes
    once the folder is released, with a complete manifest. A writer killed while holding it leaves no lock."""
    import subprocess
    import sys
    import time

    from bayes_ab.files import one_writer

    from conftest import ROOT

    folder = tmp_path / "test"
    code = _SAVE_IN_ANOTHER_PROCESS.format(tests=str(ROOT / "tests"), models=str(tmp_path))
    with one_writer(folder):
        other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert other.stdout.readline().strip() == "ready"
        time.sleep(2.0)
        assert other.poll() is None                 # still waiting for the folder
        released = time.time()
    out, _ = other.communicate(timeout=120)
    assert other.returncode == 0 and float(out.split()[-1]) >= released
    assert read_manifest(folder)["experiment"] == "test"

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from bayes_ab.files import one_writer\n"
                               f"with one_writer(Path({str(folder)!r})):\n"
                               "    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(SpecError, match=rf"test: another bayes-ab process \(pid {holder.pid}\) is writing here"):
        with one_writer(folder, wait=0.3):
            pass
    holder.kill()
    holder.wait()
    with one_writer(folder, wait=5):                # the dead writer's lock went with it
        pass


def test_the_analysis_path_imports_no_scipy_stats_or_fft():
    """scipy.stats costs a check-in 0.5-0.7 s of imports; the complier effect's independence test and the
    targeting tables' normal probabilities come from scipy.special (both are tested against scipy.stats).
    scipy.fft (0.1-0.2 s) was imported for one function, the diagnostics' FFT length (tested against it)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import sys, bayes_ab.analysis, bayes_ab.checkins, bayes_ab.report; "
                           "print(sorted(m for m in sys.modules if m.startswith(('scipy.stats', 'scipy.fft'))))"],
                          capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip() == "[]"
