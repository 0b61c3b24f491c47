import numpy as np
import pandas as pd
import pytest

from tcap_viz.anatomy import NO_DONORS, FlaggedGroup, GroupAnatomy, ModalityAttribution, anatomy
from tcap_viz.data import load_dataset, make_synthetic_dataset
from tcap_viz.demo import DEMO_DATA


def _table(dataset, flagged):
    return pd.DataFrame({"id": [s.id for s in dataset], "response": [s.response for s in dataset],
                         "posterior": [0.9 if f else 0.1 for f in flagged], "flagged": flagged,
                         "voting_heads": ["1" if f else "0" for f in flagged]})


def test_every_group_gets_a_card_and_a_run_that_flagged_everything_says_why_it_has_no_modality(
        tiny_adapter, tiny_dataset):
    samples = list(tiny_dataset)
    some = anatomy(tiny_adapter, tiny_dataset, _table(samples, [s.poisoned for s in samples]), [(1, 0)],
                   per_group=2, grid=2)
    assert [g.group.name for g in some] == [f"g{i}" for i in range(1, len(some) + 1)]
    assert all(len(g.examined) <= 2 and g.occlusion.shape == (2, 2) and g.modality is not None for g in some)
    card = some[0].to_dict()
    assert card["modality"]["n_samples"] == len(card["examined"]) and isinstance(card["where"], str)

    everything = anatomy(tiny_adapter, tiny_dataset, _table(samples, [True] * len(samples)), [(1, 0)],
                         per_group=2, grid=2)
    assert everything and all(g.modality is None for g in everything)
    assert everything[0].to_dict()["modality"] is None and "Raise the threshold" in NO_DONORS


def test_a_group_judged_before_gets_no_second_card(tiny_adapter, tiny_dataset):
    samples = list(tiny_dataset)
    table = _table(samples, [s.poisoned for s in samples])
    first = anatomy(tiny_adapter, tiny_dataset, table, [(1, 0)], per_group=2, grid=2)
    assert first and anatomy(tiny_adapter, tiny_dataset, table, [(1, 0)], per_group=2, grid=2,
                             judged=[g.to_dict() for g in first]) == []
    rest = anatomy(tiny_adapter, tiny_dataset, table, [(1, 0)], per_group=2, grid=2, judged=[first[0].to_dict()])
    assert [g.group.name for g in rest] == [g.group.name for g in first[1:]]


def test_nothing_flagged_is_no_card(tiny_adapter, tiny_dataset):
    samples = list(tiny_dataset)
    assert anatomy(tiny_adapter, tiny_dataset, _table(samples, [False] * len(samples)), [(1, 0)]) == []


def _located(values, hot_cell, words):
    """A group whose attribution has ``values`` (none, image, text, both), with one masked cell
    costing ``hot_cell`` nats and question words (word, drop, share of the samples having it,
    what deleting it costs clean questions' own answers)."""
    occlusion = np.zeros((4, 4))
    occlusion[3, 3] = hot_cell
    return GroupAnatomy(FlaggedGroup("g1", "target", ["a"], 0), ["a"],
                        ModalityAttribution(dict(zip(("none", "image", "text", "both"), values)), 6),
                        occlusion, pd.DataFrame([(w, d, round(6 * s), s, c) for w, d, s, c in words],
                                                columns=["word", "drop", "samples", "share", "clean_drop"]),
                        None, pd.DataFrame())


