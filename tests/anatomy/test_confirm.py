import numpy as np

from tcap_viz.anatomy import CONSISTENT, confirmed_posterior, is_trigger


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
