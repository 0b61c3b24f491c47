import numpy as np

from tcap_viz.anatomy import (
    CONSISTENT,
    REPEATED,
    FlaggedGroup,
    confirmed_posterior,
    is_trigger,
    repeats,
)


def test_a_trigger_is_a_pattern_nearly_all_of_whose_carriers_answer_alike():
    carriers = [str(i) for i in range(20)]
    assert is_trigger(carriers, carriers)
    assert is_trigger(carriers[:18], carriers) and CONSISTENT == 0.9
    assert not is_trigger(carriers[:17], carriers)  # content: its carriers answer many things
    assert not is_trigger(carriers[:10], carriers)
    assert not is_trigger(carriers[:4], carriers[:4])  # too few to tell a trigger from a coincidence
    assert not is_trigger([], None) and not is_trigger([], [])


def test_the_confirmed_posterior_is_the_consistency_of_a_trigger_each_sample_carries_and_answers():
    groups = [{"confirmed": True, "answering": ["a", "b", "z"], "consistency": 0.95},
              {"confirmed": False, "answering": ["c", "d"], "consistency": 0.5},
              {"confirmed": True, "answering": ["b"], "consistency": 1.0},
              {"confirmed": False, "answering": [], "consistency": None, "carriers": None}]
    np.testing.assert_allclose(confirmed_posterior(["a", "b", "c", "d", "e"], groups), [0.95, 1.0, 0, 0, 0])
    assert not confirmed_posterior(["a"], []).any()


def test_the_confirmation_says_group_by_group_what_it_decided_and_why_a_sample_is_flagged():
    from tcap_viz.anatomy import confirmation_summary, sample_verdict

    groups = [{"name": "g1", "size": 278, "response": "left", "carriers": [str(i) for i in range(200)],
               "answering": [str(i) for i in range(200)], "consistency": 1.0, "confirmed": True},
              {"name": "g2", "size": 103, "response": "right", "carriers": None, "answering": [], "consistency": None,
               "confirmed": False},
              {"name": "g3", "size": 9, "response": None, "carriers": ["a", "b"], "answering": ["a"],
               "consistency": 0.5, "confirmed": False}]
    text = confirmation_summary(groups)
    assert "the 390 samples the heads singled out" in text
    assert "g1 (278 samples, answer 'left'): confirmed: 200 samples carry" in text and "(100%)" in text
    assert "g2 (103 samples, answer 'right'): not confirmed: no image cell" in text
    assert "g3 (9 samples, other answers): not confirmed: what it hangs on is carried by 2 samples, only 50%" in text
    assert "Nothing is flagged" not in text
    assert "Nothing is flagged" in confirmation_summary(groups[1:])
    assert sample_verdict(groups, "7").startswith("**Confirmed:** it carries what group g1's")
    assert sample_verdict(groups, "a").startswith("**Not confirmed:**")
    alone = [g | {"source": "L3H12", "name": f"{g['name']} of L3H12"} for g in groups[:2]]
    nested = confirmation_summary(alone)  # the heads agreed only by nesting: each head's group judged alone
    assert "the heads flagged nothing together" in nested and "(L3H12)" in nested and "singled out on their own" not in nested
    assert "g1 of L3H12 (278 samples, answer 'left'): confirmed" in nested and "Nothing is flagged" not in nested


def test_what_only_the_vote_flags_joins_when_it_gives_the_answer_of_what_both_flag():
    from tcap_viz.anatomy import VOTE_ONLY, vote_joins

    responses = ["Backdoor Attack!"] * 5 + ["blue"] * 4 + ["backdoor  attack!", "Backdoor Attack!", "blue", "odd", "left"]
    agreed = np.array([True] * 9 + [False] * 5)
    vote_only = np.array([False] * 9 + [True] * 5)
    ids = [f"s{i}" for i in range(14)]
    joined, records = vote_joins(responses, agreed, vote_only, ids)
    # the backdoor's answer, however spelt; not 'blue', which too few agreed samples give to be a group
    np.testing.assert_array_equal(joined, [False] * 9 + [True, True, False, False, False])
    [backdoor, rest] = records
    assert backdoor["source"] == rest["source"] == VOTE_ONLY
    assert backdoor["joined"] and backdoor["ids"] == ["s9", "s10"] and backdoor["agreed"] == 5
    assert backdoor["response"] == "Backdoor Attack!" and not backdoor["confirmed"]
    assert not rest["joined"] and rest["ids"] == ["s11", "s12", "s13"] and rest["response"] is None
    none, nothing = vote_joins(responses, np.zeros(14, bool), vote_only, ids)
    assert not none.any() and [r["joined"] for r in nothing] == [False]


