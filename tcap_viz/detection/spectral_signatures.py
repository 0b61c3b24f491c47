"""Spectral Signatures (Tran et al. 2018), a classic baseline beside TCAP and BYE.

Within each class (here: each response, ``response_classes``), poisons leave a trace along the top
singular direction of the centred hidden states; the samples with the largest squared projection,
``eps_multiplier`` times the assumed poison bound of the class, are flagged (ART's
``SpectralSignatureDefense`` is the reference implementation). It always removes that share of
every class, so its precision is capped by the bound it is given.
"""

import numpy as np
from sklearn.base import BaseEstimator

from .response_classes import hidden_by_class


class SpectralSignatures(BaseEstimator):
    """Flag the top outlier scores along each response class's top singular direction.

    Parameters
    ----------
    poison_bound : float, default 0.1
        Assumed upper bound of the poisoned share of a class (the paper's epsilon; 10%, the rate
        of the TCAP paper's attacks).
    eps_multiplier : float, default 1.5
        The paper removes 1.5 epsilon of each class.
    min_class_size : int, default 20
        Responses rarer than this are pooled into one class (``response_classes``).

    Attributes
    ----------
    classes_ : (M,) class of each sample (-1: too few samples to analyse).
    score_ : (M,) squared projection on the class's top singular direction, divided by its mean in
        the class (comparable across classes; 0 where not analysed).
    flagged_ : (M,) bool, at or above the class's (1 - eps_multiplier * poison_bound) quantile.
    """

    def __init__(self, poison_bound=0.1, eps_multiplier=1.5, min_class_size=20):
        self.poison_bound = poison_bound
        self.eps_multiplier = eps_multiplier
        self.min_class_size = min_class_size

    def fit(self, hidden, responses):
        """``hidden``: (M, D) answer-row hidden states; ``responses``: (M,) each sample's response."""
        if not 0 <= self.poison_bound * self.eps_multiplier <= 1:
            raise ValueError("poison_bound * eps_multiplier must lie in [0, 1]: it is the share of a class removed")
        hidden, self.classes_ = hidden_by_class(hidden, responses, self.min_class_size)
        self.score_ = np.zeros(len(hidden))
        self.flagged_ = np.zeros(len(hidden), dtype=bool)
        for c in np.unique(self.classes_[self.classes_ >= 0]):
            members = np.flatnonzero(self.classes_ == c)
            centred = hidden[members] - hidden[members].mean(axis=0)
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            score = (centred @ vt[0]) ** 2
            if score.mean() > 0:
                score = score / score.mean()
                cutoff = np.quantile(score, max(1 - self.eps_multiplier * self.poison_bound, 0.0))
                self.flagged_[members] = score >= cutoff
            self.score_[members] = score
        return self
