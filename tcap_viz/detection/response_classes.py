"""The classes the classic poison defences analyse one at a time, for a generative model.

Activation Clustering and Spectral Signatures were written for classifiers: they look for a
minority inside each class, because a poison shares its (target) label with clean samples. Here
the "label" is the response: samples are grouped by their response text, and responses too rare
to analyse alone (free-form answers are mostly unique) are pooled into one class.
"""

import numpy as np


def response_classes(responses, min_class_size=20):
    """(M,) class index per sample: one class per response given at least ``min_class_size``
    times (compared trimmed and case-folded), every rarer response in one pooled class; -1 for
    samples of a pooled class still smaller than ``min_class_size`` (too few to analyse)."""
    keys = np.array([str(r).strip().casefold() for r in responses], dtype=object)
    values, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    common = counts[inverse] >= min_class_size
    classes = np.full(len(keys), -1)
    _, classes[common] = np.unique(inverse[common], return_inverse=True)
    rare = ~common
    if rare.sum() >= min_class_size:
        classes[rare] = classes.max() + 1
    return classes


def hidden_by_class(hidden, responses, min_class_size):
    """The hidden states as floats, checked against the responses, and each sample's class."""
    hidden = np.asarray(hidden, dtype=float)
    if hidden.ndim != 2 or len(hidden) != len(responses):
        raise ValueError(f"hidden must be (M, D) with one response per row, got {hidden.shape} and "
                         f"{len(responses)} responses")
    return hidden, response_classes(responses, min_class_size)


def dominant_response(responses, flagged):
    """The flagged samples' most common response (trimmed, case-folded), its share of them, and how
    often it occurs among the samples not flagged; None when nothing is flagged."""
    keys = np.array([str(r).strip().casefold() for r in responses], dtype=object)
    flagged = np.asarray(flagged, dtype=bool)
    if not flagged.any():
        return None
    answers, counts = np.unique(keys[flagged], return_counts=True)
    top = answers[np.argmax(counts)]
    return str(top), float(counts.max() / flagged.sum()), int((keys[~flagged] == top).sum())