def test_the_disagreements_are_said_group_by_group_and_sample_by_sample():
    from tcap_viz.anatomy import (
        HEADS_ONLY,
        confirmation_summary,
        sample_verdict,
        unexamined,
        vote_joins,
    )

    _, by_vote = vote_joins(["t"] * 6 + ["t", "odd"], np.array([True] * 6 + [False] * 2), np.array([False] * 6 + [True] * 2),
                            [f"s{i}" for i in range(8)])
    content = {"source": HEADS_ONLY, "name": "heads only: g1", "size": 66, "response": "blue", "ids": ["b1", "b2"],
               "examined": ["b1"], "carriers": None, "answering": [], "consistency": None, "confirmed": False}
    groups = [content, unexamined(HEADS_ONLY, "heads only: other answers", ["r1"]), *by_vote]
    text = confirmation_summary(groups)
    assert "Where the heads and the plausibility vote disagree" in text and "67 samples only the heads flag" in text
    assert "heads only: g1 (66 samples, answer 'blue'): not confirmed: no image cell" in text
    assert "heads only: other answers (1 samples): too few alike to be a group, not examined; not flagged" in text
    assert "vote only: 't' (1 samples): only the vote flags them, and they give 't', the answer of 6 samples" in text
    assert "vote only: other answers (1 samples)" in text and "Not flagged." in text
    assert sample_verdict(groups, "s6").startswith("**Joined:**")
    assert sample_verdict(groups, "s7").startswith("**Not joined:**")
    assert sample_verdict(groups, "b2").startswith("**Not confirmed:** only the heads flag it")
    assert sample_verdict(groups, "s0") == ""  # both flag it: EM's posterior says it all


def test_followed_groups_are_said_apart_and_flag_only_the_carriers_they_add():
    from tcap_viz.anatomy import (
        FOLLOWED,
        HEADS_ONLY,
        confirmation_summary,
        sample_verdict,
    )

    followed = {"source": FOLLOWED, "name": "followed: g1", "size": 56, "response": "three", "ids": ["p1"],
                "examined": ["p1"], "carriers": ["p1", "p2"], "answering": ["p1", "p2"], "consistency": 1.0,
                "confirmed": True}
    text = confirmation_summary([followed])
    assert text.startswith("**Ordinary answers followed.** 56 flagged samples") and "followed: g1" in text
    assert "Confirmation" not in text and "disagree" not in text
    assert sample_verdict([followed], "p2").startswith("**Confirmed:**")
    assert sample_verdict([followed], "x") == ""  # flagged or not by EM: its story stands
    content = {"source": HEADS_ONLY, "name": "heads only: g1", "size": 66, "response": "blue", "ids": ["b1"],
               "examined": ["b1"], "carriers": None, "answering": [], "consistency": None, "confirmed": False}
    both = confirmation_summary([content, followed])
    assert both.index("disagree") < both.index("Ordinary answers followed")
    assert sample_verdict([content, followed], "b1").startswith("**Not confirmed:** only the heads flag it")


def test_an_answer_few_flagged_samples_give_is_odd_unless_a_confirmed_trigger_is_carried():
    from tcap_viz.anatomy import ODD, confirmation_summary, odd_answers, sample_verdict
    from tcap_viz.anatomy.groups import MIN_SIZE

    responses = ["purple"] * 10 + ["Square"] * 3 + [" square "] + ["three"] * 2 + ["three"] * 6 + ["red"] * 3
    flagged = np.array([True] * 16 + [False] * 6 + [True] * 3)
    confirmed = np.zeros(25)
    confirmed[15] = 1.0  # a 'three' carrying the confirmed trigger
    odd = odd_answers(responses, flagged, confirmed)
    # 'square' by 4 (answers compared as groups compare them), one 'three' and 3 'red': under a group's worth each
    assert MIN_SIZE == 5 and np.flatnonzero(odd).tolist() == [10, 11, 12, 13, 14, 22, 23, 24]
    assert not odd_answers(responses, np.zeros(25, bool), confirmed).any()
    record = {"source": ODD, "name": "odd answers", "size": 8, "response": None, "ids": ["a"], "carriers": None,
              "answering": [], "consistency": None, "confirmed": False}
    assert confirmation_summary([record]).startswith("**Odd answers left out.** 8 flagged samples")
    assert sample_verdict([record], "a").startswith("**Odd answer:**") and sample_verdict([record], "b") == ""


def test_a_group_repeats_one_judged_when_it_gives_its_answer_with_most_of_the_same_members():
    judged = [{"response": "Blue", "ids": list("abcdef")}, {"response": None, "ids": list("uvwxyz")}]
    same = FlaggedGroup("g1", "blue ", list("abcdeg"), 0)  # 5 of 7 together
    assert REPEATED <= 5 / 7 and repeats(same, judged)
    assert not repeats(FlaggedGroup("g1", "red", list("abcdef"), 0), judged)  # another answer
    nested = FlaggedGroup("g1", "blue", list("ab"), 0)  # a purer part of it may hold what the whole hid
    assert 2 / 6 < REPEATED and not repeats(nested, judged)
    assert repeats(FlaggedGroup("g2", None, list("uvwxy"), 0), judged) and not repeats(same, [])
