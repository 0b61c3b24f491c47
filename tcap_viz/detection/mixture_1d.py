"""1-D Gaussian mixtures, the building block of TCAP's head profiling and of BYE."""

from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits


def fit_1d_mixture(values, n_components, random_state):
    """Fit K Gaussians to a 1-D array; "spherical" is the plain 1-D variance, shape (K,)."""
    gm = GaussianMixture(n_components, covariance_type="spherical", random_state=random_state)
    return gm.fit(values.reshape(-1, 1))


def single_threaded():
    """Context for a batch of fits. 1-D mixtures are too small to gain from threads, and
    the k-means initialisation's OpenMP workers spin-wait: on a busy 2-core machine that
    turned a 1 ms fit into 130 ms. (Entering the context costs about 3 ms: once per batch.)"""
    return threadpool_limits(limits=1)
