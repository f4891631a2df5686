"""Incremental aggregation: per-day partials added up equal a full rescan, day after day, with late
rows, removed days, a changed spec, bad new data and interrupted writes."""

from __future__ import annotations

import pandas as pd
import pytest

from bayes_ab.aggregation import aggregate
from bayes_ab.aggregation.incremental import PartialStore, aggregate_incrementally
from bayes_ab.errors import DataError

from conftest import make_spec
from family_rows import assert_same, FAMILY_METRICS, family_rows, family_spec, write_days


def test_each_check_in_scans_only_the_new_day_and_equals_a_full_rescan(tmp_path):
    frame = family_rows(5000, seed=5, days=4)
    days = write_days(frame, tmp_path / "all")
    live, store = tmp_path / "live", tmp_path / "store"
    live.mkdir()
    for i, day in enumerate(days):
        (tmp_path / "all" / f"{day}.parquet").rename(live / f"{day}.parquet")
        done = aggregate_incrementally(family_spec(), live, store)
        assert done.scanned_days == (day,) and done.reused_days == tuple(days[:i])
        assert done.rows_scanned == int((frame["exposure_day"].astype(str) == day).sum())
        assert_same(done.stats, aggregate(family_spec(), live))
    assert done.rows_total == len(frame)
    assert "scanned 1 day(s) (2026-03-04)" in done.text() and "reused 3 stored day(s)" in done.text()


def test_late_rows_and_removed_days_are_picked_up(tmp_path):
    frame = family_rows(3000, seed=6, days=3)
    days = write_days(frame, tmp_path / "data")
    store = tmp_path / "store"
    aggregate_incrementally(family_spec(), tmp_path / "data", store)
    late = family_rows(200, seed=7, days=1, first_id=10_000)          # more users on the first day
    first = tmp_path / "data" / f"{days[0]}.parquet"
    pd.concat([pd.read_parquet(first), late]).to_parquet(first, index=False)
    (tmp_path / "data" / f"{days[2]}.parquet").unlink()
    done = aggregate_incrementally(family_spec(), tmp_path / "data", store)
    assert done.changed_days == (days[0],) and done.scanned_days == (days[0],)
    assert done.reused_days == (days[1],) and done.dropped_days == (days[2],)
    assert_same(done.stats, aggregate(family_spec(), tmp_path / "data"))
    assert "left out" in done.text() and "row count changed" in done.text()


def test_a_changed_spec_or_rescan_aggregates_every_day_again(tmp_path):
    write_days(family_rows(2000, seed=8, days=3), tmp_path / "data")
    store = tmp_path / "store"
    aggregate_incrementally(family_spec(), tmp_path / "data", store)
    assert len(aggregate_incrementally(family_spec(), tmp_path / "data", store).scanned_days) == 0
    capped = [dict(m, cap=4) if m["name"] == "trades" else m for m in FAMILY_METRICS]
    spec = make_spec(capped, segments=("country", "tier"), unit_column="user_id", day_column="exposure_day")
    changed = aggregate_incrementally(spec, tmp_path / "data", store)
    assert len(changed.scanned_days) == 3 and changed.stats["trades"]["value"].max() == 4
    assert len(aggregate_incrementally(family_spec(), tmp_path / "data", store, rescan=True).scanned_days) == 3


def test_bad_rows_on_a_new_day_are_refused_and_the_store_is_kept(tmp_path):
    frame = family_rows(2000, seed=9, days=3)
    days = write_days(frame, tmp_path / "data")
    bad = tmp_path / "data" / f"{days[2]}.parquet"
    good = pd.read_parquet(bad)
    bad.unlink()
    store = PartialStore(tmp_path / "store")
    aggregate_incrementally(family_spec(), tmp_path / "data", store)
    broken = good.copy()
    broken.loc[broken.index[0], "trades"] = -3
    broken.to_parquet(bad, index=False)
    with pytest.raises(DataError, match=r"column 'trades' \(metric 'trades'\) has negative counts: 1 row"):
        aggregate_incrementally(family_spec(), tmp_path / "data", store)
    fingerprint = next(p.name for p in store.folder.iterdir())
    assert sorted(store.load(fingerprint)) == days[:2]


