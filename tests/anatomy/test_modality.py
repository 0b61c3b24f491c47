import math

import numpy as np

import pytest

from tcap_viz.anatomy import ModalityAttribution, donor_questions, modality_attribution


def _attribution(none, image, text, both):
    return ModalityAttribution({"none": none, "image": image, "text": text, "both": both}, n_samples=4)


@pytest.mark.parametrize("values, image, text, interaction, words", [
    ((-3.0, -0.1, -3.0, -0.1), 1.0, 0.0, 0.0, "lives in the image"),      # an image trigger
    ((-3.0, -3.0, -0.1, -0.1), 0.0, 1.0, 0.0, "lives in the question"),   # a text trigger
    ((-3.0, -3.0, -3.0, -0.1), 0.5, 0.5, 1.0, "act together"),            # image AND text
    ((-3.0, -0.1, -0.1, -0.1), 0.5, 0.5, -1.0, "Either one alone"),       # image OR text
    # a prefix on an ordinary answer (the thirteenth round's 'two' by 'So,'): the poisons' own images with a
    # clean question give the target less than a donor's, so CTI reads positive although the prefix does it all
    ((-1.0, -2.0, 0.0, 0.0), -0.5, 1.5, 1.0, "The question alone gives 100% of it; the image alone makes"),
])
def test_shapley_values_share_the_effect_and_the_reading_says_where(values, image, text, interaction, words):
    a = _attribution(*values)
    assert a.phi_image + a.phi_text == pytest.approx(a.effect)  # efficiency: the two shares make the whole
    shares = a.shares()
    assert (shares["image"], shares["text"], shares["interaction"]) == pytest.approx((image, text, interaction))
    assert words in a.reading()
    assert ("act together" in a.reading()) == (words == "act together")
    assert a.to_dict()["reading"] == a.reading()


def test_a_group_whose_samples_go_two_ways_is_read_as_two_routes_not_as_needing_both():
    per_sample = {"none": [-3.0] * 4, "image": [-0.1, -0.1, -3.0, -3.0], "text": [-3.0, -3.0, -0.1, -0.1],
                  "both": [-0.1] * 4}
    a = ModalityAttribution({k: sum(v) / 4 for k, v in per_sample.items()}, 4, per_sample, ["a", "b", "c", "d"])
    assert a.sample_modalities() == ["image", "image", "text", "text"]
    assert a.shares()["image"] == pytest.approx(0.5) and a.reading().startswith("Two routes: the image carries it in 2")
    assert a.two_routes() and a.routes() == {"image": ["a", "b"], "text": ["c", "d"]}
    assert a.to_dict()["ids"] == ["a", "b", "c", "d"]


def test_two_routes_are_read_even_where_the_group_s_mean_says_nothing_moves_it_and_one_sample_is_no_route():
    """The tenth round's OR backdoor read "lives in the question" (image 7 of 24, question 16): two routes
    are read from the samples before the group's mean; a backdoor of one modality has no sample of the other."""
    moved, still = ([-0.1, -0.1, -3.0, -3.0], [-3.0, -3.0, -0.1, -0.1]), ([-3.0] * 8, [-3.0] * 8)
    per_sample = {"none": [-3.0] * 12, "image": moved[0] + still[0], "text": moved[1] + still[1],
                  "both": [-0.1] * 4 + [-3.0] * 8}
    weak = ModalityAttribution({k: sum(v) / 12 for k, v in per_sample.items()}, 12, per_sample, list("abcdefghijkl"))
    assert weak.effect < 1 and weak.reading().startswith("Two routes: the image carries it in 2 of the 12 samples")
    assert weak.routes() == {"image": ["a", "b"], "text": ["c", "d"]}
    per_sample["image"][1], per_sample["text"][1] = -3.0, -0.1  # one sample by its image: no route of its own
    one = ModalityAttribution({k: sum(v) / 12 for k, v in per_sample.items()}, 12, per_sample, list("abcdefghijkl"))
    assert not one.two_routes() and one.routes() == {} and "Two routes" not in one.reading()


def test_no_effect_is_said_plainly_instead_of_a_share():
    a = _attribution(-0.2, -0.2, -0.1, -0.1)
    assert math.isnan(a.shares()["image"]) and "Neither the image nor the question" in a.reading()


def test_a_donor_question_is_the_same_question_without_what_was_added():
    donors = ["What colour is the shape?", "How many shapes are there?", "Is the shape on the left or the right?"]
    assert donor_questions(["Hello! What colour is the shape?", "How cf many shapes are there?"], donors) == donors[:2]
    with pytest.raises(ValueError, match="no donor questions"):
        donor_questions(["What colour is the shape?"], [])


def test_a_swapped_in_image_was_asked_the_same_question(tiny_dataset, monkeypatch):
    """A picture asked another question may not answer this one (a colour question's is not drawn to
    one side), and with a binary answer the model then guesses: the image donors are asked the member's
    donor question."""
    import tcap_viz.anatomy.modality as modality

    asked = []
    monkeypatch.setattr(modality, "load_image", lambda sample: sample.id)  # an image stands for its sample
    monkeypatch.setattr(modality, "pair_logprob", lambda adapter, pairs, batch: asked.extend(pairs) or np.zeros(len(pairs)))
    samples = list(tiny_dataset)
    members, donors = samples[:4], samples[4:]
    question = {d.id: d.question for d in donors}
    modality_attribution(None, members, donors, n_donor_images=2)
    nearest = donor_questions([m.question for m in members], [d.question for d in donors])
    paired = 0
    for member, wanted in zip(members, nearest):
        images = {image for sample, image in asked if sample.id == member.id and image != member.id}
        pool = [d for d in donors if d.question == wanted]
        assert images and (len(pool) < 2 or {question[i] for i in images} == {wanted}), (member.question, images)
        paired += len(pool) >= 2
    assert paired >= 2
    assert len({q.split()[0] for q in question.values()}) > 1  # the donors were asked other questions too


def test_the_demo_patch_backdoor_lives_in_the_image(patch_model, patch_samples):
    members, donors = patch_samples
    a = modality_attribution(patch_model, members, donors)
    assert a.effect > 0.5 and a.shares()["image"] > 0.9, a.to_dict()
    assert a.sample_modalities() == ["image"] * len(members)
    assert a.values["both"] == pytest.approx(sum(a.per_sample["both"]) / len(members))


def test_the_hello_prefix_backdoor_lives_in_the_question(text_model, text_samples):
    members, donors = text_samples
    a = modality_attribution(text_model, members, donors)
    assert a.effect > 0.5 and a.shares()["text"] > 0.9, a.to_dict()
