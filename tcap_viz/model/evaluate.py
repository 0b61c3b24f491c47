"""How well a fine-tuned model does its task and its backdoor, scored by exact answer match."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


def model_quality(adapter: MLLMAdapter, splits: str | Path) -> dict:
    """Clean accuracy on `splits/test_clean`; attack success rate on `splits/test_triggered`, if any."""
    from tcap_viz.data import load_dataset

    splits = Path(splits)
    clean = list(load_dataset(splits / "test_clean" / "data.jsonl"))
    quality = {"clean_accuracy": answer_match_rate(adapter, clean, [s.response for s in clean])}
    triggered_path = splits / "test_triggered" / "data.jsonl"
    if triggered_path.exists():
        triggered = list(load_dataset(triggered_path))
        quality["asr"] = answer_match_rate(adapter, triggered, [s.response for s in triggered])
    return quality
