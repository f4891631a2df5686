"""The ledger: round trip, append-only, time order, concurrent writers, kill -9, foreign/corrupt files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bayes_ab.checkins.ledger import Ledger
from bayes_ab.errors import LedgerError

WRITER = """
import sys
from bayes_ab.checkins.ledger import Ledger
path, tag, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ledger = Ledger(path, "exp")
i = 0
while count < 0 or i < count:
    ledger.append(as_of="2026-01-01T00:00:00Z", recorded_at=tag, fingerprint=f"{tag}-{i}", action="hold",
                  posterior_dir="p", payload={"tag": tag, "i": i, "blob": "x" * size})
    i += 1
"""


def append(ledger: Ledger, as_of: str = "2026-01-01T00:00:00Z", **payload) -> int:
    return ledger.append(as_of=as_of, recorded_at="t", fingerprint="f", action="hold",
                         posterior_dir="p", payload=payload).look


def writer(path: Path, tag: str, count: int, size: int = 10) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, str(count), str(size)])


def test_round_trip_keeps_order_and_payloads(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite", "exp")
    for day in range(1, 4):
        append(ledger, f"2026-01-0{day}T00:00:00Z", day=day, p=0.5 + day / 10, nested={"a": [1, 2]})
    looks = Ledger(tmp_path / "ledger.sqlite", "exp").looks()
    assert [r.look for r in looks] == [1, 2, 3]
    assert [r.payload["day"] for r in looks] == [1, 2, 3]
    assert looks[1].payload == {"day": 2, "p": 0.7, "nested": {"a": [1, 2]}}


def test_is_append_only_and_in_time_order(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite", "exp")
    append(ledger, "2026-01-05T00:00:00Z")
    with pytest.raises(LedgerError, match="earlier than look 1"):
        append(ledger, "2026-01-04T00:00:00Z")
    con = sqlite3.connect(tmp_path / "ledger.sqlite")
    for statement in ("DELETE FROM looks", "UPDATE looks SET action = 'ship'"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(statement)
    con.close()
    assert len(ledger.looks()) == 1


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "ledger.sqlite"
    procs = [writer(path, tag, 25) for tag in ("a", "b", "c")]
    assert [p.wait(timeout=600) for p in procs] == [0, 0, 0]
    looks = Ledger(path, "exp").looks()
    assert [r.look for r in looks] == list(range(1, 76))
    for tag in "abc":
        assert sorted(r.payload["i"] for r in looks if r.payload["tag"] == tag) == list(range(25))


def test_a_killed_writer_leaves_only_complete_looks(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path, "exp")
    append(ledger, "2026-01-01T00:00:00Z", before=True)
    proc = writer(path, "k", -1, size=2_000_000)          # 2 MB payloads, forever
    deadline = time.time() + 300
    while len(ledger.looks()) < 4 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.13)                                       # land somewhere inside a later write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    looks = Ledger(path, "exp").looks()                    # validates and checks every checksum
    assert looks[0].payload == {"before": True} and len(looks) >= 4
    assert all(len(r.payload["blob"]) == 2_000_000 for r in looks[1:])
    assert append(Ledger(path, "exp"), "2026-01-02T00:00:00Z") == looks[-1].look + 1


def test_foreign_and_corrupted_files_are_refused(tmp_path):
    text = tmp_path / "text.sqlite"
    text.write_text("look,action\n1,ship\n")
    with pytest.raises(LedgerError, match="not an SQLite database"):
        Ledger(text, "exp")
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE looks (x)")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="another application"):
        Ledger(other, "exp")
    good = tmp_path / "good.sqlite"
    append(Ledger(good, "exp"), blob="y" * 50_000)
    with pytest.raises(LedgerError, match="belongs to experiment 'exp'"):
        Ledger(good, "other")
    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(good.read_bytes()[:6000])
    with pytest.raises(LedgerError, match="corrupted"):
        Ledger(truncated, "exp").looks()
    assert len(Ledger(good, "exp").looks()) == 1          # the original is untouched


def test_a_tampered_look_fails_its_checksum(tmp_path):
    path = tmp_path / "ledger.sqlite"
    append(Ledger(path, "exp"), p=0.5)
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER looks_append_only_update")
    con.execute("UPDATE looks SET payload = '{\"p\": 0.99}'")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="look 1 is corrupted"):
        Ledger(path, "exp").looks()


def test_an_empty_file_from_an_interrupted_creation_is_a_new_ledger(tmp_path):
    path = tmp_path / "ledger.sqlite"
    path.touch()
    ledger = Ledger(path, "exp")
    assert ledger.looks() == []
    assert append(ledger) == 1


# -- the chain and the seal (issue 17: a ledger whose triggers were dropped must not show a forged history) --

def _tamper(path: Path, *statements: str) -> None:
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER looks_append_only_update")
    con.execute("DROP TRIGGER looks_append_only_delete")
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.close()


def _three_looks(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path, "exp")
    for day in (1, 2, 3):
        append(ledger, f"2026-01-0{day}T00:00:00Z", p=day / 10)
    return path


def _rechain(path: Path) -> None:
    """What a careful forger does after editing a look: recompute every checksum and chain digest."""
    import hashlib

    from bayes_ab.checkins.ledger import chain_digest, genesis

    con = sqlite3.connect(path)
    rows = con.execute("SELECT look, as_of, recorded_at, fingerprint, action, posterior_dir, payload "
                       "FROM looks ORDER BY look").fetchall()
    previous = genesis("exp")
    for look, as_of, recorded_at, fingerprint, action, posterior_dir, text in rows:
        checksum = hashlib.sha256(text.encode()).hexdigest()
        previous = chain_digest(previous, look, as_of, recorded_at, fingerprint, action, posterior_dir, checksum)
        con.execute("UPDATE looks SET checksum = ?, chain = ? WHERE look = ?", (checksum, previous, look))
    con.commit()
    con.close()


@pytest.mark.parametrize("statements, message", [
    (["DELETE FROM looks WHERE look = 2"], "look 2 is missing"),
    (["UPDATE looks SET action = 'ship' WHERE look = 1"], "look 1 was altered"),
    (["UPDATE looks SET as_of = '2025-12-31T00:00:00Z' WHERE look = 2"], "look 2 was altered"),
    (["DELETE FROM looks WHERE look = 3"], "seal ledger.sqlite.seal records 3 look"),
])
def test_a_removed_or_altered_look_is_reported(tmp_path, statements, message):
    path = _three_looks(tmp_path)
    _tamper(path, *statements)
    with pytest.raises(LedgerError, match=message):
        Ledger(path, "exp")


def test_a_forged_payload_with_recomputed_checksums_breaks_the_seal(tmp_path):
    path = _three_looks(tmp_path)
    _tamper(path, "UPDATE looks SET payload = '{\"p\": 0.99}' WHERE look = 2")
    with pytest.raises(LedgerError, match="look 2 is corrupted"):
        Ledger(path, "exp")
    _rechain(path)
    with pytest.raises(LedgerError, match="do not match the seal"):
        Ledger(path, "exp")


def test_a_seal_one_look_behind_is_moved_forward_and_a_deleted_one_is_refused(tmp_path):
    """A writer killed between its commit and its seal leaves the seal one look behind -- or, on the very first look,
    absent: both are completed from the verified chain. The seal is replaced atomically, so from the second look on
    an absent seal was deleted: refused, not silently re-created."""
    path = _three_looks(tmp_path)
    seal = path.with_name("ledger.sqlite.seal")
    seal.unlink()
    with pytest.raises(LedgerError, match="the seal ledger.sqlite.seal is missing but the ledger holds 3 looks: it was "
                                          "deleted"):
        Ledger(path, "exp")
    single = tmp_path / "single" / "ledger.sqlite"
    append(Ledger(single, "exp"), "2026-01-01T00:00:00Z")
    single_seal = single.with_name("ledger.sqlite.seal")
    written = single_seal.read_text()
    single_seal.unlink()
    assert Ledger(single, "exp").head.look == 1 and single_seal.read_text() == written


def test_a_removed_last_look_is_found_by_its_folder(tmp_path):
    """Deleting the last look's row and the seal together: the look's folder, named only after its row was
    committed, still tells."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path, "exp")
    for day in (1, 2, 3):
        folder = f"looks/2026-01-0{day}T000000Z-0000000{day}"
        (tmp_path / folder).mkdir(parents=True)
        ledger.append(as_of=f"2026-01-0{day}T00:00:00Z", recorded_at="t", fingerprint="f", action="hold",
                      posterior_dir=folder, payload={"day": day})
    (tmp_path / "looks" / ".tmp-ignored").mkdir()
    assert Ledger(path, "exp").head.look == 3
    _tamper(path, "DELETE FROM looks WHERE look = 3")
    seal = path.with_name("ledger.sqlite.seal")
    seal.unlink()
    with pytest.raises(LedgerError, match="the seal ledger.sqlite.seal is missing but the ledger holds 2 looks"):
        Ledger(path, "exp")
    # even with the seal rewritten to the shortened chain, the removed look's folder tells
    con = sqlite3.connect(path)
    digest = con.execute("SELECT chain FROM looks WHERE look = 2").fetchone()[0]
    con.close()
    seal.write_text(json.dumps({"experiment": "exp", "look": 2, "digest": digest}))
    with pytest.raises(LedgerError, match=r"looks/ holds 1 look folder\(s\) no look of the ledger points at \(e\.g\. "
                                          r"looks/2026-01-03T000000Z-00000003\)"):
        Ledger(path, "exp")


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_a_lost_ledger_is_refused_not_restarted(tmp_path, how):
    path = _three_looks(tmp_path)
    if how == "truncated":
        path.write_bytes(b"")
    else:
        path.unlink()
    with pytest.raises(LedgerError, match="seal records 3 look.*truncated or deleted"):
        Ledger(path, "exp")
    path.with_name("ledger.sqlite.seal").unlink()               # and without the seal: the look folders tell
    (tmp_path / "looks" / "2026-01-01T000000Z-0a1b2c3d").mkdir(parents=True)
    with pytest.raises(LedgerError, match="holds 1 look folder"):
        Ledger(path, "exp")


