import threading

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

    assert log.undo("run", "ana") == second
    assert log.current("run").set_index("sample_id")["decision"].to_dict() == {"s1": "clean", "s2": "poison"}
    assert log.undo("run", "ana") == first
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
