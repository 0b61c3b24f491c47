import numpy as np
import pytest
from sklearn.metrics import f1_score

from tcap_viz.detection.dawid_skene import DawidSkene


def simulate_votes(n_samples, prior, sensitivity, specificity, seed):
    rng = np.random.default_rng(seed)
    poisoned = rng.random(n_samples) < prior
    draws = rng.random((n_samples, len(sensitivity)))
    votes = np.where(poisoned[:, None], draws < sensitivity, draws >= specificity).astype(int)
    return votes, poisoned


def test_recovers_known_annotator_rates():
    sensitivity = np.array([0.95, 0.9, 0.8, 0.7, 0.85, 0.6])
    specificity = np.array([0.98, 0.9, 0.95, 0.8, 0.99, 0.85])
    votes, poisoned = simulate_votes(6000, 0.1, sensitivity, specificity, seed=0)

    em = DawidSkene().fit(votes)

    np.testing.assert_allclose(em.sensitivity_, sensitivity, atol=0.05)
    np.testing.assert_allclose(em.specificity_, specificity, atol=0.02)
    assert em.prior_ == pytest.approx(poisoned.mean(), abs=0.01)
    assert 1 < em.n_iter_ < em.max_iter
    assert np.isfinite(em.log_likelihood_)


def test_beats_majority_vote_when_most_annotators_are_noise():
    good = [0.95] * 3, [0.98] * 3
    noise = [0.5] * 4, [0.5] * 4  # coin flips, whatever the class
    votes, poisoned = simulate_votes(3000, 0.1, np.r_[good[0], noise[0]], np.r_[good[1], noise[1]], seed=1)

    majority = votes.mean(axis=1) > 0.5
    em = DawidSkene().fit(votes)
    flagged = em.posterior_ > 0.5

    assert f1_score(poisoned, flagged) > 0.97
    assert f1_score(poisoned, majority) < 0.85
    assert em.sensitivity_[3:].max() < 0.6 and em.specificity_[3:].max() < 0.6


@pytest.mark.parametrize("prior", [0.1, 0.7])
def test_poisoned_class_is_the_one_the_votes_single_out(prior):
    votes, poisoned = simulate_votes(2000, prior, np.full(5, 0.9), np.full(5, 0.9), seed=2)
    em = DawidSkene().fit(votes)
    assert ((em.posterior_ > 0.5) == poisoned).mean() > 0.98  # Bayes accuracy is about 0.99


def test_label_switch_is_undone():
    """With mostly adversarial annotators EM from the mean vote converges to the
    swapped solution; the guard must turn it back (mean Youden index >= 0)."""
    votes, _ = simulate_votes(300, 0.05, np.array([0.43, 0.29, 0.99]), np.array([0.04, 0.3, 0.86]), seed=9)
    em = DawidSkene().fit(votes)

    assert np.mean(em.sensitivity_ + em.specificity_ - 1) >= 0
    np.testing.assert_allclose(em.predict_proba(votes), em.posterior_)


def test_predict_proba_matches_fitted_posterior():
    votes, _ = simulate_votes(500, 0.2, np.full(4, 0.8), np.full(4, 0.9), seed=3)
    em = DawidSkene().fit(votes)
    np.testing.assert_allclose(em.predict_proba(votes), em.posterior_)
    assert em.predict_proba(np.ones((1, 4), dtype=int))[0] > 0.99


def test_log_likelihood_ratios_add_up_to_the_posterior():
    votes, _ = simulate_votes(500, 0.2, np.full(4, 0.8), np.full(4, 0.9), seed=4)
    em = DawidSkene().fit(votes)
    llr = em.log_likelihood_ratios()[np.arange(4), votes[7]]
    log_odds = np.log(em.prior_ / (1 - em.prior_)) + llr.sum()
    assert em.posterior_[7] == pytest.approx(1 / (1 + np.exp(-log_odds)))


def test_smoothing_keeps_rates_off_zero_and_one():
    votes = np.zeros((100, 3), dtype=int)
    votes[:10] = 1  # perfect annotators
    em = DawidSkene().fit(votes)
    assert np.all((em.sensitivity_ > 0) & (em.sensitivity_ < 1))
    assert np.all((em.specificity_ > 0) & (em.specificity_ < 1))
    assert np.all(np.isfinite(em.log_likelihood_ratios()))
    assert ((em.posterior_ > 0.5) == votes[:, 0].astype(bool)).all()


def test_no_votes_for_target_flags_nothing():
    em = DawidSkene().fit(np.zeros((50, 3), dtype=int))
    assert (em.posterior_ < 0.5).all()


def test_no_annotators_flags_nothing():
    em = DawidSkene().fit(np.zeros((40, 0), dtype=int))
    assert em.posterior_.tolist() == [0.0] * 40
    assert em.prior_ == 0 and em.n_iter_ == 0
    assert em.sensitivity_.shape == em.specificity_.shape == (0,)
    assert em.predict_proba(np.zeros((3, 0), dtype=int)).tolist() == [0.0] * 3


@pytest.mark.parametrize("votes", [np.array([[0, 2]]), np.array([0, 1])])
def test_invalid_votes_are_rejected(votes):
    with pytest.raises(ValueError):
        DawidSkene().fit(votes)


def test_nested_heads_are_resolved_toward_the_union():
    """Two heads whose target sets nest fit the intersection and the union equally well: the
    soft start lands on the intersection, the majority start (ties count) on the union, and
    the default keeps the union since the fits are equally good and it flags more."""
    votes = np.array([[1, 1]] * 100 + [[0, 1]] * 100 + [[0, 0]] * 1800)
    union, intersection = DawidSkene().fit(votes), DawidSkene(init="soft").fit(votes)
    assert (union.posterior_ > 0.5).sum() == 200
    assert (DawidSkene(init="majority").fit(votes).posterior_ > 0.5).sum() == 200
    assert (intersection.posterior_ > 0.5).sum() == 100
    assert union.log_likelihood_ == pytest.approx(intersection.log_likelihood_, rel=1e-3)
    with pytest.raises(ValueError, match="init"):
        DawidSkene(init="random").fit(votes)


def test_the_start_with_the_better_fit_wins():
    """Two reliable heads among eight: the two starts end on different fits; the default keeps
    the one with the higher likelihood."""
    rng = np.random.default_rng(3)
    truth = rng.random(2000) < 0.1
    votes = rng.random((2000, 8)) < 0.03
    votes[:, :2] = truth[:, None] ^ (rng.random((2000, 2)) < 0.01)
    votes = votes.astype(int)
    fits = [DawidSkene(init=init).fit(votes) for init in ("soft", "majority")]
    assert abs(fits[0].log_likelihood_ - fits[1].log_likelihood_) > 0.2  # really two different fits
    best = max(fits, key=lambda fit: fit.log_likelihood_)
    default = DawidSkene().fit(votes)
    assert default.log_likelihood_ == best.log_likelihood_
    np.testing.assert_array_equal(default.posterior_, best.posterior_)
    assert f1_score(truth, default.posterior_ > 0.5) >= 0.9
