import inspect

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tcap_viz.detection.dawid_skene import DawidSkene
from tcap_viz.detection.head_profiler import HeadProfiler
from tcap_viz.detection.tcap import COMPONENTS, TCAPDetector, head_statistic


@pytest.mark.parametrize(
    "poisoned_heads",
    [
        ((3, 0, 4.0), (3, 1, 4.0), (2, 2, 4.0), (3, 3, 4.0)),  # system up
        ((3, 0, -4.0), (3, 1, -4.0), (2, 2, -4.0), (3, 3, -4.0)),  # system down
        ((3, 0, 4.0), (3, 1, -4.0), (2, 2, 4.0), (3, 3, -4.0)),  # both, head by head
    ],
)
def test_flags_poisoned_samples_shifted_in_deep_heads(make_profiles, poisoned_heads):
    profiles, poisoned, _ = make_profiles(poisoned_heads=poisoned_heads, seed=0)
    detector = TCAPDetector().fit(profiles)

    assert f1_score(poisoned, detector.flagged_) >= 0.95
    assert set(detector.profiler_.selected_heads_) <= {(layer, head) for layer, head, _ in poisoned_heads}


def test_fit_takes_no_labels_and_is_deterministic(make_profiles):
    # profiles, and the base model's plausibility votes: computed from responses, never from labels
    assert list(inspect.signature(TCAPDetector.fit).parameters) == ["self", "profiles", "plausibility"]
    profiles, _, _ = make_profiles(n_samples=600, seed=1)
    first = TCAPDetector().fit(profiles).posterior_
    np.testing.assert_array_equal(first, TCAPDetector().fit(profiles).posterior_)


def test_with_the_system_statistic_only_the_system_share_matters(make_profiles):
    profiles, _, _ = make_profiles(n_samples=600, seed=2)
    swapped = profiles[..., [0, 2, 1]]  # vision and query exchanged, system kept
    detector = TCAPDetector(statistic="system")
    np.testing.assert_array_equal(detector.fit(profiles).posterior_, TCAPDetector(statistic="system").fit(swapped).posterior_)
    assert COMPONENTS == ("system", "vision", "query")


def test_default_statistic_ignores_the_query_share():
    """system / (system + vision) is unchanged when only the query part of a row grows."""
    rng = np.random.default_rng(0)
    profiles = rng.dirichlet([2, 2, 2], size=(50, 2, 3))
    more_query = profiles.copy()
    more_query[..., :2] *= 0.5
    more_query[..., 2] = 1 - more_query[..., :2].sum(-1)
    np.testing.assert_allclose(head_statistic(profiles), head_statistic(more_query), atol=1e-9)
    np.testing.assert_allclose(head_statistic(profiles, "system", "none"), profiles[..., 0])
    with pytest.raises(ValueError, match="statistic"):
        head_statistic(profiles, "vision")


@pytest.mark.parametrize(
    "clean",
    [
        dict(type_weights=(1.0,)),  # one unimodal cloud
        dict(type_weights=(1.0,), noise=1.0),  # wider, skewed by the softmax
        dict(type_weights=(1 / 3,) * 3, type_effect=1.0),  # three question types, heads differ
        dict(type_weights=(1 / 3,) * 3, type_effect=1.0, shared_types=True),  # all heads move together
        dict(type_weights=(0.5, 0.25, 0.25), type_effect=1.0),
    ],
)
def test_clean_data_is_not_flagged(make_profiles, clean):
    profiles, _, _ = make_profiles(n_samples=1500, poison_rate=0.0, seed=3, **clean)
    detector = TCAPDetector().fit(profiles)
    assert detector.flagged_.mean() <= 0.01


def test_without_the_weight_and_overlap_guards_question_types_are_flagged(make_profiles):
    """Why the guards are on by default: METHOD.md's split rule alone takes a clean
    question type (weight 1/3) or the tail of a bump as the target group."""
    profiles, _, _ = make_profiles(n_samples=1500, poison_rate=0.0, type_effect=1.0, seed=3)
    unguarded = dict(min_target_weight=0.0, max_target_weight=0.5, max_overlap=1.0, min_agreement=0)
    as_published = TCAPDetector(**unguarded).fit(profiles)
    assert as_published.flagged_.mean() > 0.1


