"""1-D Gaussian mixtures, the building block of TCAP's head profiling and of BYE."""

import numpy as np
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


def fit_binned_mixtures(x, n_components, n_bins=512, max_iter=100, tol=1e-3, reg_covar=1e-6, kmeans_iter=30,
                        random_state=0):
    """K-component 1-D Gaussian mixtures on every column of x (N samples x H heads) at once.

    The same model and stopping rule as `fit_1d_mixture` (EM from a k-means start, variance floor
    `reg_covar`, stop when the mean log-likelihood moves less than `tol`), for columns already
    scaled to [0, 1]. Each column is reduced to per-bin counts, sums and sums of squares, so the
    M-step is exact for given responsibilities and the E-step costs n_bins, not N, per head: at
    100k samples x 1024 heads this is what keeps profiling within a minute. Responsibilities are
    taken at each bin's mean (bins of 1/n_bins; a column's identical values share one bin exactly),
    the log-likelihood adds each bin's within-bin spread to second order. EM runs from three k-means
    starts (Lloyd from the quantiles, from a seeded k-means++ as scikit-learn uses, and from a greedy
    k-means++; the last two reach small groups at the edges) and keeps, per column, the fit with the
    highest likelihood.

    Returns weights, means, variances (H, K) and AIC (H,), scikit-learn's definition (NaN for a
    column with fewer occupied bins than components).
    """
    return fit_binned_mixtures_on(bin_statistics(x, n_bins), n_components, max_iter, tol, reg_covar, kmeans_iter,
                                  random_state)


def fit_binned_mixtures_on(stats, n_components, max_iter=100, tol=1e-3, reg_covar=1e-6, kmeans_iter=30,
                           random_state=0):
    """`fit_binned_mixtures` on precomputed `bin_statistics` (profiling fits K = 1..5 on one binning)."""
    count = stats[0]
    starts = [_quantile_centres(stats, n_components), _kmeans_plus_plus(stats, n_components, random_state),
              _kmeans_plus_plus(stats, n_components, None)]
    fits = [_binned_em(stats, _lloyd(stats, centres, kmeans_iter), max_iter, tol, reg_covar) for centres in starts]
    best = np.argmax(np.stack([fit[3] for fit in fits]), axis=0)  # per head, the start with the highest likelihood
    weights, means, variances, log_likelihood = (
        np.stack(parts)[best, np.arange(len(best))] for parts in zip(*fits))
    aic = -2 * log_likelihood + 2 * (3 * n_components - 1)
    aic[(count > 0).sum(1) < n_components] = np.nan  # fewer distinct values than components: no such fit
    return weights, means, variances, aic


def _lloyd(stats, centres, iterations):
    """1-D k-means on the bins: one-hot responsibilities (H, B, K) of the nearest centre. Each centre's
    weight and mass are summed by index (bincount), not over a dense (H, B, K) one-hot: the same sums
    with K times fewer operations, for profiling at 100k x 1024 (docs/PERFORMANCE.md)."""
    count, mean, _ = stats
    heads, k = centres.shape
    offset = (np.arange(heads) * k)[:, None]
    mass = (count * mean).ravel()
    for _ in range(iterations):
        nearest = np.argmin(np.abs(mean[..., None] - centres[:, None, :]), axis=-1)
        index = (nearest + offset).ravel()
        weight = np.bincount(index, count.ravel(), minlength=heads * k).reshape(heads, k)
        total = np.bincount(index, mass, minlength=heads * k).reshape(heads, k)
        moved = np.where(weight > 0, total / np.maximum(weight, 1e-300), centres)
        if np.allclose(moved, centres):
            break
        centres = moved
    return ((nearest[..., None] == np.arange(k)) * (count > 0)[..., None]).astype(float)


