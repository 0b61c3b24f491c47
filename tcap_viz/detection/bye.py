"""The "Believe Your Eyes" attention-entropy baseline (METHOD.md section 5).

A small patch trigger pulls image attention onto a few patches, so the entropy of the
attention over patches drops in some layers. TCAP has to beat this baseline, which is
expected to fail on global triggers (blend, warp) that keep the entropy high.
"""

import numpy as np
from sklearn.base import BaseEstimator

from .mixture_1d import fit_1d_mixture, single_threaded


class BYEDetector(BaseEstimator):
    """Flag the low-entropy cluster of the mean entropy over entropy-sensitive layers.

    Parameters
    ----------
    separation_sigmas : float, default 2.0
        A layer is sensitive when its two entropy components satisfy
        |mu1 - mu2| > separation_sigmas * (sigma1 + sigma2); 2 is the published value.
    random_state : int, default 0
        Seed of every mixture fit.

    Attributes
    ----------
    layer_means_, layer_stds_ : (L, 2) the two entropy components of each layer
        (NaN for a constant layer, which is never sensitive).
    sensitive_layers_ : (L,) bool.
    score_ : (M,) mean entropy over the sensitive layers; NaN where no layer is sensitive.
    posterior_ : (M,) posterior of the low-entropy score cluster; all 0 when no layer is
        sensitive or the scores are constant: without a separated layer the baseline has
        no evidence, so it flags nothing.
    flagged_ : (M,) bool, posterior_ > 0.5.
    """

    def __init__(self, separation_sigmas=2.0, random_state=0):
        self.separation_sigmas = separation_sigmas
        self.random_state = random_state

    def fit(self, entropy):
        """Score (M samples, L layers) attention entropies over image patches."""
        entropy = np.asarray(entropy, dtype=float)
        if entropy.ndim != 2:
            raise ValueError(f"entropy must be (M, L), got shape {entropy.shape}")
        n_samples, n_layers = entropy.shape
        self.layer_means_ = np.full((n_layers, 2), np.nan)
        self.layer_stds_ = np.full((n_layers, 2), np.nan)
        self.posterior_ = np.zeros(n_samples)
        self.score_ = np.full(n_samples, np.nan)
        with single_threaded():
            for layer in range(n_layers):
                if np.ptp(entropy[:, layer]) > 0:
                    gm = fit_1d_mixture(entropy[:, layer], 2, self.random_state)
                    self.layer_means_[layer] = gm.means_[:, 0]
                    self.layer_stds_[layer] = np.sqrt(gm.covariances_)
            gap = np.abs(self.layer_means_[:, 0] - self.layer_means_[:, 1])
            # NaN compares False: constant layers are not sensitive.
            self.sensitive_layers_ = gap > self.separation_sigmas * self.layer_stds_.sum(axis=1)
            if self.sensitive_layers_.any():
                self.score_ = entropy[:, self.sensitive_layers_].mean(axis=1)
                if np.ptp(self.score_) > 0:
                    gm = fit_1d_mixture(self.score_, 2, self.random_state)
                    low = int(np.argmin(gm.means_[:, 0]))
                    self.posterior_ = gm.predict_proba(self.score_[:, None])[:, low]
        self.flagged_ = self.posterior_ > 0.5
        return self
