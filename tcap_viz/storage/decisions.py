"""Reviewers' decisions as an append-only event log in SQLite (WAL), with its current state beside it.

Nothing in the log is ever updated or deleted: a decision is a new row, and so is an undo (it
names the event it takes back). The current state of a sample is its latest event that was not
undone. So a refresh, a restart or a crash loses nothing, the full history stays auditable, and
two reviewers writing at once only add rows (SQLite serialises the writes; WAL lets readers go on).

Reading the state off the log costs work in proportion to the log (a million events for a
100k-sample review), so a `standing` table keeps each sample's standing decision and is written
in the same transaction as the event that changes it: the two can never disagree, and a
decision costs the same at the millionth event as at the first. The table is derived data; a
log written before it existed gets it built once, on open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

DECISIONS = ("poison", "clean", "unsure")
#: What a sample with no (remaining) decision is shown as.
PENDING = "pending"
#: A note is a reviewer's reason, not a document; it is copied into every export's manifest.
MAX_NOTE = 2000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('poison', 'clean', 'unsure', 'undo')),
    undoes INTEGER REFERENCES events(id),
    reviewer TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    batch TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_run_sample ON events(run, sample_id);
CREATE INDEX IF NOT EXISTS events_run_id ON events(run, id);
CREATE INDEX IF NOT EXISTS events_run_reviewer ON events(run, reviewer, id);
CREATE INDEX IF NOT EXISTS events_undoes ON events(undoes);
CREATE TABLE IF NOT EXISTS standing (
    run TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    event INTEGER NOT NULL REFERENCES events(id),
    PRIMARY KEY (run, sample_id)
);
"""
_STATE_VERSION = 1  # PRAGMA user_version once `standing` is built
_COLUMNS = ["sample_id", "decision", "reviewer", "note", "at", "event"]
_STANDING = ("SELECT s.sample_id, e.decision, e.reviewer, e.note, e.at, e.id FROM standing s "
             "JOIN events e ON e.id = s.event")
_NOT_UNDONE = "NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id)"


