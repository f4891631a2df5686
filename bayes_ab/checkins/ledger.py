"""The check-in ledger: an append-only SQLite database of looks, one file per experiment.

Why SQLite: it ships with Python, every write is a transaction (a killed process leaves either the
whole look or none of it), and concurrent writers are serialised by its file lock. The file is
marked with an application id and a schema version so that a foreign or corrupted file is refused
instead of being written to; every look also carries a SHA-256 of its payload, checked on read.
Updates and deletes are refused by triggers: the trajectory of looks is a record, not a cache.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayes_ab.display import HtmlRepr
from bayes_ab.errors import LedgerError

APPLICATION_ID = 0x62616231          # "bab1"
SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 60.0

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE looks (
        look          INTEGER PRIMARY KEY,
        as_of         TEXT NOT NULL,
        recorded_at   TEXT NOT NULL,
        fingerprint   TEXT NOT NULL,
        action        TEXT,
        posterior_dir TEXT NOT NULL,
        payload       TEXT NOT NULL,
        checksum      TEXT NOT NULL
    )""",
    """CREATE TRIGGER looks_append_only_update BEFORE UPDATE ON looks
        BEGIN SELECT RAISE(ABORT, 'the check-in ledger is append-only'); END""",
    """CREATE TRIGGER looks_append_only_delete BEFORE DELETE ON looks
        BEGIN SELECT RAISE(ABORT, 'the check-in ledger is append-only'); END""",
)
_LAST = "SELECT look, as_of FROM looks ORDER BY look DESC LIMIT 1"


@dataclass(frozen=True)
class LookRecord(HtmlRepr):
    """One stored look. ``payload`` holds effects, recommendation and diagnostics (JSON-ready)."""

    look: int
    as_of: str
    recorded_at: str
    fingerprint: str
    action: str | None
    posterior_dir: str
    payload: dict[str, Any]


class Ledger:
    """The ledger file of one experiment; created on first append.

    Parameters
    ----------
    path
        The SQLite file (``models/<experiment>/ledger.sqlite`` by convention).
    experiment
        The experiment it belongs to; a ledger of another experiment is refused.
    """

    def __init__(self, path: str | Path, experiment: str):
        self.path = Path(path)
        self.experiment = experiment
        if self._has_content():
            self._validate()

    def append(self, *, as_of: str, recorded_at: str, fingerprint: str, action: str | None,
               posterior_dir: str, payload: dict[str, Any]) -> LookRecord:
        """Add one look in a single transaction and return it with its look number.

        Raises
        ------
        LedgerError
            When ``as_of`` is earlier than the last look's (the trajectory is in time order).
        """
        text = json.dumps(payload, sort_keys=True, allow_nan=True)
        checksum = hashlib.sha256(text.encode()).hexdigest()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect(create=True) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                self._require_in_order(as_of, con.execute(_LAST).fetchone())
                cursor = con.execute(
                    "INSERT INTO looks (as_of, recorded_at, fingerprint, action, posterior_dir, payload, checksum)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (as_of, recorded_at, fingerprint, action, posterior_dir, text, checksum))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return LookRecord(int(cursor.lastrowid), as_of, recorded_at, fingerprint, action, posterior_dir, payload)

    def check_can_append(self, as_of: str) -> None:
        """Raise :class:`LedgerError` now if a look ``as_of`` could not be appended (out of time order)."""
        if self._has_content():
            with self._connect(create=False) as con:
                self._require_in_order(as_of, con.execute(_LAST).fetchone())

    def _require_in_order(self, as_of: str, last: tuple[int, str] | None) -> None:
        if last and as_of < last[1]:
            raise LedgerError(f"{self.path}: look as of {as_of} is earlier than look {last[0]} "
                              f"(as of {last[1]}); looks are recorded in time order")

    def looks(self) -> list[LookRecord]:
        """Every look in order; an empty list when the ledger does not exist yet."""
        if not self._has_content():
            return []
        with self._connect(create=False) as con:
            rows = con.execute("SELECT look, as_of, recorded_at, fingerprint, action, posterior_dir, payload, "
                               "checksum FROM looks ORDER BY look").fetchall()
        records = []
        for look, as_of, recorded_at, fingerprint, action, posterior_dir, text, checksum in rows:
            if hashlib.sha256(text.encode()).hexdigest() != checksum:
                raise LedgerError(f"{self.path}: look {look} is corrupted (its checksum does not match)")
            records.append(LookRecord(look, as_of, recorded_at, fingerprint, action, posterior_dir,
                                      json.loads(text)))
        return records

    def _connect(self, create: bool) -> closing[sqlite3.Connection]:
        fresh = create and not self._has_content()
        try:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            con.execute("PRAGMA synchronous = FULL")
            if fresh:
                self._initialise(con)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: cannot open the check-in ledger ({exc})") from None
        return closing(con)

    def _has_content(self) -> bool:
        # SQLite writes nothing to a new file until its first transaction commits, so a 0-byte file
        # is a ledger whose creation was interrupted: it holds no looks.
        return self.path.exists() and self.path.stat().st_size > 0

    def _initialise(self, con: sqlite3.Connection) -> None:
        con.execute("BEGIN IMMEDIATE")
        if con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
            con.execute("ROLLBACK")        # another process created it first
            return
        for statement in (f"PRAGMA application_id = {APPLICATION_ID}", f"PRAGMA user_version = {SCHEMA_VERSION}",
                          *_SCHEMA):
            con.execute(statement)
        con.execute("INSERT INTO meta VALUES ('experiment', ?)", (self.experiment,))
        con.execute("COMMIT")

    def _validate(self) -> None:
        with open(self.path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header != SQLITE_HEADER:
            raise LedgerError(f"{self.path}: not a bayes-ab check-in ledger (not an SQLite database)")
        try:
            # read-write on purpose: after a killed writer SQLite must roll back the hot journal it left
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            try:
                app, version = (con.execute(f"PRAGMA {p}").fetchone()[0] for p in ("application_id", "user_version"))
                if app != APPLICATION_ID:
                    raise LedgerError(f"{self.path}: not a bayes-ab check-in ledger (another application's database)")
                if version != SCHEMA_VERSION:
                    raise LedgerError(f"{self.path}: ledger schema version {version} is not supported "
                                      f"(this bayes-ab reads version {SCHEMA_VERSION})")
                check = con.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise LedgerError(f"{self.path}: the check-in ledger is corrupted ({check})")
                owner = con.execute("SELECT value FROM meta WHERE key = 'experiment'").fetchone()
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: the check-in ledger is corrupted ({exc})") from None
        if owner is None or owner[0] != self.experiment:
            raise LedgerError(f"{self.path}: this ledger belongs to experiment "
                              f"{owner[0] if owner else '?'!r}, not {self.experiment!r}")

