import random
import sqlite3
import threading
from contextlib import closing

import pytest

from tcap_viz.storage.decisions import DecisionLog


def test_latest_decision_stands_and_history_keeps_everything(tmp_path):
    log = DecisionLog(tmp_path / "decisions.sqlite")
    log.record("run", "s1", "unsure", "ana", note="odd patch?")
    log.record("run", "s1", "poison", "ana")
    log.record("run", "s2", "clean", "ben")
    log.record("other", "s1", "clean", "ana")

    current = log.current("run").set_index("sample_id")
    assert current["decision"].to_dict() == {"s1": "poison", "s2": "clean"}
    assert current.loc["s2", "reviewer"] == "ben"
    assert log.history("run", "s1")["decision"].tolist() == ["unsure", "poison"]
    assert log.history("run", "s1")["note"].tolist() == ["odd patch?", ""]


def test_undo_appends_and_restores_the_previous_decision(tmp_path):
    log = DecisionLog(tmp_path / "decisions.sqlite")
    first = log.record("run", "s1", "clean", "ana")
    second = log.record("run", "s1", "poison", "ana")
    log.record("run", "s2", "poison", "ben")

    assert log.undo("run", "ana") == (second, "s1")
    assert log.current("run").set_index("sample_id")["decision"].to_dict() == {"s1": "clean", "s2": "poison"}
    assert log.undo("run", "ana") == (first, "s1")
    assert log.current("run")["sample_id"].tolist() == ["s2"]  # ben's decision is not ana's to undo
    assert log.undo("run", "ana") is None
    assert len(log.history("run")) == 5  # nothing deleted: 3 decisions, 2 undos


def test_decisions_survive_reopening(tmp_path):
    DecisionLog(tmp_path / "d.sqlite").record("run", "s1", "poison", "ana")
    assert DecisionLog(tmp_path / "d.sqlite").current("run")["decision"].tolist() == ["poison"]


def test_two_reviewers_writing_at_once_lose_nothing(tmp_path):
    log = DecisionLog(tmp_path / "d.sqlite")

    def review(name):
        for i in range(50):
            log.record("run", f"{name}-{i}", "poison", name)

    threads = [threading.Thread(target=review, args=(name,)) for name in ("ana", "ben")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.current("run")) == 100


@pytest.mark.parametrize("decision, reviewer", [("maybe", "ana"), ("poison", "  ")])
def test_bad_decisions_are_refused(tmp_path, decision, reviewer):
    with pytest.raises(ValueError):
        DecisionLog(tmp_path / "d.sqlite").record("run", "s1", decision, reviewer)


def test_last_event_versions_the_log(tmp_path):
    log = DecisionLog(tmp_path / "d.sqlite")
    assert log.last_event("r") == 0
    first = log.record("r", "a", "poison", "ana")
    assert log.last_event("r") == first
    log.undo("r", "ana")
    assert log.last_event("r") > first and log.last_event("other") == 0


def _replay(history):
    """The standing decisions by their definition: the latest event of a sample not undone."""
    undone = set(history["undoes"].dropna().astype(int))
    standing = history[(history["decision"] != "undo") & ~history["event"].isin(undone)]
    return standing.groupby("sample_id")["event"].max().to_dict()


def test_the_state_table_always_agrees_with_the_log(tmp_path):
    log, rng = DecisionLog(tmp_path / "d.sqlite"), random.Random(0)
    seen = 0
    following = {}  # what a view applying changes_since would show
    for step in range(400):
        if rng.random() < 0.3:
            log.undo("run", rng.choice(["ana", "bo"]))
        else:
            log.record("run", f"s{rng.randrange(30)}", rng.choice(["poison", "clean", "unsure"]),
                       rng.choice(["ana", "bo"]))
        if step % 37 == 0:
            changed, seen = log.changes_since("run", seen)
            following.update(dict(zip(changed["sample_id"], changed["event"])))
    current = log.current("run")
    assert dict(zip(current["sample_id"], current["event"])) == _replay(log.history("run"))
    changed, _ = log.changes_since("run", seen)
    following.update(dict(zip(changed["sample_id"], changed["event"])))
    assert {s: e for s, e in following.items() if e} == _replay(log.history("run"))