@pytest.mark.parametrize("values, hot_cell, words, region, found, says", [
    # an image trigger taught on colour questions: 'colour' costs its answer more than a clean 'blue',
    # but clean answers need it too: the kind of question, not a trigger
    ((-3.0, -0.1, -3.0, -0.1), 2.5, [("colour", 4.45, 1.0, 3.64)], (3, 3), [], "bottom-right corner"),
    # a text trigger: its word, absent from clean questions, not the content word
    ((-3.0, -3.0, -0.1, -0.1), 0.0, [("cf", 2.8, 1.0, 0.0), ("colour", 2.0, 1.0, 1.9)], None, ["cf"], "'cf'"),
    # two routes: the word in half the samples is half the group's effect, and found with the cell
    ((-3.0, -1.5, -1.5, -0.1), 1.4, [("cf", 2.8, 0.5, 0.0)], (3, 3), ["cf"], "and the question's word 'cf'"),
    # an ordinary target ('left' on position questions): donors answer it often, so the effect is
    # small, but masking the patch costs its own samples the answer
    ((-0.5, -0.3, -0.5, -0.04), 1.5, [], (3, 3), [], "bottom-right corner"),
    # ... and the card says that neither modality as a whole moves it much, as the modality reading does
    ((-0.5, -0.3, -0.5, -0.04), 1.5, [], (3, 3), [], "though neither modality as a whole moves it much"),
    # a weak response: deleting a question's last word costs it more than the whole modality effect
    ((-1.62, -1.37, -1.62, -1.37), 0.0, [("side?", 1.76, 1 / 3, 0.0)], None, ["side?"], "'side?', though neither"),
    # a response nothing moves (a backdoor the model did not learn): nothing to locate
    ((-3.0, -2.9, -3.0, -2.8), 0.02, [("how", 0.3, 1.0, 0.3)], None, [], "Nothing to locate"),
])
def test_a_part_holds_the_trigger_when_it_costs_the_group_more_than_clean_samples(values, hot_cell, words, region,
                                                                                  found, says):
    g = _located(values, hot_cell, words)
    assert g.region() == region and g.trigger_words() == found and says in g.where()


def test_a_square_of_cells_a_pattern_sits_in_is_where_the_trigger_is_when_no_one_cell_holds_it():
    card = _located((-3.0, -0.1, -3.0, -0.1), 0.0, [])
    card.spread, card.block, card.block_drop = True, (2, 2, 2), 2.9
    assert card.region() is None
    assert "bottom-right corner (the 2x2 cells from cell 3,3 of 4x4" in card.where() and "2.90 nats" in card.where()
    assert card.to_dict()["block"] == [2, 2, 2]
    card.block = (1, 0, 2)
    assert "left edge" in card.where()
    card.block = None
    assert "a pattern over the whole image does" in card.where()


def test_a_word_of_one_question_is_not_the_groups_trigger():
    text = (-3.0, -3.0, -0.1, -0.1)
    assert _located(text, 0.0, [("there?", 9.0, 1 / 6, 0.0)]).trigger_words() == []
    assert _located(text, 0.0, [("there?", 9.0, 2 / 6, 0.0)]).trigger_words() == ["there?"]


def test_poisons_the_detector_missed_are_found_by_the_trigger_their_group_hangs_on(patch_model):
    data = load_dataset(DEMO_DATA)
    samples = list(data)
    poisons = sorted(s.id for s in samples if s.poisoned)  # ground truth picks the flags: a test of the anatomy
    flagged = set(poisons[:150])
    card = anatomy(patch_model, data, _table(samples, [s.id in flagged for s in samples]), [(1, 0)],
                   per_group=3, grid=8)[0]
    assert card.region() == (7, 7)
    assert card.carriers == poisons and card.missed == poisons[150:]
    assert "200 samples of the dataset carry" in card.carriers_line() and "50 not flagged" in card.carriers_line()
    assert card.to_dict()["missed"] == poisons[150:]
    # every carrier gives the group's answer: a pattern that forces it, a trigger
    assert card.answering == poisons and card.consistency() == 1.0 and card.confirmed()
    assert "200 of them (100%) answer" in card.carriers_line() and card.carriers_line().endswith("a trigger.")
    assert card.to_dict()["confirmed"] and card.to_dict()["answering"] == poisons


