"""Reviewers' decisions as an append-only event log in SQLite (WAL).

Nothing is ever updated or deleted: a decision is a new row, and so is an undo (it names the
event it takes back). The current state of a sample is its latest event that was not undone.
So a refresh, a restart or a crash loses nothing, the full history stays auditable, and two
reviewers writing at once only add rows (SQLite serialises the writes; WAL lets readers go on).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

DECISIONS = ("poison", "clean", "unsure")
#: What a sample with no (remaining) decision is shown as.
PENDING = "pending"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('poison', 'clean', 'unsure', 'undo')),
    undoes INTEGER REFERENCES events(id),
    reviewer TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run_sample ON events(run, sample_id);
"""
_COLUMNS = ["sample_id", "decision", "reviewer", "note", "at", "event"]


class DecisionLog:
    """The decisions of every run kept in one SQLite file (one connection per call, so it is
    safe from Gradio's worker threads and from several app processes)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def record(self, run: str, sample_id: str, decision: str, reviewer: str, note: str = "") -> int:
        """Append one decision; returns its event id."""
        if decision not in DECISIONS:
            raise ValueError(f"decision {decision!r} must be one of: {', '.join(DECISIONS)}")
        if not reviewer.strip():
            raise ValueError("a decision needs a reviewer name (log in, or type a name)")
        with closing(self._connect()) as db:
            cursor = db.execute(
                "INSERT INTO events (run, sample_id, decision, reviewer, note, at) VALUES (?, ?, ?, ?, ?, ?)",
                (run, str(sample_id), decision, reviewer.strip(), note, _now()))
            return int(cursor.lastrowid)

    def undo(self, run: str, reviewer: str) -> int | None:
        """Take back this reviewer's latest decision in `run` that still stands.

        Returns the undone event's id, or None when there is nothing left to undo.
        """
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")  # no other writer between the lookup and the append
            row = db.execute(
                "SELECT id, sample_id FROM events e WHERE run = ? AND reviewer = ? AND decision != 'undo' "
                "AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id) ORDER BY id DESC LIMIT 1",
                (run, reviewer.strip())).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return None
            db.execute("INSERT INTO events (run, sample_id, decision, undoes, reviewer, note, at) "
                       "VALUES (?, ?, 'undo', ?, ?, '', ?)", (run, row[1], row[0], reviewer.strip(), _now()))
            db.execute("COMMIT")
        return row[0]

    def last_event(self, run: str) -> int:
        """Id of the run's newest event (0 for none): the log only grows, so this versions it."""
        with closing(self._connect()) as db:
            return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events WHERE run = ?", (run,)).fetchone()[0])

    def current(self, run: str) -> pd.DataFrame:
        """One row per decided sample: its standing decision (latest event not undone)."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT sample_id, decision, reviewer, note, at, id FROM events e WHERE run = ? "
                "AND decision != 'undo' AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id) "
                "AND id = (SELECT MAX(id) FROM events f WHERE f.run = e.run AND f.sample_id = e.sample_id "
                "AND f.decision != 'undo' AND NOT EXISTS (SELECT 1 FROM events v WHERE v.undoes = f.id)) "
                "ORDER BY id", (run,)).fetchall()
        return pd.DataFrame(rows, columns=_COLUMNS)

    def history(self, run: str, sample_id: str | None = None) -> pd.DataFrame:
        """Every event of a run (or of one sample), oldest first, undos included."""
        query = "SELECT sample_id, decision, reviewer, note, at, id, undoes FROM events WHERE run = ?"
        params: tuple = (run,)
        if sample_id is not None:
            query, params = query + " AND sample_id = ?", (run, str(sample_id))
        with closing(self._connect()) as db:
            rows = db.execute(query + " ORDER BY id", params).fetchall()
        return pd.DataFrame(rows, columns=[*_COLUMNS, "undoes"])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
