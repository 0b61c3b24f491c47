import numpy as np
import pytest

from tcap_viz.detection import SpectralSignatures
from tests.detection.test_activation_clustering import states


def test_the_poisons_have_the_top_scores_and_a_share_of_the_class_is_removed():
    hidden, truth = states(n_clean=300, n_poison=30)
    ss = SpectralSignatures(poison_bound=0.1).fit(hidden, ["red"] * len(hidden))
    assert ss.score_[truth].min() > ss.score_[~truth].max()
    assert ss.flagged_[truth].all()
    assert ss.flagged_.sum() == pytest.approx(0.15 * len(hidden), abs=1)  # 1.5 x the bound, poisons or not


def test_each_class_is_scored_on_its_own_direction():
    hidden, truth = states(n_clean=200, n_poison=20, seed=2)
    moved = hidden.copy()
    moved[:, 0] += 50.0  # another class far away does not change a class's scores
    both = np.vstack([hidden, moved])
    ss = SpectralSignatures().fit(both, ["red"] * len(hidden) + ["blue"] * len(hidden))
    np.testing.assert_allclose(ss.score_[:len(hidden)], ss.score_[len(hidden):], rtol=1e-6)


def test_the_removed_share_must_be_a_share():
    with pytest.raises(ValueError, match="share of a class"):
        SpectralSignatures(poison_bound=0.8).fit(np.zeros((30, 2)), ["a"] * 30)