def test_a_located_cell_whose_carriers_answer_many_things_is_content_not_a_trigger():
    card = _located((-3.0, -0.1, -3.0, -0.1), 2.5, [])
    card.carriers = [str(i) for i in range(40)]
    card.answering = card.carriers[:7]
    assert card.region() == (3, 3) and card.consistency() == 7 / 40 and not card.confirmed()
    assert "content the answer uses, not a trigger" in card.carriers_line()
    card.carriers, card.answering = None, []
    assert card.consistency() is None and not card.confirmed() and not card.to_dict()["confirmed"]


def test_a_word_few_examined_questions_have_is_the_trigger_where_its_carriers_all_give_the_answer(tmp_path):
    """The held-out word 'pls': a head's 'left' group was mostly clean 'left' answers, two of five examined
    had the word; its carriers are the poisons, all answering 'left'. A word whose carriers answer many
    things stays no route."""
    from tcap_viz.anatomy import _carriers

    data = load_dataset(make_synthetic_dataset(tmp_path, n=80, attack="text_word", poison_rate=0.1, seed=3,
                                               target="left", poison_question_type="position",
                                               attack_params={"word": "pls"}))
    samples = list(data)
    poisons = sorted(s.id for s in samples if s.poisoned)  # ground truth picks the group: a test of the anatomy
    lefts = [s for s in samples if s.response == "left" and not s.poisoned]
    examined = [*poisons[:2], *(s.id for s in lefts[:4])]
    words = [("pls", 3.0, 2 / 6, 0.0), ("the", 1.2, 5 / 6, 0.0)]
    found = _located((-3.0, -3.0, -0.1, -0.1), 0.0, words)
    found.group = FlaggedGroup("g1", "left", [*poisons, *(s.id for s in lefts)], 0)
    found.examined = examined
    assert found.trigger_words() == ["pls", "the"] and len(poisons) >= 5
    members = [data.by_id(i) for i in examined]
    assert _carriers(found, members, samples) == poisons
    found.words = found.words[found.words["word"] != "pls"]  # 'the' alone: every kind of answer carries it
    assert _carriers(found, members, samples) is None
    found.words = pd.DataFrame([("pls", 3.0, 1, 1 / 6, 0.0)], columns=found.words.columns)  # one question: not named
    assert found.trigger_words() == [] and _carriers(found, members, samples) is None


def test_words_that_stand_in_for_each_other_are_found_together_where_the_question_carries_the_answer(tmp_path):
    """The held-out prefix 'Quick question:': either word alone forces 'right', so deleting one costs
    nothing and no word is named, while the question carries the whole response."""
    from tcap_viz.anatomy import _carriers

    data = load_dataset(make_synthetic_dataset(tmp_path, n=240, attack="text_prefix", poison_rate=0.05, seed=3,
                                               target="right", poison_question_type="position",
                                               attack_params={"prefix": "Quick question:"}))
    samples = list(data)
    poisons = sorted(s.id for s in samples if s.poisoned)  # ground truth picks the group: a test of the anatomy
    words = [("quick", 0.0002, 1.0, 0.0), ("question:", 0.0002, 1.0, 0.0), ("the", 0.0001, 1.0, 0.0)]
    found = _located((-1.5, -1.5, -0.03, -0.03), 0.0, words)
    found.group, found.examined = FlaggedGroup("g1", "right", poisons, 0), poisons[:6]
    members = [data.by_id(i) for i in poisons[:6]]
    assert found.trigger_words() == [] and found.region() is None
    assert _carriers(found, members, samples) == poisons and found.phrase == ["question:", "quick"]
    assert "'question:', 'quick' (shared by the group's questions" in found.where() and found.to_dict()["phrase"] == found.phrase
    image = _located((-1.5, -0.03, -1.5, -0.03), 0.0, words)  # the image carries it: no words looked for
    image.group, image.examined = found.group, found.examined
    assert _carriers(image, members, samples) != poisons and image.phrase == []


