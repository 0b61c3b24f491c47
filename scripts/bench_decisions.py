"""Benchmark: what one review decision costs as the decision log grows (issue 13: under 100 ms p99 at 1M events).

    python scripts/bench_decisions.py [--sizes 1000 10000 100000 1000000] [--repeats 200]

For each log size, a fresh log is filled with that many decisions (100,000 samples, 8 reviewers,
a tenth of them undone), then timed, each call on its own connection as the app makes them:
- record: one decision appended (the event and the sample's standing row, one transaction);
- undo: a reviewer's latest standing decision taken back;
- follow: what a view reads after a decision (`changes_since` its last event: only what changed);
- current: every standing decision (what an export's manifest reads), median of 3;
- first release: the standing decisions as the first release computed them on every decision
  (a correlated query over the whole log), run only up to 10k events: it grows quadratically.
With --session, also what the app does for one decision on the demo run (2,000 samples; scanned
first if its cache is cold): `ReviewSession.decide` and the triage queue it redraws, on a log
already holding that many events for the demo's samples.
Prints a markdown table; docs/APP_PERFORMANCE.md holds the committed numbers.
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.demo import DEMO_DATA, DEMO_MODEL, default_run_dir  # noqa: E402
from tcap_viz.review.session import ReviewSession  # noqa: E402
from tcap_viz.storage.decisions import DecisionLog  # noqa: E402

RUN, SAMPLES, REVIEWERS = "run", 100_000, 8
FIRST_RELEASE_CURRENT = (
    "SELECT sample_id, decision, reviewer, note, at, id FROM events e WHERE run = ? "
    "AND decision != 'undo' AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id) "
    "AND id = (SELECT MAX(id) FROM events f WHERE f.run = e.run AND f.sample_id = e.sample_id "
    "AND f.decision != 'undo' AND NOT EXISTS (SELECT 1 FROM events v WHERE v.undoes = f.id)) ORDER BY id")


def filled_log(folder: Path, size: int, run: str = RUN, ids: list[str] | None = None) -> DecisionLog:
    """A log of `size` events written in bulk (as many single decisions would leave it), state rebuilt."""
    path = folder / f"log-{size}-{len(ids or [])}.sqlite"
    ids = ids or [f"s{i:06d}" for i in range(SAMPLES)]
    rng = np.random.default_rng(0)
    with closing(sqlite3.connect(path)) as db:
        db.execute("""CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL,
            sample_id TEXT NOT NULL, decision TEXT NOT NULL, undoes INTEGER, reviewer TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '', at TEXT NOT NULL)""")
        decisions = rng.choice(["poison", "clean", "unsure"], size)
        samples, reviewers = rng.integers(len(ids), size=size), rng.integers(REVIEWERS, size=size)
        rows = [(run, ids[s], d, None, f"r{r}", "2026-11-28T00:00:00Z")
                for s, d, r in zip(samples, decisions, reviewers)]
        undone = rng.choice(size, size // 10, replace=False)
        for i in undone:  # an undo event naming an earlier decision, as the app writes it
            rows[i] = (run, rows[i][1], "undo", int(rng.integers(1, i + 1)) if i else None, rows[i][4], rows[i][5])
        db.executemany("INSERT INTO events (run, sample_id, decision, undoes, reviewer, at) VALUES (?, ?, ?, ?, ?, ?)",
                       [r for r in rows if r[3] is not None or r[2] != "undo"])
        db.commit()
    return DecisionLog(path)  # an old-format log: the state table is built on open


def timed(action, repeats: int) -> list[float]:
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        action(i)
        times.append(1000 * (time.perf_counter() - started))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--session", action="store_true", help="also time one decision in the app's session (demo)")
    args = parser.parse_args()
    print(f"{platform.machine()}, {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{args.repeats} calls per step\n")
    print("| events in the log | step | median ms | p99 ms |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            started = time.perf_counter()
            log = filled_log(Path(tmp), size)
            built = time.perf_counter() - started
            rows = {
                "record": timed(lambda i: log.record(RUN, f"s{i:06d}", "poison", f"r{i % REVIEWERS}"), args.repeats),
                "undo": timed(lambda i: log.undo(RUN, f"r{i % REVIEWERS}"), args.repeats),
            }
            seen = log.last_event(RUN)

            def follow(i):
                log.record(RUN, f"s{i:06d}", "clean", "r0")
                log.changes_since(RUN, seen + 2 * i)

            rows["follow (record + changes_since)"] = timed(follow, args.repeats)
            rows["current (every standing decision)"] = timed(lambda i: log.current(RUN), 3)
            if size <= 10_000:
                with closing(sqlite3.connect(log.path)) as db:
                    db.execute("DROP INDEX events_undoes")  # the first release had no such index
                    rows["first release: current, on every decision"] = timed(
                        lambda i: db.execute(FIRST_RELEASE_CURRENT, (RUN,)).fetchall(), 3)
            for step, times in rows.items():
                p99 = "" if len(times) < 10 else f"{np.percentile(times, 99):.1f}"
                print(f"| {size:,} | {step} | {statistics.median(times):.1f} | {p99} |", flush=True)
            print(f"| {size:,} | (open an old log: build the state table) | {1000 * built:.0f} | |", flush=True)
            if args.session:
                print(f"| {size:,} | app session: decide + triage queue (demo) | "
                      + session_row(Path(tmp), size, args.repeats) + " |", flush=True)


def session_row(folder: Path, size: int, repeats: int) -> str:
    run = default_run_dir(DEMO_MODEL, DEMO_DATA)
    opened = ReviewSession(DEMO_MODEL, DEMO_DATA, run).open()
    ids = list(opened.table()["id"])
    log = filled_log(folder, size, opened.run_name, ids)
    session = ReviewSession(DEMO_MODEL, DEMO_DATA, run, decisions=log.path).open()
    session.queue()  # the first view reads the whole state once

    def decide(i):
        session.decide(ids[i % len(ids)], "poison", "ana")
        session.queue()

    times = timed(decide, repeats)
    return f"{statistics.median(times):.1f} | {np.percentile(times, 99):.1f}"


if __name__ == "__main__":
    main()