def test_minority_question_type_looks_like_poison(make_profiles):
    """Known limitation, pinned so it is not forgotten: a clean question type lighter than
    max_target_weight that shifts the deep heads is, from the shares alone, a separated
    minority group exactly like a poisoned one, and EM cannot tell them apart since all
    heads agree on it. It is flagged; only a reviewer (or a heavier-than-attack type) can
    rule it out."""
    profiles, _, question_type = make_profiles(
        n_samples=1500, poison_rate=0.0, type_weights=(0.6, 0.3, 0.1), type_effect=1.0, seed=4
    )
    detector = TCAPDetector().fit(profiles)
    assert f1_score(question_type == 2, detector.flagged_) >= 0.95


def test_heads_table_has_one_row_per_head(make_profiles):
    profiles, _, _ = make_profiles(n_samples=800, seed=5)
    detector = TCAPDetector().fit(profiles)
    table = detector.heads_table()

    assert len(table) == 4 * 8
    assert [f"aic_{k}" for k in range(1, 6)] == [c for c in table.columns if c.startswith("aic_")]
    assert {"layer", "head", "k", "separation", "candidate", "selected", "target_weight"} <= set(table.columns)
    selected = table[table.selected]
    assert set(zip(selected["layer"], selected["head"])) == set(detector.profiler_.selected_heads_)
    assert selected[["sensitivity", "specificity"]].notna().all().all()
    assert table.loc[~table.selected, ["sensitivity", "specificity"]].isna().all().all()
    assert not table.loc[table.layer < 2, "candidate"].any()


def test_head_contributions_explain_the_posterior(make_profiles):
    profiles, poisoned, _ = make_profiles(n_samples=800, seed=6)
    detector = TCAPDetector().fit(profiles)
    i = int(np.flatnonzero(poisoned)[0])
    why = detector.head_contributions(i)

    assert list(zip(why["layer"], why["head"])) == detector.profiler_.selected_heads_
    assert why.vote.tolist() == detector.votes_[i].tolist()
    prior = detector.em_.prior_
    log_odds = np.log(prior / (1 - prior)) + why.llr.sum()
    assert detector.posterior_[i] == pytest.approx(1 / (1 + np.exp(-log_odds)))
    assert (why.llr[why.vote == 1] > 0).all()


def test_no_selected_head_means_nothing_flagged():
    profiles = np.full((50, 2, 2, 3), 1 / 3)
    detector = TCAPDetector().fit(profiles)

    assert detector.em_ is None
    assert detector.votes_.shape == (50, 0)
    assert detector.posterior_.tolist() == [0.0] * 50 and not detector.flagged_.any()
    assert detector.heads_table()[["sensitivity", "specificity"]].isna().all().all()
    assert detector.head_contributions(0).empty


def test_wrong_profile_shape_is_rejected():
    with pytest.raises(ValueError):
        TCAPDetector().fit(np.zeros((10, 2, 2)))


def test_defaults_match_the_composed_estimators():
    defaults = {name: p.default for name, p in inspect.signature(TCAPDetector).parameters.items()}
    for part in (HeadProfiler, DawidSkene):
        for name, p in inspect.signature(part).parameters.items():
            assert defaults[name] == p.default, name


def test_agreement_with_the_anchor_keeps_a_clean_camp_from_outvoting_the_trigger():
    """Without the agreement check, three heads on a clean group outvote the two trigger heads."""
    rng = np.random.default_rng(14)
    n = 1000
    group = rng.choice(3, n, p=[0.8, 0.1, 0.1])
    logits = rng.normal(0, 0.1, (n, 1, 5, 3))
    logits[group == 2, 0, :3, 0] += 2.0  # a clean group shifts three heads
    logits[group == 1, 0, 3:, 0] += 8.0  # the trigger takes over two heads
    profiles = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)

    assert f1_score(group == 1, TCAPDetector().fit(profiles).flagged_) >= 0.98
    assert f1_score(group == 2, TCAPDetector(min_agreement=0).fit(profiles).flagged_) >= 0.98


