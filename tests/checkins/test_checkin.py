"""Check-ins: looks recorded with their posteriors, re-fits without recompiling, history, CLI."""

from __future__ import annotations

from dataclasses import replace

import arviz as az
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as st

from bayes_ab.checkins import checkin, history
from bayes_ab.aggregation import aggregate
from bayes_ab.cli import main
from bayes_ab.posterior import ModelCache
from bayes_ab.spec import SamplerSettings, load_spec

from conftest import FAST, make_spec
from family_rows import family_rows, write_days

CONJUGATE = SamplerSettings(draws=2000, chains=2, seed=4, backend="conjugate")


def users(n: int, rate_c: float, rate_t: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "treatment"], n)
    converted = rng.random(n) < np.where(arm == "control", rate_c, rate_t)
    return pd.DataFrame({"arm": arm, "converted": converted.astype(int)})


def conversion_spec_file(folder, name: str, **extra):
    """A spec file of one primary conversion metric, fitted by the conjugate closed form (fast, exact)."""
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "arm_column": "arm", **extra,
        "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
        "metrics": [{"name": "converted", "family": "conversion", "column": "converted", "role": "primary"}],
        "sampler": {"backend": "conjugate", "draws": 1000, "chains": 2},
    }))
    return path


def test_each_look_keeps_its_posterior_and_effects(tmp_path):
    spec = make_spec(metrics=[{"name": "converted", "family": "conversion", "column": "converted",
                               "role": "primary"}])
    days = [users(4000, 0.10, 0.12, 1), users(16000, 0.10, 0.12, 2)]
    looks = [checkin(spec, frame, stage=5, days=3, as_of=f"2026-02-0{i + 1}", models_dir=tmp_path,
                     sampler=CONJUGATE) for i, frame in enumerate(days)]
    assert [c.record.look for c in looks] == [1, 2]
    trajectory = history("test", tmp_path).to_pandas()
    assert list(trajectory["look"]) == [1, 2] and list(trajectory["as_of"]) == ["2026-02-01T00:00:00Z",
                                                                             "2026-02-02T00:00:00Z"]
    for look, frame in zip(trajectory.itertuples(), days):
        # independent reference: the exact flat-prior Beta posteriors of this look's data
        counts = frame.groupby("arm")["converted"].agg(["sum", "size"])
        beta = {a: st.beta(1 + counts.loc[a, "sum"], 1 + counts.loc[a, "size"] - counts.loc[a, "sum"])
                for a in ("control", "treatment")}
        draws = {a: b.rvs(200_000, random_state=5) for a, b in beta.items()}
        exact = np.mean(draws["treatment"] > draws["control"])
        assert abs(look.p_beat_control - exact) < 4 * np.sqrt(exact * (1 - exact) / 4000) + 2e-3
    stored = history("test", tmp_path).looks[1]
    posterior = az.from_netcdf(tmp_path / "test" / stored.posterior_dir / "converted.nc")
    assert posterior.posterior["mean"].sizes["draw"] == CONJUGATE.draws
    assert stored.payload["recommendation"]["action"] == looks[1].recommendation.action


def test_looks_in_one_process_reuse_the_compiled_model(tmp_path):
    """(exact=False: a one-segment conversion would otherwise be integrated, with nothing to compile.)"""
    spec = make_spec(metrics=[{"name": "converted", "family": "conversion", "column": "converted",
                               "role": "primary"}])
    cache = ModelCache()
    for i, frame in enumerate([users(3000, 0.1, 0.1, 3), users(6000, 0.1, 0.1, 4), users(9000, 0.1, 0.1, 5)]):
        checkin(spec, frame, stage=1, days=1, as_of=f"2026-03-0{i + 1}", models_dir=tmp_path,
                sampler=replace(FAST, exact=False), cache=cache)
    assert cache.compilations == 1
    assert len(history("test", tmp_path).looks) == 3


