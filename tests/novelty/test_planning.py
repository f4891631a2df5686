"""Planning how many weeks tell novelty from a lasting effect (bayes_ab/novelty/planning.py)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from bayes_ab.cli import main
from bayes_ab.aggregation.panel import panel_statistics
from bayes_ab.novelty.planning import plan_novelty, simulate_weekly, weekly_statistics
from bayes_ab.spec import load_spec

from conftest import EXAMPLES, make_spec

SPEC = EXAMPLES / "push_notification" / "novelty.yaml"


def test_simulated_statistics_equal_the_sql_statistics_of_the_same_users_as_a_panel():
    rng = np.random.default_rng(3)
    arm, exposed, values = simulate_weekly(rng, "count", 3000, 0.7, 0.5, np.array([0.1, 0.05, 0.02, 0.0]), 14)
    start = date(2026, 1, 5)
    rows = []
    for user in range(len(arm)):
        day0 = start + timedelta(days=int(exposed[user]))
        rows.append((user, ("control", "treatment")[arm[user]], day0, day0, 0))
        for week, value in enumerate(values[user]):
            if value:
                rows.append((user, ("control", "treatment")[arm[user]], day0, day0 + timedelta(days=7 * week + 3),
                             int(value)))
    frame = pd.DataFrame(rows, columns=["user_id", "arm", "exposure_day", "day", "trades"])
    spec = make_spec([{"name": "trades", "family": "count", "column": "trades", "novelty": True}],
                     unit_column="user_id", day_column="exposure_day", activity_column="day")
    last_day = int((frame["day"].max() - start).days)
    from_sql = panel_statistics(spec, frame)["trades"]
    simulated = weekly_statistics(arm, exposed, values, last_day)
    weeks = from_sql.sizes["week"]
    np.testing.assert_array_equal(from_sql["users"].values, simulated["users"].values)
    np.testing.assert_allclose(from_sql["sum"].values, simulated["sum"].values[:, :, :weeks])
    np.testing.assert_allclose(from_sql["cross"].values, simulated["cross"].values[:, :, :weeks, :weeks])
    np.testing.assert_array_equal(from_sql["complete"].values, simulated["complete"].values[:, :weeks])


def test_more_weeks_find_a_fading_lift_more_often_and_a_lasting_one_is_rarely_flagged():
    metric = load_spec(SPEC).metric("trades")
    plan = plan_novelty(metric, daily_users=3000, weekly_mean=0.8, dispersion=0.5, early=0.15, long_run=0.0,
                        experiments=12, max_weeks=6, seed=1)
    first, last = plan.readings[0], plan.readings[-1]
    assert last.novelty_found > first.novelty_found and last.novelty_found >= 0.75
    assert max(r.lasting_flagged for r in plan.readings) <= 0.25        # 12 experiments: 3 flags at most
    assert last.long_run_width < first.long_run_width
    assert plan.weeks_needed is None or plan.weeks_needed in [r.weeks for r in plan.readings]
    assert "weeks  novelty found (fading)" in plan.text()


def test_cli_plan_novelty(capsys):
    assert main(["plan", str(SPEC), "--novelty", "trades", "--early", "0.1", "--long-run", "0.01",
                 "--baseline", "trades=0.6,0.5", "--daily-traffic", "800", "--experiments", "3",
                 "--max-weeks", "3"]) == 0
    out = capsys.readouterr().out
    assert "Novelty plan for trades: 800 users/day for 14 days" in out
    assert main(["plan", str(SPEC), "--early", "0.1", "--daily-traffic", "800"]) == 2
    assert "--early and --long-run need --novelty" in capsys.readouterr().err
    assert main(["plan", str(SPEC), "--novelty", "trades", "--early", "0.1", "--long-run", "0.01",
                 "--daily-traffic", "800"]) == 2
    assert "give --baseline trades=VALUE" in capsys.readouterr().err
