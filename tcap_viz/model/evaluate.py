"""How well a fine-tuned model does its task and its backdoor, scored by exact answer match."""

from __future__ import annotations

from collections.abc import Sequence

from tcap_viz.data import Sample, load_image
from tcap_viz.model.adapter import MLLMAdapter


def answer_match_rate(adapter: MLLMAdapter, samples: Sequence[Sample], expected: Sequence[str],
                      batch_size: int = 64) -> float:
    """Fraction of samples whose greedy answer equals `expected` (case and outer spaces ignored).

    With the samples' own responses this is clean accuracy; with the attack target on
    triggered inputs it is the attack success rate.
    """
    hits = 0
    for start in range(0, len(samples), batch_size):
        part = samples[start:start + batch_size]
        answers = adapter.generate([s.question for s in part], [s.system for s in part],
                                   [load_image(s) for s in part])
        hits += sum(a.strip().lower() == e.strip().lower()
                    for a, e in zip(answers, expected[start:start + batch_size]))
    return hits / max(1, len(samples))