def test_a_group_only_one_head_singles_out_is_not_flagged():
    """One head's split has no second opinion: by default it flags nothing (the clean-data
    case of docs/METHOD_CHOICES.md); min_heads=1 trusts it."""
    rng = np.random.default_rng(15)
    n = 1000
    group = rng.random(n) < 0.15
    logits = rng.normal(0, 0.1, (n, 1, 4, 3))
    logits[group, 0, 2, 0] += 4.0  # e.g. one image colour moves one early head
    profiles = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)

    alone = TCAPDetector().fit(profiles)
    assert alone.profiler_.selected_heads_ == [(0, 2)] and alone.em_ is None and not alone.flagged_.any()
    assert f1_score(group, TCAPDetector(min_heads=1).fit(profiles).flagged_) >= 0.98


def test_the_plausibility_vote_picks_the_heads_and_joins_the_em():
    """Four heads single out a clean content group (farther out, so they rank first); two see the
    poisons. Alone, TCAP flags the content group; with the base model's plausibility votes (a few
    false alarms), it selects the trigger heads and flags the poisons."""
    rng = np.random.default_rng(5)
    n = 1500
    group = rng.choice(3, n, p=[0.85, 0.1, 0.05])  # 0 background, 1 a clean content group, 2 poisoned
    profiles = np.tile([0.3, 0.5, 0.2], (n, 1, 6, 1)) + rng.normal(0, 0.01, (n, 1, 6, 3))
    profiles[group == 1, 0, :4, 0] += 0.3
    profiles[group == 2, 0, 4:, 0] += 0.15
    profiles = np.clip(profiles, 1e-3, None)
    profiles /= profiles.sum(-1, keepdims=True)
    poisoned = group == 2
    alone = TCAPDetector(last_layers=1).fit(profiles)
    assert (alone.flagged_ & poisoned).sum() < 0.2 * poisoned.sum()
    plausible = poisoned | (rng.random(n) < 0.003)
    both = TCAPDetector(last_layers=1).fit(profiles, plausibility=plausible)
    assert set(both.profiler_.selected_heads_) == {(0, 4), (0, 5)}
    assert (both.flagged_ == poisoned).mean() > 0.995
    why = both.head_contributions(int(np.flatnonzero(poisoned)[0]))
    assert list(why["layer"])[-1] == -1 and why["vote"].tolist() == [1, 1, 1]
    assert both.heads_table()["sensitivity"].notna().sum() == 2
    nothing = TCAPDetector(last_layers=1).fit(profiles[:, :, :4], plausibility=plausible)  # no head agrees
    np.testing.assert_array_equal(nothing.flagged_, plausible)
    # the ablation's "vote as one more annotator": the heads are chosen as without it, and outvote it
    unanchored = TCAPDetector(last_layers=1, anchor_on_plausibility=False).fit(profiles, plausibility=plausible)
    assert unanchored.profiler_.selected_heads_ == alone.profiler_.selected_heads_
    assert unanchored.em_.sensitivity_.shape == (len(alone.profiler_.selected_heads_) + 1,)
    assert (unanchored.flagged_ & poisoned).sum() < 0.2 * poisoned.sum()


def test_when_the_plausibility_vote_decides_alone_it_is_the_one_contribution():
    rng = np.random.default_rng(2)
    profiles = rng.dirichlet([5, 5, 5], (300, 1, 2))  # no head separates anything
    vote = rng.random(300) < 0.05
    alone = TCAPDetector(last_layers=1).fit(profiles, plausibility=vote)
    assert alone.em_ is None
    i = int(np.flatnonzero(vote)[0])
    why = alone.head_contributions(i)
    assert why[["layer", "head", "vote"]].values.tolist() == [[-1, -1, 1]]
    np.testing.assert_array_equal(alone.flagged_, vote)


def test_signal_weights_say_which_signals_voted_and_how_much_each_weighed():
    rng = np.random.default_rng(5)
    n = 1500
    poisoned = rng.random(n) < 0.08
    profiles = np.tile([0.3, 0.5, 0.2], (n, 1, 4, 1)) + rng.normal(0, 0.01, (n, 1, 4, 3))
    profiles[poisoned, 0, :2, 0] += 0.2  # two trigger heads
    profiles = np.clip(profiles, 1e-3, None)
    profiles /= profiles.sum(-1, keepdims=True)
    noisy_vote = poisoned ^ (rng.random(n) < 0.05)  # a weaker signal than the heads
    both = TCAPDetector(last_layers=1, min_agreement=0.3).fit(profiles, plausibility=noisy_vote)
    weights = both.signal_weights()
    signals = [tuple(x) for x in weights[["layer", "head"]].values.tolist()]
    assert sorted(signals[:2]) == [(0, 0), (0, 1)] and signals[2] == (-1, -1)
    assert weights["share"].sum() == pytest.approx(1.0)
    assert weights["weight"].iloc[-1] < weights["weight"].iloc[0]  # the noisy vote weighs less than a clean head
    llr = both.em_.log_likelihood_ratios()
    np.testing.assert_allclose(weights["weight"], llr[:, 1] - llr[:, 0])
    alone = TCAPDetector(last_layers=1).fit(profiles[:, :, 2:], plausibility=noisy_vote)
    assert alone.signal_weights()[["layer", "head", "share"]].values.tolist() == [[-1, -1, 1.0]]
    assert TCAPDetector(last_layers=1).fit(profiles[:, :, 2:]).signal_weights().empty