def test_an_interrupted_write_leaves_the_day_absent_and_it_is_rescanned(tmp_path, monkeypatch):
    write_days(family_rows(1500, seed=10, days=2), tmp_path / "data")
    store = PartialStore(tmp_path / "store")
    calls = {"n": 0}
    original = pd.DataFrame.to_parquet

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:     # the second day's files, part way (a day: cells and three detail tables)
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing)
    with pytest.raises(OSError, match="disk full"):
        aggregate_incrementally(family_spec(), tmp_path / "data", store)
    monkeypatch.undo()
    fingerprint = next(p.name for p in store.folder.iterdir())
    assert len(store.load(fingerprint)) == 1
    assert not [p for p in (store.folder / fingerprint).iterdir() if p.name.startswith(".")]
    done = aggregate_incrementally(family_spec(), tmp_path / "data", store)
    assert len(done.scanned_days) == 1 and len(done.reused_days) == 1
    assert_same(done.stats, aggregate(family_spec(), tmp_path / "data"))


def test_integer_and_text_days_work_and_a_timestamp_is_refused(tmp_path):
    frame = family_rows(1500, seed=11, days=3)
    for label, values in (("number", frame["exposure_day"].map(lambda d: d.toordinal())),
                          ("text", frame["exposure_day"].astype(str))):
        path = tmp_path / f"{label}.parquet"
        frame.assign(exposure_day=values).to_parquet(path, index=False)
        done = aggregate_incrementally(family_spec(), path, tmp_path / label)
        assert len(done.scanned_days) == 3
        assert_same(done.stats, aggregate(family_spec(), path))
    stamped = tmp_path / "stamped.parquet"
    frame.assign(exposure_day=pd.to_datetime(frame["exposure_day"])).to_parquet(stamped, index=False)
    with pytest.raises(DataError, match=r"column 'exposure_day' \(day\) holds timestamp values; use a DATE"):
        aggregate_incrementally(family_spec(), stamped, tmp_path / "stamped")
    missing = frame.assign(exposure_day=frame["exposure_day"].where(frame.index != 3, None))
    missing.to_parquet(tmp_path / "missing.parquet", index=False)
    with pytest.raises(DataError, match=r"column 'exposure_day' \(day\) has 1 missing values"):
        aggregate_incrementally(family_spec(), tmp_path / "missing.parquet", tmp_path / "missing")


def test_spark_increments_equal_a_duckdb_full_scan(tmp_path, spark):
    frame = family_rows(3000, seed=12, days=3)
    days = write_days(frame, tmp_path / "all")
    live = tmp_path / "live"
    live.mkdir()
    for day in days[:2]:
        (tmp_path / "all" / f"{day}.parquet").rename(live / f"{day}.parquet")
    aggregate_incrementally(family_spec(), live, tmp_path / "store", engine=spark)
    (tmp_path / "all" / f"{days[2]}.parquet").rename(live / f"{days[2]}.parquet")
    done = aggregate_incrementally(family_spec(), live, tmp_path / "store", engine=spark)
    assert done.engine == "spark" and done.scanned_days == (days[2],)
    assert_same(done.stats, aggregate(family_spec(), live))


def test_a_stored_day_edited_on_disk_is_refused_and_rescan_rebuilds_it(tmp_path):
    # issue 17: an edited cells.parquet turned a +32.7% lift into -59.6% and was recorded as a look
    write_days(family_rows(2000, seed=11, days=2), tmp_path / "data")
    store = PartialStore(tmp_path / "store")
    aggregate_incrementally(family_spec(), tmp_path / "data", store)
    cells = next(store.folder.glob("*/*/cells.parquet"))
    table = pd.read_parquet(cells)
    numeric = table.select_dtypes("number").columns
    table[numeric] = table[numeric] + 1
    table.to_parquet(cells, index=False)
    with pytest.raises(DataError, match=r"cells.parquet: stored partial aggregates were modified on disk.*--rescan"):
        aggregate_incrementally(family_spec(), tmp_path / "data", store)
    done = aggregate_incrementally(family_spec(), tmp_path / "data", store, rescan=True)
    assert_same(done.stats, aggregate(family_spec(), tmp_path / "data"))
    assert len(aggregate_incrementally(family_spec(), tmp_path / "data", store).reused_days) == 2


def test_a_killed_writers_temporary_day_is_removed_by_the_next_save(tmp_path):
    write_days(family_rows(1500, seed=12, days=2), tmp_path / "data")
    store = PartialStore(tmp_path / "store")
    aggregate_incrementally(family_spec(), tmp_path / "data", store)
    root = next(store.folder.iterdir())
    stale = root / ".2026-03-09.999999999-0a1b2c3d.tmp"      # the name a writer with a dead pid left
    stale.mkdir()
    (stale / "cells.parquet").write_bytes(b"half")
    aggregate_incrementally(family_spec(), tmp_path / "data", store, rescan=True)
    assert not stale.exists()
