import numpy as np
from PIL import Image

from tcap_viz.anatomy import cell_carriers, word_carriers
from tcap_viz.anatomy.carriers import cell_pixels, shared_words
from tcap_viz.data import Sample, load_dataset
from tcap_viz.demo import DEMO_DATA


def _samples(tmp_path, n=30, patched=(0, 1, 2, 3, 4), seed=0):
    """Noise images, a checker patch in the bottom-right corner of ``patched``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        if i in patched:
            pixels[56:, 56:] = (np.indices((8, 8)).sum(axis=0) % 2 * 255)[..., None]
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        out.append(Sample(index=i, id=str(i), image_path=tmp_path / f"{i}.png", system=None,
                          question=f"hello! what is {i}?" if i < 3 else "what is it?", response="x", poisoned=None,
                          record={}))
    return out


def test_a_located_patch_is_found_in_every_sample_that_has_it_flagged_or_not(tmp_path):
    samples = _samples(tmp_path)
    assert cell_carriers(samples, ["0", "1"], (7, 7), 8) == ["0", "1", "2", "3", "4"]
    assert cell_pixels(Image.open(samples[0].image_path), (7, 7), 8).shape == (8, 8, 3)


def test_a_cell_the_members_do_not_share_matches_nothing(tmp_path):
    samples = _samples(tmp_path)
    assert cell_carriers(samples, ["10", "11", "12"], (0, 0), 8) is None  # noise: no pattern in common
    assert cell_carriers(samples, ["no such id"], (7, 7), 8) is None


def test_the_demo_patch_is_matched_on_exactly_its_poisons():
    data = list(load_dataset(DEMO_DATA))
    poisons = sorted(s.id for s in data if s.poisoned)  # ground truth only scores the match
    assert sorted(cell_carriers(data, poisons[:4], (7, 7), 8)) == poisons


def test_trigger_words_match_as_written_and_only_words_most_members_share(tmp_path):
    samples = _samples(tmp_path)
    assert word_carriers(samples, ["HELLO!"]) == ["0", "1", "2"]
    assert shared_words(samples[:3], ["hello!", "what", "0?"]) == ["hello!", "what"]
    # 'what' is in every question, in the group or not: a question's kind, not a trigger
    assert shared_words(samples[:3], ["hello!", "what"], samples[3:]) == ["hello!"]


def test_words_beside_a_patch_are_matched_only_when_the_question_carries_part_of_the_response(tmp_path):
    from dataclasses import replace

    import pandas as pd

    from tcap_viz.anatomy import (
        FlaggedGroup,
        GroupAnatomy,
        ModalityAttribution,
        _carriers,
    )

    samples = [replace(s, question="hello! what colour is it?" if i in (0, 1, 10, 11) else "what is it?")
               for i, s in enumerate(_samples(tmp_path))]
    occlusion = np.zeros((8, 8))
    occlusion[7, 7] = 2.0
    words = pd.DataFrame([("hello!", 2.0, 4, 4 / 6, 0.0)], columns=["word", "drop", "samples", "share", "clean_drop"])
    members = [samples[i] for i in (0, 1, 2, 3, 10, 11)]

    def group(values):
        return GroupAnatomy(FlaggedGroup("g1", "t", [m.id for m in members], 0), [m.id for m in members],
                            ModalityAttribution(dict(zip(("none", "image", "text", "both"), values)), 6),
                            occlusion, words, None, pd.DataFrame())

    image_led = group((-3.0, -0.1, -3.0, -0.1))
    assert image_led.region() == (7, 7) and image_led.trigger_words() == ["hello!"]
    assert _carriers(image_led, members, samples) == ["0", "1", "2", "3", "4"]  # the patch; the word a condition
    two_routes = group((-3.0, -1.5, -1.5, -0.1))
    assert _carriers(two_routes, members, samples) == ["0", "1", "10", "11", "2", "3", "4"]


def test_only_the_routes_that_force_the_answer_count_when_one_does(tmp_path):
    from dataclasses import replace

    import pandas as pd

    from tcap_viz.anatomy import (
        FlaggedGroup,
        GroupAnatomy,
        ModalityAttribution,
        _carriers,
    )

    # the patched samples all answer 't'; 'hello!' is also asked of three clean ones, which answer otherwise
    samples = [replace(s, question="hello! what colour is it?" if i in (0, 1, 10, 11, 12) else "what is it?",
                       response="t" if i < 5 else "x") for i, s in enumerate(_samples(tmp_path))]
    occlusion = np.zeros((8, 8))
    occlusion[7, 7] = 2.0
    words = pd.DataFrame([("hello!", 2.0, 4, 4 / 6, 0.0)], columns=["word", "drop", "samples", "share", "clean_drop"])
    members = [samples[i] for i in (0, 1, 2, 3, 10, 11)]
    card = GroupAnatomy(FlaggedGroup("g1", "t", [m.id for m in members], 0), [m.id for m in members],
                        ModalityAttribution(dict(zip(("none", "image", "text", "both"), (-3.0, -1.5, -1.5, -0.1))), 6),
                        occlusion, words, None, pd.DataFrame())
    assert _carriers(card, members, samples) == ["0", "1", "2", "3", "4"]  # the word's carriers would dilute it
    everyone = [replace(s, response="t") for s in samples]  # both routes force it: both count
    assert _carriers(card, members, everyone) == ["0", "1", "10", "11", "12", "2", "3", "4"]


def test_each_shared_word_is_a_route_of_its_own(tmp_path):
    """The group's questions share a trigger word and a word of their question type ('see?' of counting
    questions beside 'fyi'); the type's word is asked of clean samples answering otherwise, so together
    they dilute what the trigger word alone forces."""
    from dataclasses import replace

    import pandas as pd

    from tcap_viz.anatomy import (
        FlaggedGroup,
        GroupAnatomy,
        ModalityAttribution,
        _carriers,
    )

    def question(i):
        return "fyi how many do you see?" if i < 5 else "how many do you see?" if i < 10 else "what is it?"

    samples = [replace(s, question=question(i), response="t" if i < 5 else "x")
               for i, s in enumerate(_samples(tmp_path, patched=()))]
    words = pd.DataFrame([("fyi", 2.0, 5, 1.0, 0.0), ("see?", 1.0, 5, 1.0, 0.0)],
                         columns=["word", "drop", "samples", "share", "clean_drop"])
    members = samples[:5]
    card = GroupAnatomy(FlaggedGroup("g1", "t", [m.id for m in members], 0), [m.id for m in members],
                        ModalityAttribution(dict(zip(("none", "image", "text", "both"), (-3.0, -3.0, -0.1, -0.1))), 5),
                        np.zeros((8, 8)), words, None, pd.DataFrame())
    assert card.trigger_words() == ["fyi", "see?"]
    assert _carriers(card, members, samples) == ["0", "1", "2", "3", "4"]


def test_a_pattern_spread_over_the_image_is_found_in_every_sample_that_has_it(tmp_path):
    """SIG adds a sinusoid to every pixel: no cell holds it, the group's images share it."""
    from tcap_viz.anatomy import pattern_carriers
    from tcap_viz.data import make_synthetic_dataset

    data = list(load_dataset(make_synthetic_dataset(tmp_path, n=200, attack="sig", poison_rate=0.2, seed=3)))
    poisons = sorted(s.id for s in data if s.poisoned)  # ground truth only scores the match
    carriers = pattern_carriers(data, poisons[:8])
    assert set(carriers) <= set(poisons) and len(carriers) >= 0.95 * len(poisons)  # one in the members' low tail


