import numpy as np
import pytest
from sklearn.metrics import f1_score

from tcap_viz.detection.head_profiler import HeadProfiler


def trimodal_with_poison(n_samples, poison_shift, seed):
    """System shares of one head: three question-type modes and a 10% poisoned mode."""
    rng = np.random.default_rng(seed)
    poisoned = rng.random(n_samples) < 0.1
    mode = rng.choice([0.30, 0.40, 0.50], n_samples)
    shares = rng.normal(mode, 0.015)
    shares[poisoned] = rng.normal(0.40 + poison_shift, 0.02, poisoned.sum())
    return shares, poisoned


@pytest.mark.parametrize("mixture", ["sklearn", "binned"])
@pytest.mark.parametrize("poison_shift", [0.3, -0.3])
def test_trimodal_head_votes_for_the_poisoned_mode(poison_shift, mixture):
    responsive, poisoned = trimodal_with_poison(1000, poison_shift, seed=1)
    flat = np.random.default_rng(2).normal(0.5, 0.05, 1000)
    shares = np.stack([responsive, flat], axis=1)[:, None, :]  # (M, 1 layer, 2 heads)

    profiler = HeadProfiler(last_layers=1, mixture=mixture).fit(shares)

    assert profiler.n_components_[0, 0] >= 2
    assert profiler.n_components_[0, 1] == 1
    assert profiler.separation_[0, 1] == 0
    assert profiler.selected_heads_ == [(0, 0)]
    assert profiler.target_weight_[0, 0] == pytest.approx(poisoned.mean(), abs=0.02)
    assert f1_score(poisoned, profiler.votes(shares)[:, 0]) >= 0.98


def test_target_posterior_reuses_the_fitted_scaling():
    responsive, poisoned = trimodal_with_poison(1000, 0.3, seed=3)
    profiler = HeadProfiler(last_layers=1).fit(responsive[:, None, None])

    new = np.array([0.30, 0.40, 0.50, 0.70])[:, None, None]
    assert profiler.votes(new)[:, 0].tolist() == [0, 0, 0, 1]


def test_head_mixture_describes_the_fitted_head():
    responsive, _ = trimodal_with_poison(1000, 0.3, seed=4)
    profiler = HeadProfiler(last_layers=1).fit(responsive[:, None, None])
    mixture = profiler.head_mixture(0, 0)

    assert len(mixture.weights) == profiler.n_components_[0, 0]
    assert mixture.weights.sum() == pytest.approx(1)
    assert mixture.weights[mixture.is_target].sum() == pytest.approx(profiler.target_weight_[0, 0])
    assert mixture.means[mixture.is_target].min() > mixture.means[~mixture.is_target].max()
    assert (mixture.data_min, mixture.data_max) == (responsive.min(), responsive.max())


def test_responsive_head_outside_the_last_layers_is_never_selected():
    responsive, _ = trimodal_with_poison(800, 0.3, seed=5)
    rng = np.random.default_rng(6)
    shares = rng.normal(0.5, 0.05, (800, 4, 2))
    shares[:, 0, 1] = responsive

    filtered = HeadProfiler(last_layers=0.5).fit(shares)
    assert filtered.layer_filter_.tolist() == [False, False, True, True]
    assert filtered.separation_[0, 1] > 0
    assert not filtered.candidate_[0, 1]
    assert (0, 1) not in filtered.selected_heads_

    unfiltered = HeadProfiler(last_layers=4).fit(shares)
    assert unfiltered.selected_heads_[0] == (0, 1)


@pytest.mark.parametrize("last_layers, expected", [(0.5, 2), (0.34, 2), (1.0, 3), (1, 1), (7, 3)])
def test_layer_filter_counts_last_layers(last_layers, expected):
    shares = np.random.default_rng(0).normal(0.5, 0.05, (50, 3, 1))
    profiler = HeadProfiler(last_layers=last_layers).fit(shares)
    assert profiler.layer_filter_.tolist() == [False] * (3 - expected) + [True] * expected


@pytest.mark.parametrize("last_layers", [0, 0.0, 1.5, True])
def test_invalid_layer_filter_is_rejected(last_layers):
    with pytest.raises(ValueError):
        HeadProfiler(last_layers=last_layers).fit(np.random.default_rng(0).random((20, 2, 1)))


def test_top_heads_keeps_the_best_separated_heads_in_order():
    rng = np.random.default_rng(7)
    n = 800
    poisoned = rng.random(n) < 0.1
    background = rng.normal(0.4, 0.02, (n, 1, 3))
    shift = np.array([0.05, 0.1, 0.2])  # overlap shrinks with the shift
    shares = background + np.where(poisoned[:, None, None], shift, 0)

    profiler = HeadProfiler(last_layers=1, top_heads=2, max_overlap=1.0).fit(shares)

    assert profiler.selected_heads_ == [(0, 2), (0, 1)]
    assert profiler.separation_[0, 2] > profiler.separation_[0, 1] > profiler.separation_[0, 0]
    assert profiler.selected_.tolist() == [[False, True, True]]


@pytest.mark.parametrize("mixture", ["sklearn", "binned"])
def test_constant_head_is_not_responsive(mixture):
    shares = np.full((100, 1, 1), 0.25)
    profiler = HeadProfiler(last_layers=1, mixture=mixture).fit(shares)
    assert profiler.n_components_[0, 0] == 0
    assert profiler.separation_[0, 0] == 0
    assert profiler.selected_heads_ == []
    assert profiler.votes(shares).shape == (100, 0)


