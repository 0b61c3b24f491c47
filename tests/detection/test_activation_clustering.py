import numpy as np
import pytest

from tcap_viz.detection import ActivationClustering


def states(n_clean=300, n_poison=30, dim=10, seed=0):
    """One response class: clean states around one centre, poisons 10 standard deviations away
    along one direction (with less, k-means in 10 whitened dimensions splits the noise instead)."""
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=(n_clean, dim))
    poison = rng.normal(size=(n_poison, dim)) + 10.0 * np.ones(dim) / np.sqrt(dim)
    return np.vstack([clean, poison]), np.r_[np.zeros(n_clean, bool), np.ones(n_poison, bool)]


def test_a_poisoned_minority_of_its_class_is_the_small_cluster():
    hidden, truth = states()
    other = np.random.default_rng(1).normal(size=(200, hidden.shape[1]))  # another, clean response class
    ac = ActivationClustering().fit(np.vstack([hidden, other]), ["red"] * len(hidden) + ["blue"] * 200)
    np.testing.assert_array_equal(ac.flagged_[:len(hidden)], truth)
    red = slice(0, len(hidden))
    assert ac.relative_size_[red][truth].max() < 0.35 and ac.score_[red][truth].min() > ac.score_[red][~truth].max()
    assert not ac.flagged_[len(hidden):].any()  # a clean class splits in two halves: none small


def test_a_class_of_poisons_only_is_not_flagged():
    """Its known limit: the poisons must share their class with clean samples, as a foreign
    target response ('Backdoor Attack!') does not."""
    hidden, truth = states()
    responses = np.where(truth, "Backdoor Attack!", "red")
    ac = ActivationClustering().fit(hidden, responses)
    assert not ac.flagged_[truth].all()


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="one response per row"):
        ActivationClustering().fit(np.zeros((5, 3)), ["a"] * 4)