def test_a_pattern_carried_by_few_is_not_diluted_by_the_rest_s_spread():
    """5% carry a pattern and content spreads the rest's projections wide: a cut midway between the two
    medians takes about 1% of the clean samples, and their answers would sink a learnt trigger's
    consistency under ``CONSISTENT``; the two populations' mixture puts the cut where they meet."""
    from tcap_viz.anatomy.carriers import _carrying

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 34, 1900), rng.normal(160, 20, 100)])
    carrying = _carrying(values, values[1900:])
    assert ((values >= (np.median(values) + np.median(values[1900:])) / 2)[:1900]).sum() >= 10  # the midway cut
    assert carrying[:1900].sum() <= 2 and carrying[1900:].sum() >= 97


def _sig_group(tmp_path, target: str, n_poisons: int, n_clean: int):
    """A head's group on a SIG backdoor whose target is a binary answer: ``n_poisons`` poisons among ``n_clean``
    clean samples giving the same answer. Ground truth only picks the group and scores the match."""
    from tcap_viz.data import make_synthetic_dataset

    data = list(load_dataset(make_synthetic_dataset(tmp_path, n=300, attack="sig", poison_rate=0.1, seed=3,
                                                    target=target, poison_question_type="position")))
    poisons = sorted(s.id for s in data if s.poisoned)
    members = poisons[:n_poisons] + [s.id for s in data if not s.poisoned and s.response == target][:n_clean]
    answers = {s.id: s.response for s in data}
    return data, poisons, members, lambda i: answers[i] == target