def test_an_undo_back_to_nothing_reads_as_pending(tmp_path):
    log = DecisionLog(tmp_path / "d.sqlite")
    event = log.record("run", "s1", "poison", "ana")
    log.undo("run", "ana")
    changed, newest = log.changes_since("run", event)
    assert changed["decision"].tolist() == ["pending"] and newest > event
    assert log.current("run").empty


def test_a_log_written_before_the_state_table_gets_it_on_open(tmp_path):
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as db:  # the first release's schema and events
        db.executescript("""
            CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL, sample_id TEXT NOT NULL,
                decision TEXT NOT NULL, undoes INTEGER, reviewer TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
                at TEXT NOT NULL);
            INSERT INTO events (run, sample_id, decision, undoes, reviewer, at) VALUES
                ('run', 'a', 'poison', NULL, 'ana', 't'), ('run', 'a', 'clean', NULL, 'bo', 't'),
                ('run', 'b', 'poison', NULL, 'ana', 't'), ('run', 'a', 'undo', 2, 'bo', 't');
        """)
        db.commit()
    log = DecisionLog(path)
    assert log.current("run").set_index("sample_id")["decision"].to_dict() == {"a": "poison", "b": "poison"}
    assert len(log.history("run")) == 4


def _work(log, action):
    """SQLite virtual-machine steps an action takes: a count, not a timing, so it is the same on any machine."""
    steps = [0]
    connect = log._connect

    def counted():
        db = connect()
        db.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1), 1)
        return db

    log._connect = counted
    try:
        action()
    finally:
        log._connect = connect
    return steps[0]


def test_a_decision_costs_the_same_at_any_length_of_log(tmp_path):
    log = DecisionLog(tmp_path / "d.sqlite")
    costs = []
    for size in (1_000, 20_000):
        with closing(log._connect()) as db:  # grow the log quickly, with its state
            db.execute("BEGIN")
            first = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
            db.executemany("INSERT INTO events (run, sample_id, decision, reviewer, at) VALUES ('run', ?, ?, ?, 't')",
                           [(f"s{i % 5000}", "poison", f"r{i % 7}") for i in range(size)])
            db.execute("INSERT OR REPLACE INTO standing SELECT run, sample_id, MAX(id) FROM events "
                       "WHERE id > ? GROUP BY run, sample_id", (first,))
            db.execute("COMMIT")
        seen = log.last_event("run")

        def decide_and_read():
            log.record("run", "s1", "clean", "ana")
            log.undo("run", "ana")
            log.record("run", "s2", "unsure", "ana", note="why")
            log.changes_since("run", seen)

        costs.append(_work(log, decide_and_read))
    assert costs[1] < 1.5 * costs[0], costs


def test_a_note_has_a_bound(tmp_path):
    with pytest.raises(ValueError, match="note"):
        DecisionLog(tmp_path / "d.sqlite").record("run", "s1", "poison", "ana", note="x" * 100_000)


def test_a_group_decision_is_one_event_per_sample_and_is_undone_as_a_group(tmp_path):
    log = DecisionLog(tmp_path / "d.sqlite")
    log.record("run", "x", "clean", "ana")
    events = log.record_many("run", ["a", "b", "c"], "poison", "ana", "one trigger", batch="g1:1")
    assert len(events) == 3
    history = log.history("run")
    assert history.loc[history["batch"] == "g1:1", "sample_id"].tolist() == ["a", "b", "c"]
    log.record("run", "b", "unsure", "bo")  # another reviewer changes one of them afterwards
    assert log.undo("run", "ana") == (events[2], "c")  # the whole batch still standing, latest first
    current = log.current("run").set_index("sample_id")["decision"].to_dict()
    assert current == {"x": "clean", "b": "unsure"}  # bo's own decision stands
    assert log.undo("run", "ana") == (1, "x")  # then ana's decision before the group


def test_a_group_decision_is_all_or_nothing(tmp_path):
    log = DecisionLog(tmp_path / "d.sqlite")
    with pytest.raises(ValueError, match="must be one of"):
        log.record_many("run", ["a", "b"], "maybe", "ana", batch="g1:1")
    assert log.history("run").empty
