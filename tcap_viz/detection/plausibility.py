"""The plausibility vote: a response the base model finds far less likely than the rest is suspect.

A service always has the model its customer fine-tuned from, and that model never saw the poison:
a backdoor's target answer, given a triggered input, is implausible to it however the trigger
looks (docs/PLAUSIBILITY.md: every attack of the testbed, F1 0.98-1.00, 0.15% of a clean dataset
flagged). It says nothing about the trigger, and a clean sample with a wrong label looks the same,
so it is meant as one signal beside the heads' votes (e.g. as the anchor of head selection,
``HeadProfiler.fit(shares, anchor=...)``), not alone. Its input is the base model's mean
log-probability per response token (``tcap_viz.model.evaluate.response_logprob``); no label.
"""

import numpy as np
from sklearn.base import BaseEstimator

#: 1.4826 MAD estimates a standard deviation for normal data, and is not moved by the outliers sought.
MAD_TO_SD = 1.4826


class PlausibilityVote(BaseEstimator):
    """Flag responses whose log-probability is more than ``z_cut`` robust deviations below the median.

    Parameters
    ----------
    z_cut : float, default 4.0
        Chosen on the development seed of docs/PLAUSIBILITY.md (4: 1 clean false flag in 2000 on
        every attack at 5%; 6: none, and 0.98 recall on the ordinary-answer target "blue").

    Attributes
    ----------
    median_, scale_ : float, the centre and robust spread of the finite log-probabilities.
    z_ : (M,) robust z-score of each sample (NaN where the log-probability is missing).
    flagged_ : (M,) bool, z_ < -z_cut (never for a missing value).
    """

    def __init__(self, z_cut=4.0):
        self.z_cut = z_cut

    def fit(self, logprob):
        logprob = np.asarray(logprob, dtype=float)
        if logprob.ndim != 1:
            raise ValueError(f"logprob must be one value per sample, got shape {logprob.shape}")
        finite = logprob[np.isfinite(logprob)]
        if not len(finite):
            raise ValueError("no finite log-probability: nothing to compare a response with")
        self.median_ = float(np.median(finite))
        spread = MAD_TO_SD * float(np.median(np.abs(finite - self.median_)))
        self.scale_ = spread if spread > 0 else float(np.std(finite)) or 1e-9
        self.z_ = (logprob - self.median_) / self.scale_
        self.flagged_ = np.nan_to_num(self.z_, nan=0.0) < -self.z_cut
        return self