def test_cli_checkin_and_history(tmp_path, capsys):
    spec_path = conversion_spec_file(tmp_path, "cli_test")
    data = tmp_path / "users.csv"
    users(5000, 0.1, 0.11, 6).to_csv(data, index=False)
    models = tmp_path / "models"
    for as_of in ("2026-04-01T09:00:00Z", "2026-04-02T09:00:00+02:00"):
        assert main(["checkin", str(spec_path), "--data", str(data), "--as-of", as_of, "--stage", "5",
                     "--days", "3", "--models-dir", str(models)]) == 0
    assert "recorded look 2 as of 2026-04-02T07:00:00Z" in capsys.readouterr().out
    assert main(["history", "cli_test", "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert "2 look(s)" in out and "not simulated yet" in out
    assert main(["checkin", str(spec_path), "--data", str(data), "--as-of", "2026-03-01", "--stage", "5",
                 "--days", "3", "--models-dir", str(models)]) == 2
    assert "earlier than look 2" in capsys.readouterr().err
    assert main(["checkin", str(spec_path), "--data", str(data), "--as-of", "yesterday", "--stage", "5",
                 "--days", "3", "--models-dir", str(models)]) == 2
    assert "not an ISO 8601" in capsys.readouterr().err
    assert main(["history", "nothing_here", "--models-dir", str(models)]) == 2
    assert "no check-ins recorded" in capsys.readouterr().err


def test_daily_check_ins_add_only_the_new_days_aggregates(tmp_path, capsys):
    spec_path = conversion_spec_file(tmp_path, "daily", unit_column="user_id", day_column="exposure_day")
    days = write_days(family_rows(6000, seed=13, days=3), tmp_path / "all")
    live, models = tmp_path / "live", tmp_path / "models"
    live.mkdir()
    for i, day in enumerate(days):
        (tmp_path / "all" / f"{day}.parquet").rename(live / f"{day}.parquet")
        assert main(["checkin", str(spec_path), "--data", str(live), "--as-of", f"{day}T20:00:00Z",
                     "--stage", "5", "--days", str(i + 1), "--models-dir", str(models)]) == 0
        out = capsys.readouterr().out
        assert f"scanned 1 day(s) ({day})" in out and f"reused {i} stored day(s)" in out
    looks = history("daily", models).looks
    assert [look.payload["aggregation"]["scanned_days"] for look in looks] == [[d] for d in days]
    full = aggregate(load_spec(spec_path), live)["converted"]
    assert looks[-1].payload["users"] == int(full["n"].sum())
    assert main(["checkin", str(spec_path), "--data", str(live), "--as-of", "2026-03-04T20:00:00Z",
                 "--stage", "5", "--days", "4", "--models-dir", str(models), "--rescan"]) == 0
    assert "scanned 3 day(s)" in capsys.readouterr().out


def test_a_killed_check_in_is_finished_or_cleaned_by_the_next_one(tmp_path):
    # issue 17: a check-in killed between its ledger row and its folder's rename, or before its row
    spec = make_spec(metrics=[{"name": "converted", "family": "conversion", "column": "converted",
                               "role": "primary"}])
    first = checkin(spec, users(3000, 0.1, 0.12, 6), stage=5, days=1, as_of="2026-04-01", models_dir=tmp_path,
                    sampler=CONJUGATE)
    final = tmp_path / "test" / first.record.posterior_dir
    dead = 999_999_999                                          # no such process
    committed = final.with_name(f".{final.name}.{dead}-0a1b2c3d.tmp")
    final.rename(committed)
    orphan = final.with_name(f".2026-04-01T120000Z-ffffffff.{dead}-1a2b3c4d.tmp")
    orphan.mkdir()
    (orphan / "converted.nc").write_bytes(b"half")
    checkin(spec, users(6000, 0.1, 0.12, 7), stage=5, days=2, as_of="2026-04-02", models_dir=tmp_path,
            sampler=CONJUGATE)
    assert (final / "converted.nc").exists() and not committed.exists() and not orphan.exists()
    assert sorted(p.name.startswith(".") for p in final.parent.iterdir()) == [False, False]
    assert az.from_netcdf(final / "converted.nc").posterior["mean"].sizes["draw"] == CONJUGATE.draws


def test_fewer_days_at_the_same_stage_are_refused_before_the_data_is_read(tmp_path):
    from bayes_ab.errors import LedgerError

    spec = make_spec()
    checkin(spec, users(3000, 0.1, 0.12, 11), stage=25, days=3, as_of="2026-05-03", models_dir=tmp_path, sampler=FAST)
    with pytest.raises(LedgerError, match=r"--days 1 at stage 25% is fewer than look 1's 3 days at the same stage"):
        checkin(spec, tmp_path / "never-read.parquet", stage=25, days=1, as_of="2026-05-04", models_dir=tmp_path,
                sampler=FAST)
    # the same days again, or a new stage from 0, are looks like any other
    checkin(spec, users(3000, 0.1, 0.12, 12), stage=25, days=3, as_of="2026-05-04", models_dir=tmp_path, sampler=FAST)
    assert checkin(spec, users(4000, 0.1, 0.12, 13), stage=50, days=0, as_of="2026-05-05", models_dir=tmp_path,
                   sampler=FAST).record.look == 3


def test_a_terminal_action_is_sticky_for_later_check_ins(tmp_path, capsys):
    """A rollback at look 1; look 2's data look harmless, but the check-in says the experiment was decided and, with
    --exit-code, keeps the rollback's code instead of returning to hold."""
    from bayes_ab.cli import ACTION_EXIT_CODES

    spec_path = conversion_spec_file(tmp_path, "sticky")
    harmful, harmless = tmp_path / "harmful.csv", tmp_path / "harmless.csv"
    users(20000, 0.10, 0.05, 7).to_csv(harmful, index=False)
    users(2000, 0.10, 0.10, 8).to_csv(harmless, index=False)
    common = ["--stage", "50", "--days", "7", "--models-dir", str(tmp_path / "models"), "--exit-code"]
    assert main(["checkin", str(spec_path), "--data", str(harmful), "--as-of", "2026-05-01"] + common) == \
        ACTION_EXIT_CODES["rollback"]
    assert "Already decided" not in capsys.readouterr().out
    assert main(["checkin", str(spec_path), "--data", str(harmless), "--as-of", "2026-05-02"] + common) == \
        ACTION_EXIT_CODES["rollback"]
    out = capsys.readouterr().out
    assert "Already decided: look 1 (as of 2026-05-01T00:00:00Z) recommended rollback; this look is recorded" in out
    assert "Recommendation: Roll" not in out          # the data alone no longer say roll back
