"""Synthetic attention profiles whose truth is known."""

import numpy as np
import pytest


def simulate_profiles(
    n_samples=1000,
    n_layers=4,
    n_heads=8,
    poison_rate=0.1,
    poisoned_heads=((3, 0, 4.0), (3, 1, -4.0), (2, 2, 4.0), (3, 3, -4.0)),
    type_weights=(1 / 3, 1 / 3, 1 / 3),
    type_effect=0.5,
    shared_types=False,
    noise=0.3,
    seed=0,
):
    """(M, L, H, 3) shares = softmax of logits, plus the poisoned mask and question types.

    Logits = per-head base + per-question-type offset (the clean modes) + noise; each
    (layer, head, shift) in ``poisoned_heads`` adds ``shift`` to the system logit of the
    poisoned samples (positive: system up, negative: system down). With
    ``shared_types`` every head sees the same type offsets, so all heads move together.
    """
    rng = np.random.default_rng(seed)
    n_types = len(type_weights)
    question_type = rng.choice(n_types, n_samples, p=type_weights)
    offset_shape = (n_types, 1, 1, 3) if shared_types else (n_types, n_layers, n_heads, 3)
    type_offsets = rng.normal(0, type_effect, offset_shape)
    logits = (
        rng.normal(0, 1, (n_layers, n_heads, 3))
        + type_offsets[question_type]
        + rng.normal(0, noise, (n_samples, n_layers, n_heads, 3))
    )
    poisoned = rng.random(n_samples) < poison_rate
    for layer, head, shift in poisoned_heads:
        logits[poisoned, layer, head, 0] += shift
    logits -= logits.max(axis=-1, keepdims=True)
    shares = np.exp(logits)
    return shares / shares.sum(axis=-1, keepdims=True), poisoned, question_type


@pytest.fixture
def make_profiles():
    return simulate_profiles