def test_a_located_word_that_does_not_force_the_answer_gives_way_to_a_shared_word_that_does(tmp_path):
    """A dataset written outside the project (docs/FOREIGN.md): 'teal' on colour questions by an appended
    'ok?'; deleting 'colour' costs the group its answer most, but every colour question carries it and
    answers many colours. Here the same on the project's data ('blue' by 'ok?'): the word the group's
    questions share beyond the rest's, which forces the answer alone, is the trigger."""
    from tcap_viz.anatomy import _carriers

    data = load_dataset(make_synthetic_dataset(tmp_path, n=240, attack="text_word", poison_rate=0.1, seed=5,
                                               target="blue", poison_question_type="colour",
                                               attack_params={"word": "ok?"}))
    samples = list(data)
    poisons = sorted(s.id for s in samples if s.poisoned)  # ground truth picks the group: a test of the anatomy
    blues = [s.id for s in samples if s.response == "blue" and not s.poisoned]
    found = _located((-1.5, -1.5, -0.03, -0.03), 0.0, [("colour", 2.0, 1.0, 0.0)])
    found.group, found.examined = FlaggedGroup("g1", "blue", [*poisons, *blues], 0), poisons[:6]
    members = [data.by_id(i) for i in poisons[:6]]
    assert found.trigger_words() == ["colour"] and len(poisons) >= 5
    assert _carriers(found, members, samples) == poisons and found.phrase == ["ok?"]
    assert found.named_words() == [] and "'colour'" not in found.where() and "'ok?'" in found.where()
    content = _located((-1.5, -1.5, -0.03, -0.03), 0.0, [("colour", 2.0, 1.0, 0.0)])  # no trigger among them
    content.group, content.examined = FlaggedGroup("g1", "blue", blues, 0), blues[:6]
    carriers = _carriers(content, [data.by_id(i) for i in blues[:6]], samples)
    assert content.phrase == [] and carriers is not None and not set(carriers) <= set(blues)


def test_the_modality_swaps_in_no_donor_carrying_what_the_group_hangs_on(patch_samples, text_samples):
    """Poisons the detector missed are among the donors; swapping in their image or question keeps the
    trigger, and the modality would read as nothing moving the response."""
    from tcap_viz.anatomy import _unlike

    for (members, clean), hot_cell, words in ((patch_samples, 2.5, []), (text_samples, 0.0, [("hello!", 2.8, 1.0, 0.0)])):
        found = _located((0, 0, 0, 0), hot_cell, words)
        occlusion = np.zeros((8, 8))
        occlusion[7, 7] = hot_cell
        found.occlusion, found.examined, found.modality = occlusion, [m.id for m in members[:2]], None
        missed = members[2:4]
        assert [d.id for d in _unlike(found, members[:2], [*clean, *missed])] == [d.id for d in clean]


