"""The check-in ledger: an append-only SQLite database of looks, one file per experiment.

Why SQLite: it ships with Python, every write is a transaction (a killed process leaves either the
whole look or none of it), and concurrent writers are serialised by its file lock. The file is
marked with an application id and a schema version so that a foreign or corrupted file is refused
instead of being written to. Updates and deletes are refused by triggers: the trajectory of looks is a
record, not a cache.

Triggers stop mistakes, not someone who drops them. So the looks are also *chained*, as an append-only
log is: every look stores a SHA-256 of its payload and a chain digest covering its own fields, that
checksum and the previous look's chain digest; and after every append the chain's head (look number and
digest) is copied to a seal file beside the ledger (``ledger.seal``). Every open recomputes the chain and
compares it with the seal, so a removed, reordered or altered look — even one whose checksums were
recomputed — is reported instead of shown. Someone able to rewrite the ledger *and* the seal can still
forge a history; ``bayes-ab history`` prints the head digest so that it can be kept elsewhere (a ticket,
a review) and compared.
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
from bayes_ab.files import temporary_target, write_atomically

APPLICATION_ID = 0x62616231          # "bab1"
SCHEMA_VERSION = 2                   # 2: looks carry a chain digest (version 1 ledgers are upgraded on open)
SEAL_SUFFIX = ".seal"
LOOKS_FOLDER = "looks"
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 60.0

_TRIGGERS = (
    """CREATE TRIGGER looks_append_only_update BEFORE UPDATE ON looks
        BEGIN SELECT RAISE(ABORT, 'the check-in ledger is append-only'); END""",
    """CREATE TRIGGER looks_append_only_delete BEFORE DELETE ON looks
        BEGIN SELECT RAISE(ABORT, 'the check-in ledger is append-only'); END""",
)
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
        checksum      TEXT NOT NULL,
        chain         TEXT NOT NULL
    )""",
    *_TRIGGERS,
)
_LAST = "SELECT look, as_of, chain FROM looks ORDER BY look DESC LIMIT 1"
_FIELDS = "look, as_of, recorded_at, fingerprint, action, posterior_dir, payload, checksum"


def chain_digest(previous: str, look: int, as_of: str, recorded_at: str, fingerprint: str, action: str | None,
                 posterior_dir: str, checksum: str) -> str:
    """The chain digest of one look: its fields, its payload checksum and the previous look's digest."""
    fields = json.dumps([previous, look, as_of, recorded_at, fingerprint, action, posterior_dir, checksum])
    return hashlib.sha256(fields.encode()).hexdigest()


def genesis(experiment: str) -> str:
    """The "previous digest" of look 1: the chain starts from the experiment's name."""
    return hashlib.sha256(f"bayes-ab ledger of {experiment}".encode()).hexdigest()


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


@dataclass(frozen=True)
class ChainHead:
    """The last look of a verified ledger and its chain digest (what the seal file holds)."""

    look: int
    digest: str


