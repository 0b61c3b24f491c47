import numpy as np
import pandas as pd
import pytest

from tcap_viz.anatomy import NO_DONORS, FlaggedGroup, GroupAnatomy, ModalityAttribution, anatomy


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


def test_nothing_flagged_is_no_card(tiny_adapter, tiny_dataset):
    samples = list(tiny_dataset)
    assert anatomy(tiny_adapter, tiny_dataset, _table(samples, [False] * len(samples)), [(1, 0)]) == []


def _located(values, hot_cell, words):
    """A group whose attribution has ``values`` (none, image, text, both), with one masked cell
    costing ``hot_cell`` nats and question words (word, drop, share of the samples having it)."""
    occlusion = np.zeros((4, 4))
    occlusion[3, 3] = hot_cell
    return GroupAnatomy(FlaggedGroup("g1", "target", ["a"], 0), ["a"],
                        ModalityAttribution(dict(zip(("none", "image", "text", "both"), values)), 6),
                        occlusion, pd.DataFrame([(w, d, 6 * s, s) for w, d, s in words],
                                                columns=["word", "drop", "samples", "share"]), None, pd.DataFrame())


@pytest.mark.parametrize("values, region, words, says", [
    # an image trigger: the question's words matter to the answer, not to the backdoor
    ((-3.0, -0.1, -3.0, -0.1), (3, 3), [], "bottom-right corner"),
    # a text trigger: its word, not the cell nor a content word in a third of the questions
    ((-3.0, -3.0, -0.1, -0.1), None, ["cf"], "'cf'"),
    # two routes: the word in half the samples is half the group's text effect, and found
    ((-3.0, -1.5, -1.5, -0.1), (3, 3), ["cf"], "and the question's word 'cf'"),
    # a response nothing moves (a backdoor the model did not learn): nothing to locate
    ((-3.0, -2.9, -3.0, -2.8), None, [], "Nothing to locate"),
])
def test_a_cell_or_word_holds_the_trigger_only_as_a_share_of_its_own_modality(values, region, words, says):
    dual = values[1] == values[2]
    g = _located(values, 2.5, [("cf", 2.8, 0.5 if dual else 1.0), ("colour", 2.0, 1 / 3 if not dual else 0.0)])
    assert g.region() == region and g.trigger_words() == words and says in g.where()


def test_a_word_of_one_question_is_not_the_groups_trigger():
    text = (-3.0, -3.0, -0.1, -0.1)
    assert _located(text, 0.0, [("there?", 9.0, 1 / 6)]).trigger_words() == []
    assert _located(text, 0.0, [("there?", 9.0, 2 / 6)]).trigger_words() == ["there?"]