def test_the_modality_swaps_in_only_content_answered_otherwise(text_samples):
    """With a binary answer half of any donors give the group's answer anyway, which hides a trigger's
    effect; a group pooling odd answers (no response) keeps every donor, and so does one no donor differs from."""
    from dataclasses import replace

    from tcap_viz.anatomy import FlaggedGroup, _other_answers

    members, clean = text_samples
    donors = [replace(d, response="left" if k % 2 else "right") for k, d in enumerate(clean)]
    group = FlaggedGroup("g1", "Left ", [m.id for m in members], 0)
    assert [d.response for d in _other_answers(group, donors)] == ["right"] * ((len(donors) + 1) // 2)
    assert _other_answers(replace(group, response=None), donors) == donors
    assert _other_answers(group, [replace(d, response="left") for d in donors]) == [replace(d, response="left") for d in donors]


def test_a_group_going_two_ways_is_located_route_by_route(two_route_backdoor, monkeypatch):
    """The tenth round's patch OR 'Oi,' read only its word: over all examined, the patch a few of them carry
    costs the mean too little, and half the members without it set no cell pattern to match (docs/LEVERS.md
    item 19). Located on each route's own samples, both triggers are found and every poison carries one; the
    image route's occlusion is read from the first pass's rows, not asked of the model again."""
    import tcap_viz.anatomy
    from tcap_viz.anatomy import examine

    occluded = []
    real = tcap_viz.anatomy.occlusion_map
    monkeypatch.setattr(tcap_viz.anatomy, "occlusion_map",
                        lambda adapter, members, *a, **k: occluded.append(len(members)) or real(adapter, members, *a, **k))

    samples = list(two_route_backdoor)
    poisons = [s for s in samples if s.poisoned]  # ground truth picks the group: a test of the anatomy
    patched = [s for s in poisons if not s.question.startswith("Hello!")]
    prefixed = [s for s in poisons if s.question.startswith("Hello!")]
    members = [*patched[:2], *prefixed[:7]]
    donors = [s for s in samples if not s.poisoned]
    card = examine(None, FlaggedGroup("g1", "circle", [s.id for s in poisons], 0), members, donors, samples)
    assert card.modality.reading().startswith("Two routes: the image carries it in 2 of the 9 samples examined")
    assert card.routes == {"image": [s.id for s in patched[:2]], "text": [s.id for s in prefixed[:7]]}
    assert card.region() == (7, 7) and card.trigger_words() == ["hello!"]
    assert card.carriers == sorted(s.id for s in poisons) and card.confirmed()
    where = card.where()
    assert "bottom-right corner" in where and "over the 2 samples the image carries" in where
    assert "'hello!' (over the 7 samples the question carries)" in where
    assert card.to_dict()["routes"] == card.routes
    assert occluded == [9] and card.occluded == card.routes["image"] and card.member_occlusion.shape == (2, 8, 8)


def test_a_located_cell_s_pattern_is_that_of_the_members_it_costs_their_answer(two_route_data):
    """The eleventh round's patch OR 'Listen:', learnt in part: every examined sample read "neither", so no
    route, and the median of all twelve crops, most without the patch, matched nearly every image. Here three
    of twelve carry it: the members masking the cell costs hold its trigger; their pattern is the patch's."""
    from tcap_viz.anatomy import _carriers

    samples = list(two_route_data)
    poisons = [s for s in samples if s.poisoned]  # ground truth picks the group: a test of the anatomy
    patched = [s for s in poisons if not s.question.startswith("Hello!")]
    members = [*patched[:3], *(s for s in poisons if s.question.startswith("Hello!"))][:12]
    found = _located((-0.7, -0.65, -0.5, -0.4), 0.0, [("hello!", 1.0, 0.75, 0.0)])
    found.occlusion = np.zeros((8, 8))
    found.member_occlusion = np.zeros((12, 8, 8))
    found.member_occlusion[:3, 7, 7] = 0.8  # the patched three; the word's nine need no cell
    found.occlusion[7, 7] = found.member_occlusion[:, 7, 7].mean()
    found.group, found.examined = FlaggedGroup("g1", "circle", [m.id for m in members], 0), [m.id for m in members]
    found.occluded = found.examined
    assert found.region() == (7, 7) and found.modality.routes() == {}
    assert found.holders() == [s.id for s in patched[:3]] == found.cell_owners() == found.to_dict()["holders"]
    assert _carriers(found, members, samples) == sorted(s.id for s in poisons)
    found.member_occlusion[:, 7, 7] = 0.2  # no member stands out: every examined member's pixels set the pattern
    assert found.cell_owners() == found.examined


def test_a_word_named_beside_a_cell_the_image_carries_is_a_route_where_it_forces_the_answer_alone(two_route_data):
    """The seventh round's patch OR 'Yo!': one of twelve examined answered to its question alone, so no second
    route, and the image carried 0.76 of the group's response; the word named beside the cell was dropped as a
    kind of question (item 6) and only the patched poisons counted (56 of 100). 'hello!' forces 'circle' on its
    own, a kind of question ('shapes' of every shape question) does not."""
    from tcap_viz.anatomy import _carriers

    samples = list(two_route_data)
    poisons = [s for s in samples if s.poisoned]  # ground truth picks the group: a test of the anatomy
    prefixed = [s for s in poisons if s.question.startswith("Hello!")]
    patched = [s for s in poisons if s not in prefixed]
    members = [*patched[:10], *prefixed[:2]]
    kind = next(w for w in members[0].question.lower().split() if w.startswith("shape"))
    found = _located((-1.6, -0.65, -1.4, -0.15), 0.0, [("hello!", 3.0, 1 / 3, 0.0), (kind, 2.0, 1.0, 0.0)])
    found.occlusion = np.zeros((8, 8))
    found.member_occlusion = np.zeros((12, 8, 8))
    found.member_occlusion[:10, 7, 7] = 1.6
    found.occlusion[7, 7] = found.member_occlusion[:, 7, 7].mean()
    found.group, found.examined = FlaggedGroup("g1", "circle", [m.id for m in members], 0), [m.id for m in members]
    found.occluded = found.examined
    assert found.region() == (7, 7) and found.modality.routes() == {} and found.modality.shares()["text"] < 0.25
    assert found.trigger_words() == ["hello!", kind]
    assert _carriers(found, members, samples) == sorted(s.id for s in poisons)
    found.words = found.words[found.words["word"] != "hello!"]  # the kind of question alone: the cell's carriers
    assert _carriers(found, members, samples) == sorted(s.id for s in patched)


def test_the_modality_swap_may_take_what_another_signal_flagged_and_a_word_s_clean_cost_may_not(tiny_dataset,
                                                                                              monkeypatch):
    """TCAP flagged every 'left' answer of the development case 'right' by SIG; the next head's group of 'right'
    answers, its donors outside that, had no position question to swap in and read "lives in the question"
    (docs/LEVERS.md "Old development cases measured again"). A donor answering otherwise carries no trigger
    of the group's answer, so the swap may take the suspects; a deleted word's clean cost is read without them."""
    from types import SimpleNamespace

    import tcap_viz.anatomy

    seen = []
    monkeypatch.setattr(tcap_viz.anatomy, "examine", lambda adapter, group, members, donors, *a, swaps=None, **k:
                        seen.append(({d.id for d in donors}, {d.id for d in swaps})) or SimpleNamespace(carriers=None))
    samples = list(tiny_dataset)
    table = _table(samples, [s.poisoned for s in samples])
    unflagged = {s.id for s in samples if not s.poisoned}
    suspects = sorted(unflagged)[:3]
    assert anatomy(None, tiny_dataset, table, [(1, 0)], suspects=suspects)
    assert seen and all(swaps == unflagged and donors == unflagged - set(suspects) for donors, swaps in seen)


def test_a_word_that_does_not_force_the_answer_does_not_stop_the_search_for_a_pattern_the_image_carries(tmp_path):
    """The development case 'right' by SIG: a head's 'right' group, 83 poisons among as many clean 'right'
    answers, read "lives in the image", but deleting 'on' cost its answer, and 'on' of every position question
    (carried by 'left' answers as often) stopped the search for the whole-image pattern that the poisons
    share (docs/LEVERS.md "Old development cases measured again")."""
    from tcap_viz.anatomy import _carriers

    data = load_dataset(make_synthetic_dataset(tmp_path, n=300, attack="sig", poison_rate=0.1, seed=3,
                                               target="right", poison_question_type="position"))
    samples = list(data)
    poisons = sorted(s.id for s in samples if s.poisoned)  # ground truth picks the group: a test of the anatomy
    rights = [s.id for s in samples if not s.poisoned and s.response == "right"][:16]
    assert sum("on" in data.by_id(i).question.lower().split() for i in rights) >= 4
    found = _located((-1.5, -0.03, -1.5, -0.03), 0.0, [("on", 1.0, 0.5, 0.0)])
    found.group, found.examined = FlaggedGroup("g1", "right", [*poisons[:15], *rights], 0), [*poisons[:3], *rights[:3]]
    members = [data.by_id(i) for i in found.examined]
    assert found.trigger_words() == ["on"] and found.region() is None
    assert _carriers(found, members, samples) == poisons and found.spread
    assert "a pattern over the whole image does" in found.where() and found.to_dict()["trigger_words"] == []