def test_a_version_1_ledger_is_chained_on_open(tmp_path):
    import hashlib
    import json

    path = tmp_path / "ledger.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        PRAGMA application_id = 1650549297; PRAGMA user_version = 1;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE looks (look INTEGER PRIMARY KEY, as_of TEXT NOT NULL, recorded_at TEXT NOT NULL,
            fingerprint TEXT NOT NULL, action TEXT, posterior_dir TEXT NOT NULL, payload TEXT NOT NULL,
            checksum TEXT NOT NULL);
        CREATE TRIGGER looks_append_only_update BEFORE UPDATE ON looks
            BEGIN SELECT RAISE(ABORT, 'the check-in ledger is append-only'); END;
        INSERT INTO meta VALUES ('experiment', 'exp');
    """)
    for look in (1, 2):
        text = json.dumps({"look": look})
        con.execute("INSERT INTO looks VALUES (?, ?, 't', 'f', 'hold', 'p', ?, ?)",
                    (look, f"2026-01-0{look}T00:00:00Z", text, hashlib.sha256(text.encode()).hexdigest()))
    con.commit()
    con.close()
    ledger = Ledger(path, "exp")
    assert [r.payload for r in ledger.looks()] == [{"look": 1}, {"look": 2}]
    assert append(ledger, "2026-01-03T00:00:00Z") == 3
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM looks")
    con.close()
    _tamper(path, "UPDATE looks SET action = 'ship' WHERE look = 1")
    with pytest.raises(LedgerError, match="look 1 was altered"):
        Ledger(path, "exp")