def test_a_vote_that_singles_out_almost_nothing_does_not_anchor_the_heads():
    """A clean dataset: the base model finds 3 odd answers of 1500 implausible, two of them inside a
    content group that two heads single out. Anchored on those three, both heads would be chosen and
    the group flagged (the report's clean case: 9.5%); a vote under min_target_weight is not a
    poisoned group, so the heads choose as without it (anchored on their best head, which the
    content heads do not agree with: nothing flagged)."""
    rng = np.random.default_rng(3)
    n = 1500
    content = rng.random(n) < 0.1
    profiles = np.tile([0.3, 0.5, 0.2], (n, 1, 4, 1)) + rng.normal(0, 0.01, (n, 1, 4, 3))
    profiles[content, 0, :2, 0] += 0.3  # two heads single out the content group
    other = ~content & (rng.random(n) < 0.05)
    profiles[other, 0, 2, 0] += 0.6  # the best-separated head singles out another group: the heads' own anchor
    profiles = np.clip(profiles, 1e-3, None)
    profiles /= profiles.sum(-1, keepdims=True)
    odd = np.zeros(n, bool)
    odd[np.flatnonzero(content)[:2]] = True
    odd[np.flatnonzero(~content)[0]] = True
    silent = TCAPDetector(last_layers=1).fit(profiles, plausibility=odd)
    without = TCAPDetector(last_layers=1).fit(profiles)
    assert not silent.vote_used_ and silent.plausibility_.sum() == 3
    assert silent.profiler_.selected_heads_ == without.profiler_.selected_heads_
    np.testing.assert_array_equal(silent.posterior_, without.posterior_)
    assert not silent.flagged_.any() and silent.signal_weights().empty
    assert silent.head_contributions(int(np.flatnonzero(odd)[0])).empty
    # used anyway, it still picks no content head (most of their group is plausible): it decides alone
    forced = TCAPDetector(last_layers=1, min_target_weight=0.001).fit(profiles, plausibility=odd)
    assert forced.vote_used_ and forced.profiler_.selected_heads_ == [] and forced.flagged_.sum() == 3


def test_heads_singling_out_a_wider_group_the_suspects_sit_in_are_not_chosen():
    """A backdoor whose target is an ordinary answer ("blue"): two heads single out every blue
    answer (the poisons among them), two the poisons alone. With the plausibility vote on the
    poisons, only the heads whose group is mostly implausible vote; the clean blue answers stay clean."""
    rng = np.random.default_rng(7)
    n = 1500
    poisoned = rng.random(n) < 0.05
    blue = poisoned | (rng.random(n) < 0.07)
    profiles = np.tile([0.3, 0.5, 0.2], (n, 1, 4, 1)) + rng.normal(0, 0.01, (n, 1, 4, 3))
    profiles[blue, 0, :2, 0] += 0.3
    profiles[poisoned, 0, 2:, 0] += 0.15
    profiles = np.clip(profiles, 1e-3, None)
    profiles /= profiles.sum(-1, keepdims=True)
    detector = TCAPDetector(last_layers=1).fit(profiles, plausibility=poisoned)
    assert set(detector.profiler_.selected_heads_) == {(0, 2), (0, 3)}
    assert (detector.flagged_ == poisoned).mean() > 0.995
    assert detector.heads_table().set_index(["layer", "head"]).loc[(0, 0), "agreement"] < 0.5