class Ledger:
    """The ledger file of one experiment; created on first append.

    Opening an existing ledger verifies it: format, owner, integrity, every payload checksum and the
    chain against the seal (see the module's docstring). A version 1 ledger (before chaining) is upgraded
    in place, in one transaction.

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
        self.seal_path = self.path.with_name(self.path.name + SEAL_SUFFIX)
        self._upgraded = False          # a version 1 ledger chained on this open has no seal yet
        if self._has_content():
            self._validate()
            self.head = self._verify_chain()
        else:
            self._refuse_lost_ledger()
            self.head = None

    def append(self, *, as_of: str, recorded_at: str, fingerprint: str, action: str | None,
               posterior_dir: str, payload: dict[str, Any]) -> LookRecord:
        """Add one look in a single transaction, seal the chain's new head and return the look.

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
                last = con.execute(_LAST).fetchone()
                self._require_in_order(as_of, last)
                look = 1 if last is None else last[0] + 1
                chain = chain_digest(genesis(self.experiment) if last is None else last[2], look, as_of,
                                     recorded_at, fingerprint, action, posterior_dir, checksum)
                con.execute(f"INSERT INTO looks ({_FIELDS}, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (look, as_of, recorded_at, fingerprint, action, posterior_dir, text, checksum, chain))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._seal(con)
        self.head = ChainHead(look, chain)
        return LookRecord(look, as_of, recorded_at, fingerprint, action, posterior_dir, payload)

    def check_can_append(self, as_of: str) -> None:
        """Raise :class:`LedgerError` now if a look ``as_of`` could not be appended (out of time order)."""
        if self._has_content():
            with self._connect(create=False) as con:
                self._require_in_order(as_of, con.execute(_LAST).fetchone())

    def _require_in_order(self, as_of: str, last: tuple | None) -> None:
        if last and as_of < last[1]:
            raise LedgerError(f"{self.path}: look as of {as_of} is earlier than look {last[0]} "
                              f"(as of {last[1]}); looks are recorded in time order")

    def looks(self) -> list[LookRecord]:
        """Every look in order (the chain verified again); an empty list when the ledger does not exist yet."""
        if not self._has_content():
            return []
        rows = self._rows()
        self._check_rows(rows, self._read_seal())
        return [LookRecord(look, as_of, recorded_at, fingerprint, action, posterior_dir, json.loads(text))
                for look, as_of, recorded_at, fingerprint, action, posterior_dir, text, _, _ in rows]

    # -- verification ---------------------------------------------------------------------------------------

    def _rows(self) -> list[tuple]:
        with self._connect(create=False) as con:
            return con.execute(f"SELECT {_FIELDS}, chain FROM looks ORDER BY look").fetchall()

    def posterior_dirs(self) -> list[str]:
        """Every look's posterior folder (relative to the ledger's folder), without reading the payloads."""
        if not self._has_content():
            return []
        with self._connect(create=False) as con:
            return [row[0] for row in con.execute("SELECT posterior_dir FROM looks ORDER BY look")]

    def _check_rows(self, rows: list[tuple], sealed: ChainHead | None) -> ChainHead | None:
        """Recompute every checksum and the chain; compare the head with the seal ``sealed``."""
        previous, head = genesis(self.experiment), None
        for index, (look, as_of, recorded_at, fingerprint, action, posterior_dir, text, checksum, chain) in \
                enumerate(rows, start=1):
            if look != index:
                raise LedgerError(f"{self.path}: look {index} is missing (the next stored look is {look}); "
                                  "looks were removed from the ledger")
            if hashlib.sha256(text.encode()).hexdigest() != checksum:
                raise LedgerError(f"{self.path}: look {look} is corrupted (its checksum does not match)")
            expected = chain_digest(previous, look, as_of, recorded_at, fingerprint, action, posterior_dir, checksum)
            if chain != expected:
                raise LedgerError(f"{self.path}: look {look} was altered (its chain digest does not match "
                                  "the looks before it)")
            previous, head = chain, ChainHead(look, chain)
        if sealed is not None:
            if head is None or head.look < sealed.look:
                raise LedgerError(f"{self.path}: the seal {self.seal_path.name} records {sealed.look} look(s) but "
                                  f"the ledger holds {0 if head is None else head.look}: looks were removed")
            if rows[sealed.look - 1][8] != sealed.digest:
                raise LedgerError(f"{self.path}: looks 1-{sealed.look} do not match the seal "
                                  f"{self.seal_path.name}: the ledger was rewritten")
        return head

    def _verify_chain(self) -> ChainHead | None:
        folders = self._final_look_folders()   # listed before the rows: a folder is named only after its row commits
        sealed = self._read_seal()
        rows = self._rows()
        head = self._check_rows(rows, sealed)
        if sealed is None and head is not None and head.look > 1 and not self._upgraded:
            # the seal is replaced atomically after every look, so from the second look on it is never absent: only a
            # deletion removes it (re-creating it would also bless whatever was removed with it)
            raise LedgerError(f"{self.path}: the seal {self.seal_path.name} is missing but the ledger holds "
                              f"{head.look} looks: it was deleted, perhaps with the last looks; restore both from a "
                              "backup")
        orphans = sorted(folders - {row[5] for row in rows})
        if orphans:
            raise LedgerError(f"{self.path}: {LOOKS_FOLDER}/ holds {len(orphans)} look folder(s) no look of the ledger "
                              f"points at (e.g. {orphans[0]}): looks were removed from the ledger; restore it from a "
                              "backup")
        if head is not None and (sealed is None or sealed.look < head.look):
            try:
                with self._connect(create=False) as con:      # a writer stopped between its commit and its seal
                    self._seal(con)
            except (OSError, sqlite3.OperationalError):       # a read-only copy: verified, left as it is
                pass
        return head

    def _final_look_folders(self) -> set[str]:
        """The look folders under their final names, as the ledger records them (``looks/<name>``).

        A look's folder gets its final name only after its ledger row is committed, so such a folder that no row
        points at is the trace of a removed look; temporaries of killed check-ins are tidied, not counted."""
        looks = self.path.parent / LOOKS_FOLDER
        if not looks.is_dir():
            return set()
        return {f"{LOOKS_FOLDER}/{entry.name}" for entry in looks.iterdir()
                if entry.is_dir() and temporary_target(entry) is None and not entry.name.startswith(".")}

    def _read_seal(self) -> ChainHead | None:
        try:
            raw = json.loads(self.seal_path.read_text())
            if raw.get("experiment") != self.experiment:
                raise LedgerError(f"{self.seal_path}: the seal belongs to experiment {raw.get('experiment')!r}, "
                                  f"not {self.experiment!r}")
            return ChainHead(int(raw["look"]), str(raw["digest"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LedgerError(f"{self.seal_path}: unreadable seal of the check-in ledger ({exc})") from None

    def _seal(self, con: sqlite3.Connection) -> None:
        """Copy the chain's head to the seal, under the ledger's write lock so that seals only move forward."""
        con.execute("BEGIN IMMEDIATE")
        try:
            last = con.execute(_LAST).fetchone()
            if last is not None:
                seal = {"experiment": self.experiment, "look": last[0], "digest": last[2]}
                write_atomically(self.seal_path, lambda tmp: tmp.write_text(json.dumps(seal)))
        finally:
            con.execute("ROLLBACK")

    def _refuse_lost_ledger(self) -> None:
        """A missing or empty ledger is new, unless its seal or committed look folders say looks were recorded."""
        sealed = self._read_seal()
        looks = self.path.parent / LOOKS_FOLDER
        folders = [p for p in looks.iterdir() if not p.name.startswith(".")] if looks.is_dir() else []
        if sealed is None and not folders:
            return
        found = f"its seal records {sealed.look} look(s)" if sealed else f"{looks} holds {len(folders)} look folder(s)"
        state = "is empty" if self.path.exists() else "is missing"
        raise LedgerError(f"{self.path} {state} but {found}: the ledger was truncated or deleted; restore it "
                          "from a backup, or move the experiment's folder away to start a new ledger")

    # -- connection and format ------------------------------------------------------------------------------

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
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                app, version = (con.execute(f"PRAGMA {p}").fetchone()[0] for p in ("application_id", "user_version"))
                if app != APPLICATION_ID:
                    raise LedgerError(f"{self.path}: not a bayes-ab check-in ledger (another application's database)")
                if version not in (1, SCHEMA_VERSION):
                    raise LedgerError(f"{self.path}: ledger schema version {version} is not supported "
                                      f"(this bayes-ab reads versions 1 and {SCHEMA_VERSION})")
                check = con.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise LedgerError(f"{self.path}: the check-in ledger is corrupted ({check})")
                owner = con.execute("SELECT value FROM meta WHERE key = 'experiment'").fetchone()
                if owner is not None and owner[0] == self.experiment and version == 1:
                    self._upgrade(con)
                    self._upgraded = True
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: the check-in ledger is corrupted ({exc})") from None
        if owner is None or owner[0] != self.experiment:
            raise LedgerError(f"{self.path}: this ledger belongs to experiment "
                              f"{owner[0] if owner else '?'!r}, not {self.experiment!r}")

    def _upgrade(self, con: sqlite3.Connection) -> None:
        """Version 1 -> 2: chain the stored looks (payload checksums verified first), in one transaction."""
        con.execute("BEGIN IMMEDIATE")
        try:
            if con.execute("PRAGMA user_version").fetchone()[0] != 1:      # upgraded meanwhile by another process
                con.execute("ROLLBACK")
                return
            rows = con.execute(f"SELECT {_FIELDS} FROM looks ORDER BY look").fetchall()
            con.execute("ALTER TABLE looks ADD COLUMN chain TEXT NOT NULL DEFAULT ''")
            for name in ("looks_append_only_update", "looks_append_only_delete"):
                con.execute(f"DROP TRIGGER IF EXISTS {name}")
            previous = genesis(self.experiment)
            for look, as_of, recorded_at, fingerprint, action, posterior_dir, text, checksum in rows:
                if hashlib.sha256(text.encode()).hexdigest() != checksum:
                    raise LedgerError(f"{self.path}: look {look} is corrupted (its checksum does not match); "
                                      "the version 1 ledger was not upgraded")
                previous = chain_digest(previous, look, as_of, recorded_at, fingerprint, action, posterior_dir,
                                        checksum)
                con.execute("UPDATE looks SET chain = ? WHERE look = ?", (previous, look))
            for statement in _TRIGGERS:
                con.execute(statement)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