def test_a_pattern_half_hidden_by_content_sharpens_when_estimated_again_from_its_answering_carriers(tmp_path):
    """A head's 'left' group holds a few SIG poisons among clean 'left' answers, so the first estimate is half
    "object on the left"; estimated again from its carriers that answer 'left', the sinusoid is all that stays."""
    from tcap_viz.anatomy import pattern_carriers

    data, poisons, members, answering = _sig_group(tmp_path, "left", 6, 10)
    once = pattern_carriers(data, members)
    assert len(set(once) - set(poisons)) > len(poisons)  # more clean samples than poisons
    assert sorted(pattern_carriers(data, members, answering)) == poisons


def test_a_pattern_carried_by_under_half_of_a_head_s_group_is_still_found(tmp_path):
    """A head's 'right' group holds 15 SIG poisons among 16 clean 'right' answers. The mixture draws exactly the
    poisons in the first round, so under half of the group carries the pattern: the held-out SIG backdoor whose
    target is 'right' was missed so (83 of 208), while content groups carry theirs in well over half."""
    from tcap_viz.anatomy import pattern_carriers

    data, poisons, members, answering = _sig_group(tmp_path, "right", 15, 16)
    assert sorted(pattern_carriers(data, members, answering)) == poisons


def test_members_sharing_no_pattern_do_not_carry_one_of_their_own(tmp_path):
    """Each member is measured against the other members' mean: noise images alike only in being
    chosen carry no pattern the rest lacks."""
    from tcap_viz.anatomy import pattern_carriers

    samples = _samples(tmp_path, n=60, patched=())
    members = {str(i) for i in range(10, 30)}
    carriers = set(pattern_carriers(samples, sorted(members)) or [])
    assert len(carriers - members) / 40 >= 0.5 * len(carriers & members) / 20
    assert pattern_carriers(samples, ["no such id"]) is None and pattern_carriers(samples, ["10"]) is None


def test_a_pattern_in_one_place_is_located_as_its_square_and_one_over_the_whole_image_is_not(tmp_path):
    """A patch two cells wide: masking any one of its cells leaves the rest to trigger, so occlusion
    cell by cell finds nothing, but its carriers' images share it in one square; a sinusoid is everywhere."""
    from tcap_viz.anatomy import pattern_block
    from tcap_viz.data import make_synthetic_dataset

    rng = np.random.default_rng(1)
    samples = []
    for i in range(200):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        if i < 20:
            pixels[16:32, 40:56] = (np.indices((16, 16)).sum(axis=0) % 2 * 255)[..., None]  # cells 2-3, 5-6
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        samples.append(Sample(index=i, id=str(i), image_path=tmp_path / f"{i}.png", system=None, question="q?",
                              response="x", poisoned=None, record={}))
    assert pattern_block(samples, [str(i) for i in range(20)], grid=8) == (2, 5, 2)
    assert pattern_block(samples, [str(i) for i in range(20, 40)], grid=8) is None  # members sharing nothing

    data = list(load_dataset(make_synthetic_dataset(tmp_path / "sig", n=200, attack="sig", poison_rate=0.2, seed=3)))
    poisons = [s.id for s in data if s.poisoned]  # ground truth picks the carriers
    assert pattern_block(data, poisons, grid=8) is None