def test_heads_that_agree_with_a_small_group_only_by_nesting_do_not_make_it_a_finding():
    """The clean dataset of the report's seed 2: one head singles out a small content group, two
    heads single out wider groups it sits in (every question of its type, another type plus part of
    it). They agree with it by nesting, and EM alone would flag it at posterior 1; they do not
    corroborate it (they vote for much of the rest), so nothing is flagged. Two heads that each
    single out the group itself do corroborate it."""
    rng = np.random.default_rng(16)
    n = 2000
    kind = rng.choice(3, n, p=[0.7, 0.15, 0.15])  # 1, 2: two question types
    small = (kind == 1) & (rng.random(n) < 0.2)  # a content group inside type 1
    logits = rng.normal(0, 0.1, (n, 1, 4, 3))
    logits[small, 0, 0, 0] += 6.0
    logits[kind == 1, 0, 1, 0] += 3.0
    logits[(kind == 2) | small, 0, 2, 0] += 3.0
    profiles = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)

    lenient = TCAPDetector(corroborate=False).fit(profiles)
    assert f1_score(small, lenient.flagged_) > 0.95  # what EM alone makes of it
    strict = TCAPDetector().fit(profiles)
    assert len(strict.profiler_.selected_heads_) >= 2 and not strict.flagged_.any() and strict.em_ is None
    assert strict.corroborating_.sum() < 2 and strict.uncorroborated_ and not lenient.uncorroborated_

    logits[small, 0, 3, 0] += 6.0  # a second head on the group itself
    profiles = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    both = TCAPDetector().fit(profiles)
    assert f1_score(small, both.flagged_) > 0.95 and both.corroborating_.sum() >= 2


def test_the_next_heads_are_the_unselected_candidates_by_separation_with_their_groups():
    """Three heads on a content group fill the selection; the two heads on the other group come next."""
    rng = np.random.default_rng(14)
    n = 1000
    group = rng.choice(3, n, p=[0.8, 0.1, 0.1])
    logits = rng.normal(0, 0.1, (n, 1, 5, 3))
    logits[group == 2, 0, :3, 0] += 8.0
    logits[group == 1, 0, 3:, 0] += 2.0
    profiles = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    detector = TCAPDetector(top_heads=3).fit(profiles)
    selected = set(detector.profiler_.selected_heads_)
    following = detector.next_heads(profiles, 8)
    assert selected == {(0, 0), (0, 1), (0, 2)} and [(l, h) for l, h, _, _ in following] == [(0, 3), (0, 4)]
    assert all((l, h) not in selected for l, h, _, _ in following)
    separation = [detector.profiler_.separation_[l, h] for l, h, _, _ in following]
    assert separation == sorted(separation, reverse=True)
    for l, h, posterior, votes in following:
        assert posterior.shape == votes.shape == (n,) and set(np.unique(votes)) <= {0, 1}
        np.testing.assert_array_equal(votes, posterior > detector.tau_vote)
    assert [(l, h) for l, h, _, _ in detector.next_heads(profiles, 1)] == [following[0][:2]]
    assert detector.next_candidates() == [(0, 3), (0, 4)]  # the walk's order, before any group is computed
    walked = next(detector.iter_head_groups(profiles, detector.next_candidates()))
    assert walked[:2] == (0, 3) and np.array_equal(walked[2], following[0][2])
    assert f1_score(group == 1, following[0][3]) >= 0.98  # the group the selection passed over
    own = detector.head_groups(profiles, sorted(selected))  # a selected head's group, judged alone
    assert [(l, h) for l, h, _, _ in own] == sorted(selected) and all(f1_score(group == 2, v) >= 0.98 for *_, v in own)


def test_a_lone_selected_head_is_no_finding_but_is_left_for_the_confirmation():
    """One head singles out a group and no other agrees with it: nothing is flagged, and the run says
    the group is uncorroborated, so a scan judges it (and the next heads) by its trigger instead of
    leaving the run unsearched."""
    rng = np.random.default_rng(3)
    n = 1000
    group = rng.random(n) < 0.08
    logits = rng.normal(0, 0.1, (n, 1, 3, 3))
    logits[group, 0, 0, 0] += 6.0
    profiles = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    lone = TCAPDetector().fit(profiles)
    assert lone.profiler_.selected_heads_ == [(0, 0)] and not lone.flagged_.any() and lone.uncorroborated_
    assert not TCAPDetector(corroborate=False).fit(profiles).uncorroborated_
    assert not TCAPDetector().fit(profiles, plausibility=group).uncorroborated_  # the vote decides with it
