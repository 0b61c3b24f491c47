import numpy as np
import pytest

from tcap_viz.detection.mixture_1d import (
    _kmeans_plus_plus,
    _lloyd,
    bin_statistics,
    fit_1d_mixture,
    fit_binned_mixtures,
)


def mixture_sample(n, weights, means, sds, seed=0):
    rng = np.random.default_rng(seed)
    component = rng.choice(len(weights), n, p=weights)
    return rng.normal(np.array(means)[component], np.array(sds)[component])


def test_binned_fit_recovers_a_known_mixture_in_every_column():
    columns = [mixture_sample(20000, [0.6, 0.3, 0.1], [0.3, 0.5, 0.9], [0.03, 0.04, 0.02], seed) for seed in range(4)]
    x = np.stack(columns, 1)
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    weights, means, variances, aic = fit_binned_mixtures(x, 3)
    for j, column in enumerate(columns):
        order = np.argsort(means[j])
        np.testing.assert_allclose(weights[j, order], [0.6, 0.3, 0.1], atol=0.01)
        reference = fit_1d_mixture(x[:, j], 3, random_state=0)
        np.testing.assert_allclose(means[j, order], np.sort(reference.means_[:, 0]), atol=2e-3)
        np.testing.assert_allclose(variances[j, order], reference.covariances_[np.argsort(reference.means_[:, 0])],
                                   rtol=0.05)
        assert aic[j] == pytest.approx(reference.aic(x[:, j:j + 1]), rel=1e-3)


@pytest.mark.parametrize("k_true", [1, 2, 3])
def test_binned_aic_picks_the_true_number_of_groups(k_true):
    means = [0.2, 0.55, 0.85][:k_true]
    x = mixture_sample(5000, np.full(k_true, 1 / k_true), means, [0.03] * k_true)[:, None]
    x = (x - x.min()) / (x.max() - x.min())
    aic = [fit_binned_mixtures(x, k)[3][0] for k in range(1, 5)]
    assert int(np.nanargmin(aic)) + 1 == k_true


def test_identical_values_form_one_narrow_component():
    """A trigger that takes a head's attention entirely puts samples on one value (the logit clip)."""
    rng = np.random.default_rng(1)
    x = np.concatenate([np.zeros(300), rng.normal(0.6, 0.05, 2700)])[:, None]
    x = (x - x.min()) / (x.max() - x.min())
    weights, means, variances, _ = fit_binned_mixtures(x, 2)
    spike = int(np.argmin(means[0]))
    assert weights[0, spike] == pytest.approx(0.1, abs=1e-6) and variances[0, spike] < 1e-5


def test_more_components_than_distinct_values_is_not_a_fit():
    x = np.repeat([0.0, 1.0], 50)[:, None]
    assert np.isnan(fit_binned_mixtures(x, 3)[3][0]) and np.isfinite(fit_binned_mixtures(x, 2)[3][0])


def test_lloyd_matches_dense_k_means_on_the_bins():
    # the textbook Lloyd step over a dense one-hot (H, B, K), as the bincount version replaced it
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0.2, 0.05, (300, 6)), rng.normal(0.7, 0.1, (100, 6))]).clip(0, 1)
    stats = bin_statistics(x, n_bins=64)  # some bins empty
    count, mean, _ = stats
    centres = _kmeans_plus_plus(stats, 3, 0)
    expected = centres
    for _ in range(30):
        nearest = np.argmin(np.abs(mean[..., None] - expected[:, None, :]), axis=-1)
        resp = (nearest[..., None] == np.arange(3)) * (count > 0)[..., None]
        weight = (resp * count[..., None]).sum(1)
        moved = np.where(weight > 0, (resp * (count * mean)[..., None]).sum(1) / np.maximum(weight, 1e-300), expected)
        if np.allclose(moved, expected):
            break
        expected = moved
    np.testing.assert_allclose(_lloyd(stats, centres, 30), resp)