class DecisionLog:
    """The decisions of every run kept in one SQLite file (one connection per call, so it is
    safe from Gradio's worker threads and from several app processes)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            with _transaction(db):
                for statement in filter(str.strip, _SCHEMA.split(";")):  # executescript would COMMIT
                    db.execute(statement)
                if "batch" not in {row[1] for row in db.execute("PRAGMA table_info(events)")}:
                    db.execute("ALTER TABLE events ADD COLUMN batch TEXT NOT NULL DEFAULT ''")  # a log from before groups
                if db.execute("PRAGMA user_version").fetchone()[0] < _STATE_VERSION:
                    _build_standing(db)
                    db.execute(f"PRAGMA user_version = {_STATE_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def record(self, run: str, sample_id: str, decision: str, reviewer: str, note: str = "") -> int:
        """Append one decision; returns its event id."""
        return self.record_many(run, [sample_id], decision, reviewer, note)[0]

    def record_many(self, run: str, sample_ids, decision: str, reviewer: str, note: str = "",
                    batch: str = "") -> list[int]:
        """Append one decision per sample in one transaction (all or none), each its own event tagged
        with ``batch`` (a group decision: an undo takes the whole batch back); returns the event ids."""
        if decision not in DECISIONS:
            raise ValueError(f"decision {decision!r} must be one of: {', '.join(DECISIONS)}")
        if not reviewer.strip():
            raise ValueError("a decision needs a reviewer name (log in, or type a name)")
        if len(note) > MAX_NOTE:
            raise ValueError(f"the note has {len(note)} characters; keep it under {MAX_NOTE} "
                             "(say why in a sentence; link to a longer write-up)")
        events, at = [], _now()
        with closing(self._connect()) as db, _transaction(db):
            for sample_id in sample_ids:
                event = int(db.execute(
                    "INSERT INTO events (run, sample_id, decision, reviewer, note, at, batch) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run, str(sample_id), decision, reviewer.strip(), note, at, batch)).lastrowid)
                db.execute("INSERT OR REPLACE INTO standing (run, sample_id, event) VALUES (?, ?, ?)",
                           (run, str(sample_id), event))
                events.append(event)
        return events

    def undo(self, run: str, reviewer: str) -> tuple[int, str] | None:
        """Take back this reviewer's latest decision in `run` that was not undone yet; when it was
        part of a group decision (a batch), every decision of that batch still standing.

        Returns the undone event's id and its sample (the latest of the batch), or None when there is
        nothing left to undo.
        """
        return (self.undo_batch(run, reviewer) or [None])[0]

    def undo_batch(self, run: str, reviewer: str) -> list[tuple[int, str]]:
        """As `undo`, returning every (event, sample) taken back, latest first."""
        reviewer = reviewer.strip()
        with closing(self._connect()) as db, _transaction(db):  # no writer between the lookup and the append
            row = db.execute(
                f"SELECT id, sample_id, batch FROM events e WHERE run = ? AND reviewer = ? AND decision != 'undo' "
                f"AND {_NOT_UNDONE} ORDER BY id DESC LIMIT 1", (run, reviewer)).fetchone()
            if row is None:
                return []
            rows = [row[:2]] if not row[2] else db.execute(
                f"SELECT id, sample_id FROM events e WHERE run = ? AND reviewer = ? AND batch = ? "
                f"AND decision != 'undo' AND {_NOT_UNDONE} ORDER BY id DESC", (run, reviewer, row[2])).fetchall()
            at = _now()
            for event, sample_id in rows:
                db.execute("INSERT INTO events (run, sample_id, decision, undoes, reviewer, note, at, batch) "
                           "VALUES (?, ?, 'undo', ?, ?, '', ?, ?)", (run, str(sample_id), event, reviewer, at, row[2]))
                _restand(db, run, str(sample_id))
        return [(int(event), str(sample_id)) for event, sample_id in rows]

    def last_event(self, run: str) -> int:
        """Id of the run's newest event (0 for none): the log only grows, so this versions it."""
        with closing(self._connect()) as db:
            return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events WHERE run = ?", (run,)).fetchone()[0])

    def current(self, run: str) -> pd.DataFrame:
        """One row per decided sample: its standing decision (latest event not undone)."""
        with closing(self._connect()) as db:
            rows = db.execute(f"{_STANDING} WHERE s.run = ? ORDER BY e.id", (run,)).fetchall()
        return pd.DataFrame(rows, columns=_COLUMNS)

    def changes_since(self, run: str, event: int) -> tuple[pd.DataFrame, int]:
        """The standing decision of every sample touched by an event after `event`, and the newest
        event id. A sample whose decisions were all undone comes back with decision `pending`, so a
        view can follow the log by applying the difference instead of rereading everything."""
        with closing(self._connect()) as db, _transaction(db, "DEFERRED"):  # one snapshot for both reads
            rows = db.execute(
                "SELECT t.sample_id, COALESCE(e.decision, ?), COALESCE(e.reviewer, ''), COALESCE(e.note, ''), "
                "COALESCE(e.at, ''), COALESCE(e.id, 0) FROM "
                "(SELECT DISTINCT sample_id FROM events INDEXED BY events_run_id WHERE run = ? AND id > ?) t "
                "LEFT JOIN standing s ON s.run = ? AND s.sample_id = t.sample_id "
                "LEFT JOIN events e ON e.id = s.event", (PENDING, run, event, run)).fetchall()
            newest = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events WHERE run = ?", (run,)).fetchone()[0])
        return pd.DataFrame(rows, columns=_COLUMNS), newest

    def history(self, run: str, sample_id: str | None = None) -> pd.DataFrame:
        """Every event of a run (or of one sample), oldest first, undos included."""
        query = "SELECT sample_id, decision, reviewer, note, at, id, undoes, batch FROM events WHERE run = ?"
        params: tuple = (run,)
        if sample_id is not None:
            query, params = query + " AND sample_id = ?", (run, str(sample_id))
        with closing(self._connect()) as db:
            rows = db.execute(query + " ORDER BY id", params).fetchall()
        return pd.DataFrame(rows, columns=[*_COLUMNS, "undoes", "batch"])


@contextmanager
def _transaction(db: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[None]:
    """IMMEDIATE takes the write lock first, so the event and the state it changes land together."""
    db.execute(f"BEGIN {mode}")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _restand(db: sqlite3.Connection, run: str, sample_id: str) -> None:
    """Point the sample's standing row at its latest event not undone (or remove it: pending)."""
    row = db.execute(f"SELECT id FROM events e WHERE run = ? AND sample_id = ? AND decision != 'undo' "
                     f"AND {_NOT_UNDONE} ORDER BY id DESC LIMIT 1", (run, sample_id)).fetchone()
    if row is None:
        db.execute("DELETE FROM standing WHERE run = ? AND sample_id = ?", (run, sample_id))
    else:
        db.execute("INSERT OR REPLACE INTO standing (run, sample_id, event) VALUES (?, ?, ?)", (run, sample_id, row[0]))


def _build_standing(db: sqlite3.Connection) -> None:
    """The state of a log written before the table existed: one pass over the events."""
    db.execute("DELETE FROM standing")
    db.execute(f"INSERT INTO standing (run, sample_id, event) SELECT run, sample_id, MAX(id) FROM events e "
               f"WHERE decision != 'undo' AND {_NOT_UNDONE} GROUP BY run, sample_id")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
