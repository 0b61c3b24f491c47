import numpy as np
from sklearn.metrics import f1_score

from tcap_viz.detection.bye import BYEDetector


def entropies(n_samples=1000, n_layers=6, poisoned_shift=None, seed=0):
    """(M, L) patch-attention entropies: clean around 4.0 nats; poisoned shifted per layer."""
    rng = np.random.default_rng(seed)
    poisoned = rng.random(n_samples) < 0.1
    entropy = rng.normal(4.0, 0.1, (n_samples, n_layers))
    if poisoned_shift is not None:
        entropy[poisoned] += poisoned_shift
    return entropy, poisoned


def test_patch_trigger_low_entropy_cluster_is_flagged():
    shift = np.array([0, 0, 0, -1.5, -1.2, 0])  # attention collapses onto the patch in two layers
    entropy, poisoned = entropies(poisoned_shift=shift)
    bye = BYEDetector().fit(entropy)

    assert bye.sensitive_layers_.tolist() == [False, False, False, True, True, False]
    np.testing.assert_allclose(bye.score_, entropy[:, [3, 4]].mean(axis=1))
    assert f1_score(poisoned, bye.flagged_) >= 0.98


def test_global_trigger_that_keeps_entropy_high_is_missed():
    entropy, poisoned = entropies(poisoned_shift=np.full(6, 0.05))  # blend: attention spreads a little
    bye = BYEDetector().fit(entropy)

    assert not bye.sensitive_layers_.any()
    assert np.isnan(bye.score_).all()
    assert bye.posterior_.tolist() == [0.0] * len(entropy) and not bye.flagged_.any()


def test_high_entropy_cluster_is_not_flagged():
    """Only the low-entropy cluster is suspicious, even when a layer separates upwards."""
    entropy, poisoned = entropies(poisoned_shift=np.array([0, 0, 0, 1.5, 1.5, 0]))
    bye = BYEDetector().fit(entropy)

    assert bye.sensitive_layers_[[3, 4]].all()
    assert not bye.flagged_[poisoned].any()


def test_separation_sigmas_sets_layer_sensitivity():
    entropy, _ = entropies(poisoned_shift=np.array([0, 0, 0, -0.4, 0, 0]))
    assert not BYEDetector().fit(entropy).sensitive_layers_.any()
    assert BYEDetector(separation_sigmas=1.0).fit(entropy).sensitive_layers_.tolist() == [
        False, False, False, True, False, False
    ]


def test_constant_layers_are_not_sensitive():
    bye = BYEDetector().fit(np.full((100, 3), 2.0))
    assert not bye.sensitive_layers_.any() and not bye.flagged_.any()