@pytest.mark.parametrize("mixture", ["sklearn", "binned"])
def test_skewed_unimodal_head_is_not_a_separation(mixture):
    """AIC splits a skewed bump into components; the overlap guard refuses the tail as a group."""
    shares = np.random.default_rng(8).lognormal(-2, 0.5, (2000, 1, 1))
    skew_only = HeadProfiler(last_layers=1, max_overlap=1.0, mixture=mixture).fit(shares)
    guarded = HeadProfiler(last_layers=1, mixture=mixture).fit(shares)

    assert skew_only.n_components_[0, 0] > 1 and skew_only.selected_heads_ == [(0, 0)]
    assert guarded.separation_[0, 0] == 0 and guarded.selected_heads_ == []


def test_question_type_heavier_than_max_target_weight_is_background():
    rng = np.random.default_rng(9)
    shares = rng.normal(rng.choice([0.3, 0.5], 1000, p=[0.7, 0.3]), 0.02)[:, None, None]

    assert HeadProfiler(last_layers=1).fit(shares).selected_heads_ == []
    heavy = HeadProfiler(last_layers=1, max_target_weight=0.5).fit(shares)
    assert heavy.target_weight_[0, 0] == pytest.approx(0.3, abs=0.03)


def test_min_target_weight_ignores_outlier_groups():
    rng = np.random.default_rng(10)
    shares = rng.normal(0.4, 0.02, 1000)
    shares[:8] = rng.normal(0.9, 0.01, 8)  # 0.8% outliers
    shares = shares[:, None, None]

    assert HeadProfiler(last_layers=1).fit(shares).selected_heads_ == []
    assert HeadProfiler(last_layers=1, min_target_weight=0.0).fit(shares).selected_heads_ == [(0, 0)]


def test_fit_is_deterministic(make_profiles):
    profiles, _, _ = make_profiles(n_samples=500, seed=11)
    first = HeadProfiler().fit(profiles[..., 0])
    second = HeadProfiler().fit(profiles[..., 0])
    assert first.selected_heads_ == second.selected_heads_
    np.testing.assert_array_equal(first.aic_, second.aic_)
    np.testing.assert_array_equal(first.target_posterior(profiles[..., 0]), second.target_posterior(profiles[..., 0]))


@pytest.mark.parametrize("mixture", ["sklearn", "binned"])
def test_heads_that_single_out_another_group_than_the_anchor_are_not_selected(mixture):
    """Three heads on a clean group B and a trigger head (group A, much farther out); all four
    reach the SS cap, and the gap, not the head index, makes the trigger head the anchor."""
    rng = np.random.default_rng(13)
    n = 1000
    group = rng.choice(3, n, p=[0.8, 0.1, 0.1])  # 0 background, 1 group A, 2 group B
    shares = rng.normal(0.4, 0.02, (n, 1, 4))
    shares[group == 2, 0, :3] += 0.24  # gap 6
    shares[group == 1, 0, 3] += 0.8  # gap 20

    profiler = HeadProfiler(last_layers=1, mixture=mixture).fit(shares)

    assert profiler.candidate_.all() and (np.round(profiler.separation_ * profiler.eps, 3) == 1).all()
    assert profiler.selected_heads_ == [(0, 3)]
    assert profiler.agreement_[0, 3] == 1 and (profiler.agreement_[0, :3] < 0.1).all()
    assert f1_score(group == 1, profiler.votes(shares)[:, 0]) >= 0.98
    assert len(HeadProfiler(last_layers=1, min_agreement=0).fit(shares).selected_heads_) == 4


def test_an_unknown_mixture_backend_is_refused():
    with pytest.raises(ValueError, match="binned"):
        HeadProfiler(mixture="fast").fit(np.random.default_rng(0).random((50, 1, 1)))


def test_an_external_anchor_selects_the_heads_that_agree_with_it():
    """Heads on a clean content group rank first; a label-free signal that points at the other
    group (the base model finding those responses implausible) selects its heads instead."""
    rng = np.random.default_rng(13)
    n = 1000
    group = rng.choice(3, n, p=[0.85, 0.1, 0.05])  # 0 background, 1 a content group, 2 the poisoned
    shares = rng.normal(0.4, 0.02, (n, 1, 6))
    shares[group == 1, 0, :4] += 0.8  # four heads, farther out: they rank first
    shares[group == 2, 0, 4:] += 0.3  # two trigger heads
    assert set(HeadProfiler(last_layers=1).fit(shares).selected_heads_) <= {(0, 0), (0, 1), (0, 2), (0, 3)}
    implausible = (group == 2) | (rng.random(n) < 0.005)  # the signal, with a few false alarms
    anchored = HeadProfiler(last_layers=1).fit(shares, anchor=implausible)
    assert set(anchored.selected_heads_) == {(0, 4), (0, 5)}
    assert f1_score(group == 2, anchored.votes(shares).all(axis=1)) >= 0.98
    with pytest.raises(ValueError, match="one vote per sample"):
        HeadProfiler().fit(shares, anchor=implausible[:10])


def test_auto_fits_head_by_head_when_small_and_all_at_once_when_large(monkeypatch):
    from tcap_viz.detection import head_profiler

    shares = np.random.default_rng(0).normal(size=(400, 1, 3))
    small = HeadProfiler(last_layers=1).fit(shares)
    assert small.mixture_ == "sklearn"
    np.testing.assert_array_equal(small.n_components_, HeadProfiler(last_layers=1, mixture="sklearn").fit(shares).n_components_)
    monkeypatch.setattr(head_profiler, "AUTO_BINNED_ABOVE", 1000)  # 400 x 3 cells are now "large"
    large = HeadProfiler(last_layers=1).fit(shares)
    assert large.mixture_ == "binned"
    np.testing.assert_array_equal(large.means_, HeadProfiler(last_layers=1, mixture="binned").fit(shares).means_)
    with pytest.raises(ValueError, match="'auto', 'sklearn' or 'binned'"):
        HeadProfiler(mixture="em").fit(shares)