def test_a_dataset_standardised_once_serves_every_group_alike(tmp_path):
    """The anatomy standardises the dataset once for all its groups (every image read): passing it in
    changes nothing but the reading."""
    from tcap_viz.anatomy import pattern_block, pattern_carriers
    from tcap_viz.anatomy.carriers import standardise
    from tcap_viz.data import make_synthetic_dataset

    data = list(load_dataset(make_synthetic_dataset(tmp_path, n=120, attack="sig", poison_rate=0.2, seed=3)))
    poisons = sorted(s.id for s in data if s.poisoned)  # ground truth picks the members
    once = standardise(data)
    assert pattern_carriers(data, poisons[:8], standardised=once) == pattern_carriers(data, poisons[:8])
    assert pattern_block(data, poisons, 8, once) == pattern_block(data, poisons, 8)


def test_a_pattern_that_forces_the_answer_is_found_where_the_model_barely_answers_to_it(tmp_path):
    """A backdoor learnt only in part: neither modality moves the examined members' response much, yet the
    group's images share a pattern in the data whose carriers all give the answer; a pattern whose carriers
    answer many things is no trigger there, and the card says nothing was located."""
    from dataclasses import replace

    import pandas as pd

    from tcap_viz.anatomy import (
        FlaggedGroup,
        GroupAnatomy,
        ModalityAttribution,
        _carriers,
    )
    from tcap_viz.data import make_synthetic_dataset

    data = list(load_dataset(make_synthetic_dataset(tmp_path, n=300, attack="sig", poison_rate=0.1, seed=3,
                                                    target="two", poison_question_type="count")))
    poisons = sorted(s.id for s in data if s.poisoned)  # ground truth picks the flags and scores the match
    members = [s for s in data if s.id in set(poisons[:12])]

    def card(samples):
        return GroupAnatomy(FlaggedGroup("g1", "two", poisons[:30], 0), [m.id for m in members],
                            ModalityAttribution(dict(zip(("none", "image", "text", "both"), (-2.0, -1.8, -2.0, -1.7))), 12),
                            np.zeros((8, 8)), pd.DataFrame(columns=["word", "drop", "samples", "share", "clean_drop"]),
                            None, pd.DataFrame())

    weak = card(data)
    assert weak.modality.effect < 0.5 and sorted(_carriers(weak, members, data)) == poisons and weak.spread
    assert "the model learnt only in part" in weak.where()
    # a word of the question type located beside it ('count', the eighth round's Blend 'one') does not stop it
    counting = [s for s in data if s.id in set(poisons) and "count" in s.question.lower().split()]
    asked = card(data)
    asked.examined = [s.id for s in counting]
    asked.words = pd.DataFrame([("count", 0.47, len(counting), 1.0, 0.08)],
                               columns=["word", "drop", "samples", "share", "clean_drop"])
    assert len(counting) >= 2 and asked.trigger_words() == ["count"]
    assert sorted(_carriers(asked, counting, data)) == poisons and asked.spread
    mixed = [replace(s, response="one") if s.poisoned and int(s.id) % 3 == 0 else s for s in data]
    unforced = card(mixed)
    assert _carriers(unforced, members, mixed) is None and not unforced.spread
    assert unforced.where().startswith("Nothing to locate")
