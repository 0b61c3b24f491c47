"""Activation Clustering (Chen et al. 2018), a classic baseline beside TCAP and BYE.

Within each class (here: each response, ``response_classes``), the answer row's hidden states are
reduced to a few independent components and split in two by k-means; a cluster holding less than
``size_threshold`` of its class is flagged (the paper's relative-size rule; ART's
``ActivationDefence`` is the reference implementation). It needs a poison to share its class with
clean samples, and its cluster to be a minority there.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning

from .response_classes import hidden_by_class


class ActivationClustering(BaseEstimator):
    """Flag the small k-means cluster of each response class's hidden states.

    Parameters
    ----------
    n_dims : int, default 10
        Independent components kept before clustering (the paper's and ART's 10).
    n_clusters : int, default 2
    size_threshold : float, default 0.35
        A cluster with less than this share of its class is poisonous (the paper's value).
    min_class_size : int, default 20
        Responses rarer than this are pooled into one class (``response_classes``).
    random_state : int, default 0

    Attributes
    ----------
    classes_ : (M,) class of each sample (-1: too few samples to analyse).
    clusters_ : (M,) cluster within its class (-1 where not analysed).
    relative_size_ : (M,) share of its class in the sample's cluster (1 where not analysed).
    score_ : (M,) 1 - relative_size_, higher is more suspect.
    flagged_ : (M,) bool, relative_size_ < size_threshold.
    """

    def __init__(self, n_dims=10, n_clusters=2, size_threshold=0.35, min_class_size=20, random_state=0):
        self.n_dims = n_dims
        self.n_clusters = n_clusters
        self.size_threshold = size_threshold
        self.min_class_size = min_class_size
        self.random_state = random_state

    def fit(self, hidden, responses):
        """``hidden``: (M, D) answer-row hidden states; ``responses``: (M,) each sample's response."""
        hidden, self.classes_ = hidden_by_class(hidden, responses, self.min_class_size)
        self.clusters_ = np.full(len(hidden), -1)
        self.relative_size_ = np.ones(len(hidden))
        for c in np.unique(self.classes_[self.classes_ >= 0]):
            members = np.flatnonzero(self.classes_ == c)
            x = hidden[members]
            if len(np.unique(x, axis=0)) < self.n_clusters:
                continue  # identical states: nothing to split
            dims = min(self.n_dims, x.shape[1], len(x) - 1)
            with warnings.catch_warnings():  # ART's tolerance; an unconverged unmixing is still a projection
                warnings.simplefilter("ignore", ConvergenceWarning)
                reduced = FastICA(n_components=dims, max_iter=1000, tol=5e-3, whiten="unit-variance",
                                  random_state=self.random_state).fit_transform(x - x.mean(axis=0))
            labels = KMeans(self.n_clusters, n_init=10, random_state=self.random_state).fit_predict(reduced)
            share = np.bincount(labels, minlength=self.n_clusters) / len(labels)
            self.clusters_[members] = labels
            self.relative_size_[members] = share[labels]
        self.score_ = 1.0 - self.relative_size_
        self.flagged_ = self.relative_size_ < self.size_threshold
        return self
