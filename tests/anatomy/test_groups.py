import pandas as pd
import pytest

from tcap_viz.anatomy import flagged_groups


def _table(rows):
    return pd.DataFrame(rows, columns=["id", "response", "posterior", "flagged", "voting_heads"])


def test_groups_by_shared_answer_largest_first_with_answers_outside_counted():
    rows = [(f"p{i}", "Backdoor Attack!", 0.99 - i / 100, True, "110") for i in range(8)]
    rows += [(f"b{i}", " blue", 0.9, True, "001") for i in range(6)]
    rows += [(f"c{i}", "Blue ", 0.1, False, "000") for i in range(4)]  # the same answer, not flagged
    rows += [("r1", "red", 0.8, True, "001"), ("x", "red", 0.2, False, "000")]
    groups = flagged_groups(_table(rows), [(1, 2), (3, 4), (5, 6)])
    assert [g.name for g in groups] == ["g1", "g2", "g3"]
    assert groups[0].response == "Backdoor Attack!" and groups[0].ids == [f"p{i}" for i in range(8)]
    assert groups[0].outside == 0 and groups[0].heads == [(1, 2), (3, 4)]
    assert groups[1].size == 6 and groups[1].outside == 4  # case and spaces do not split an answer
    assert groups[1].heads == [(5, 6)]
    assert groups[2].response is None and groups[2].ids == ["r1"]  # a stray answer joins the pooled rest
    assert "8 samples" in groups[0].describe() and "other answers" in groups[2].describe()


def test_vote_patterns_keep_their_leading_zeros_and_a_run_without_heads_has_none():
    rows = [(f"p{i}", "x", 0.9, True, "01") for i in range(5)]
    assert flagged_groups(_table(rows), [(0, 0), (0, 1)])[0].heads == [(0, 1)]
    assert flagged_groups(_table(rows), [])[0].heads == []


def test_nothing_flagged_is_no_group_and_a_table_without_answers_is_a_clear_error():
    assert flagged_groups(_table([("a", "x", 0.1, False, "0")]), [(0, 0)]) == []
    with pytest.raises(ValueError, match="no 'response' column"):
        flagged_groups(pd.DataFrame({"id": ["a"], "posterior": [0.9], "flagged": [True]}))
