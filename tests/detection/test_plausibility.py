"""The plausibility vote on log-probabilities whose truth is known (no model needed)."""

import inspect

import numpy as np
import pytest

from tcap_viz.detection.plausibility import PlausibilityVote


def _logprobs(seed=0, n=2000, poisoned=100, target=-13.0):
    """Four question types the base answers with different confidence (as the testbed's base does:
    colour near certain, shape unsure; docs/PLAUSIBILITY.md), and the poisoned answers."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(4, n)
    centre, spread = np.array([-0.02, -0.2, -0.37, -0.6]), np.array([0.01, 0.15, 0.08, 0.25])
    values = np.minimum(rng.normal(centre[kind], spread[kind]), -0.001)
    truth = np.zeros(n, bool)
    truth[n - poisoned:] = True
    values[truth] = rng.normal(target, 0.5, poisoned)
    return values, truth


@pytest.mark.parametrize("target", [-13.0, -3.7])  # a foreign string; an ordinary answer in the wrong place
def test_implausible_responses_are_flagged_and_unsure_clean_ones_are_not(target):
    values, truth = _logprobs(target=target)
    vote = PlausibilityVote().fit(values)
    assert vote.flagged_[truth].all() and vote.flagged_[~truth].sum() <= 5  # the unsure type stays clean


def test_clean_data_is_almost_never_flagged_and_missing_values_never():
    values, _ = _logprobs(poisoned=0)
    values[5] = np.nan
    vote = PlausibilityVote().fit(values)
    assert vote.flagged_.mean() <= 0.01 and not vote.flagged_[5] and np.isnan(vote.z_[5])


def test_fit_reads_log_probabilities_only():
    assert list(inspect.signature(PlausibilityVote.fit).parameters) == ["self", "logprob"]
    with pytest.raises(ValueError, match="one value per sample"):
        PlausibilityVote().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="no finite"):
        PlausibilityVote().fit(np.full(4, np.nan))