def _binned_em(stats, resp, max_iter, tol, reg_covar):
    """EM from given responsibilities; (weights, means, variances, log-likelihood), per head.
    Heads that have converged drop out of the loop, so the slowest head does not set the cost."""
    count, mean, spread = stats
    n = count[0].sum()
    params = list(_m_step(resp, count, mean, spread, reg_covar))
    previous = np.full(len(count), -np.inf)
    active = np.arange(len(count))
    for _ in range(max_iter):
        c, m = count[active], mean[active]
        log_dens = _log_density(m, *(p[active] for p in params))  # (active, B, K)
        log_norm = np.logaddexp.reduce(log_dens, axis=-1)
        score = (c * log_norm).sum(1) / n
        moving = np.abs(score - previous[active]) >= tol
        previous[active] = score
        active, log_dens, log_norm = active[moving], log_dens[moving], log_norm[moving]
        if not len(active):
            break
        new = _m_step(np.exp(log_dens - log_norm[..., None]), count[active], mean[active], spread[active], reg_covar)
        for p, p_new in zip(params, new):
            p[active] = p_new
    weights, means, variances = params
    log_dens = _log_density(mean, weights, means, variances)
    log_norm = np.logaddexp.reduce(log_dens, axis=-1)
    resp = np.exp(log_dens - log_norm[..., None])
    # second-order term of each bin's spread: 0.5 * sum (x - m)^2 * d^2/dx^2 log p at m
    slope = (resp * -(mean[..., None] - means[:, None, :]) / variances[:, None, :]).sum(-1)
    curvature = (resp * (((mean[..., None] - means[:, None, :]) / variances[:, None, :]) ** 2
                         - 1 / variances[:, None, :])).sum(-1) - slope ** 2
    return weights, means, variances, (count * log_norm + 0.5 * spread * curvature).sum(1)


def bin_statistics(x, n_bins=512, heads_per_pass=64):
    """Per column of x (N x H, values in [0, 1]): count, mean and sum of squared deviations of each bin."""
    x = np.asarray(x, dtype=np.float64)
    n, h = x.shape
    count, total, squares = (np.zeros((h, n_bins)) for _ in range(3))
    for start in range(0, h, heads_per_pass):  # bounded memory at 100k x 1024
        part = x[:, start:start + heads_per_pass]
        width = part.shape[1]
        flat = (np.clip((part * n_bins).astype(np.int64), 0, n_bins - 1) + np.arange(width) * n_bins).ravel()
        size = width * n_bins
        count[start:start + width] = np.bincount(flat, minlength=size).reshape(width, n_bins)
        total[start:start + width] = np.bincount(flat, part.ravel(), minlength=size).reshape(width, n_bins)
        squares[start:start + width] = np.bincount(flat, (part * part).ravel(), minlength=size).reshape(width, n_bins)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    spread = np.maximum(squares - count * mean ** 2, 0)
    return count, mean, spread


def _quantile_centres(stats, k):
    count, mean, _ = stats
    cumulative = np.cumsum(count, axis=1) / count.sum(1, keepdims=True)
    index = np.array([np.searchsorted(row, (np.arange(k) + 0.5) / k) for row in cumulative])
    return np.take_along_axis(mean, np.minimum(index, count.shape[1] - 1), axis=1)


def _kmeans_plus_plus(stats, k, random_state):
    """k-means++ over the bins: each next centre where count x squared distance to the nearest centre
    is large, drawn with that probability from a seeded draw (as scikit-learn starts), or, with
    random_state None, greedily at its largest from the median. Both reach small groups at the edges."""
    count, mean, _ = stats
    rng = None if random_state is None else np.random.default_rng(random_state)

    def pick(weights):
        if rng is None:
            return np.argmax(weights, axis=1)
        cumulative = np.cumsum(weights, axis=1)
        drawn = (cumulative < rng.random(len(count))[:, None] * cumulative[:, -1:]).sum(1)
        return np.minimum(drawn, count.shape[1] - 1)

    centres = _quantile_centres(stats, 1) if rng is None else np.take_along_axis(mean, pick(count)[:, None], axis=1)
    for _ in range(1, k):
        distance = np.min((mean[..., None] - centres[:, None, :]) ** 2, axis=-1)
        centres = np.concatenate([centres, np.take_along_axis(mean, pick(count * distance)[:, None], axis=1)], 1)
    return centres


def _m_step(resp, count, mean, spread, reg_covar):
    weighted = resp * count[..., None]  # (H, B, K)
    nk = weighted.sum(1) + 10 * np.finfo(float).eps
    means = (weighted * mean[..., None]).sum(1) / nk
    deviation = (weighted * (mean[..., None] - means[:, None, :]) ** 2).sum(1) + (resp * spread[..., None]).sum(1)
    return nk / count.sum(1, keepdims=True), means, deviation / nk + reg_covar


def _log_density(x, weights, means, variances):
    return (np.log(weights)[:, None, :] - 0.5 * np.log(2 * np.pi * variances)[:, None, :]
            - 0.5 * (x[..., None] - means[:, None, :]) ** 2 / variances[:, None, :])
