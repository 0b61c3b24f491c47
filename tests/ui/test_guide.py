from tcap_viz.ui.guide import guide_steps

TABS = {"overview", "samples", "sample", "heads", "map", "anatomy", "triage"}


def test_the_guide_walks_through_this_run_with_its_own_sample_and_head(session):
    steps = guide_steps(session)
    assert [s.title[:2] for s in steps] == [f"{i}." for i in range(1, len(steps) + 1)]
    assert {s.tab for s in steps} <= TABS and steps[-1].tab == "triage"
    top = session.queue().iloc[0]["id"]
    opened = [s for s in steps if s.sample]
    assert opened and {s.sample for s in opened} == {top} and all(s.tab == "sample" for s in opened)
    heads = [s for s in steps if s.head]
    assert [s.head for s in heads] == [session.selected_heads()[0]]
    assert f"L{heads[0].head[0]}H{heads[0].head[1]}" in heads[0].text
    assert "the detector never reads those labels" in steps[0].text  # the tiny data has labels
    assert "confirmation" not in next(s for s in steps if s.title.startswith("5.")).text  # none ran here


def test_a_run_that_flagged_nothing_is_walked_through_without_a_sample_to_open(session):
    steps = guide_steps(session, threshold=1.0)
    assert not any(s.sample for s in steps)
    assert "Nothing is flagged" in next(s for s in steps if s.tab == "anatomy").text


def test_the_guide_explains_the_confirmation_when_the_run_had_one(demo_scan):
    from tcap_viz.review.session import ReviewSession

    session = ReviewSession.from_run(demo_scan.run.path)  # the demo: scanned without its base, confirmed
    em = next(s for s in guide_steps(session) if s.title.startswith("5."))
    assert "**confirmation**" in em.text and "200 are now" in em.text


def test_the_guide_says_when_heads_and_vote_disagreed():
    from tcap_viz.anatomy import VOTE_ONLY, unexamined
    from tcap_viz.ui.guide import _confirmation_words

    words = _confirmation_words([unexamined(VOTE_ONLY, "vote only: 't'", ["a"], "t", joined=True, agreed=6)])
    assert "disagreed" in words and "**trigger**" in words and "**confirmation**" not in words
    assert _confirmation_words(None) == ""


def test_the_guide_says_when_an_ordinary_answer_was_followed():
    from tcap_viz.anatomy import FOLLOWED, VOTE_ONLY, unexamined
    from tcap_viz.ui.guide import _confirmation_words

    followed = unexamined(FOLLOWED, "followed: g1", ["a"], "three")
    alone = _confirmation_words([followed])
    assert "**ordinary answer**" in alone and "disagreed" not in alone and "**confirmation**" not in alone
    both = _confirmation_words([unexamined(VOTE_ONLY, "vote only: 't'", ["b"], "t", joined=True, agreed=6), followed])
    assert both.index("disagreed") < both.index("**ordinary answer**")


def test_the_guide_says_when_odd_answers_were_left_out():
    from tcap_viz.anatomy import FOLLOWED, ODD, unexamined
    from tcap_viz.ui.guide import _confirmation_words

    odd = unexamined(ODD, "odd answers", ["x", "y"])
    alone = _confirmation_words([odd])
    assert "left out" in alone and "**ordinary answer**" not in alone and "**confirmation**" not in alone
    both = _confirmation_words([unexamined(FOLLOWED, "followed: g1", ["a"], "three"), odd])
    assert both.index("**ordinary answer**") < both.index("left out")
