"""How well a fine-tuned model does its task and its backdoor (exact answer match), and how
plausible a model finds each sample's response (its log-probability)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tcap_viz.data import Sample, load_image, load_images
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


@torch.no_grad()
def response_logprob(adapter: MLLMAdapter, samples: Sequence[Sample], batch_size: int = 16) -> np.ndarray:
    """Each sample's mean log-probability per response token under `adapter`'s model (teacher forced).

    A response the model finds implausible for its image and question scores low: under a base
    model that never saw the poison, a backdoor's target answer should (issue 12's plausibility
    lever). NaN for a sample whose image cannot be read or that breaks the model.
    """
    scores = np.full(len(samples), np.nan)
    for start in range(0, len(samples), batch_size):
        part = list(samples[start:start + batch_size])
        readable, images, _ = load_images(part)
        where = {s.id: start + i for i, s in enumerate(part)}
        try:
            groups = [(readable, mean_logprob(adapter, readable, images))] if readable else []
        except Exception:  # noqa: BLE001 - one sample that breaks the batch only costs its own value
            groups = []
            for sample, image in zip(readable, images):
                try:
                    groups.append(([sample], mean_logprob(adapter, [sample], [image])))
                except Exception:  # noqa: BLE001
                    continue
        for group, values in groups:
            for sample, value in zip(group, values):
                scores[where[sample.id]] = value
    return scores


@torch.no_grad()
def mean_logprob(adapter: MLLMAdapter, samples: Sequence[Sample], images) -> np.ndarray:
    """Each sample's mean log-probability per response token, with the given images (one batch:
    the anatomy asks it of edited questions and images, swapped or masked)."""
    batch = adapter.encode([s.question for s in samples], [s.system for s in samples], images,
                           [s.response for s in samples])
    inputs = {k: v.to(adapter.device) for k, v in batch.inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(adapter.model.dtype)
    logits = adapter.model(**inputs, use_cache=False).logits.float()
    labels = batch.labels.to(logits.device)[:, 1:]  # token t is predicted at position t - 1
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
    taken = logprobs.gather(-1, labels.clamp_min(0)[..., None])[..., 0]
    counted = labels != -100
    return ((taken * counted).sum(-1) / counted.sum(-1).clamp_min(1)).cpu().numpy()


def pair_logprob(adapter: MLLMAdapter, pairs: Sequence[tuple[Sample, object]], batch_size: int = 32) -> np.ndarray:
    """`mean_logprob` of each (sample, image) pair, in batches: the anatomy scores edited questions
    and swapped or masked images this way."""
    return np.concatenate([mean_logprob(adapter, [p[0] for p in pairs[i:i + batch_size]],
                                        [p[1] for p in pairs[i:i + batch_size]])
                           for i in range(0, len(pairs), batch_size)]) if len(pairs) else np.zeros(0)
