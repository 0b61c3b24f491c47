"""Tri-component profiles of a dataset: for every sample, layer and head, the system / vision /
query shares of the answer-producing row, plus the per-layer vision entropy the BYE baseline
reads. A sample that cannot be read or does not fit the model is skipped with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from tcap_viz.attention.row_capture import capture_rows, use_row_attention
from tcap_viz.data import Sample, load_images
from tcap_viz.model.adapter import QUERY, SYSTEM, VISION, EncodedBatch, MLLMAdapter

COMPONENTS = ("system", "vision", "query")


@dataclass
class Extraction:
    """Arrays cover the kept samples, in `ids` order; `skipped` maps other ids to a reason."""

    ids: list[str]
    profiles: np.ndarray  # (M, L, H, 3) float32, components in COMPONENTS order
    vision_entropy: np.ndarray  # (M, L) float32
    skipped: dict[str, str] = field(default_factory=dict)
    #: (M,) the base model's mean log-probability per response token (the plausibility signal), or
    #: None when the scan knows no base model.
    base_logprob: np.ndarray | None = None


def shares_from_rows(rows: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """(B, L, H, S) attention rows and (B, S) components -> (B, L, H, 3) component masses."""
    onehot = torch.stack([(components == c) for c in (SYSTEM, VISION, QUERY)], dim=-1).to(rows.dtype)
    return torch.einsum("blhs,bsc->blhc", rows, onehot)


def vision_entropy(rows: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """BYE's statistic: entropy of the head-averaged attention renormalised over image tokens."""
    mass = rows.mean(dim=2) * (components == VISION)[:, None, :]  # (B, L, S)
    p = mass / mass.sum(-1, keepdim=True).clamp_min(1e-12)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


@torch.no_grad()
def read_rows(adapter: MLLMAdapter, batch: EncodedBatch) -> torch.Tensor:
    """Run one forward pass and return the answer rows of every layer: (B, L, H, S) float32."""
    inputs = {k: v.to(adapter.device) for k, v in batch.inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(adapter.model.dtype)
    use_row_attention(adapter.model)
    with capture_rows(batch.answer_rows) as capture:
        adapter.model(**inputs, use_cache=False)
    return torch.stack([capture.weights[l] for l in sorted(capture.weights)], dim=1)


def _encode(adapter: MLLMAdapter, samples: Sequence[Sample], images) -> EncodedBatch:
    return adapter.encode([s.question for s in samples], [s.system for s in samples], images)


def _profile_batch(adapter, samples, images):
    batch = _encode(adapter, samples, images)
    rows = read_rows(adapter, batch)
    comps = batch.components.to(rows.device)
    return shares_from_rows(rows, comps).cpu().numpy(), vision_entropy(rows, comps).cpu().numpy()


def extract_profiles(adapter: MLLMAdapter, samples: Sequence[Sample], batch_size: int = 16,
                     on_progress: Callable[[int, int], None] | None = None, show_progress: bool = True) -> Extraction:
    """Profile every sample; a failing batch is retried one sample at a time so only the bad one is skipped."""
    ids, profiles, entropies, skipped = [], [], [], {}
    bar = tqdm(total=len(samples), desc="extract attention", unit="sample", disable=not show_progress)
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        readable, images, unreadable = load_images(chunk)
        skipped.update(unreadable)
        groups = [(readable, images)] if readable else []
        try:
            results = [_profile_batch(adapter, readable, images)] if readable else []
        except Exception:  # isolate the sample that broke the batch
            groups, results = [], []
            for sample, image in zip(readable, images):
                try:
                    results.append(_profile_batch(adapter, [sample], [image]))
                    groups.append(([sample], [image]))
                except Exception as err:  # noqa: BLE001 - one bad sample never kills a scan
                    skipped[sample.id] = f"{type(err).__name__}: {err}"
        for (group, _), (shares, entropy) in zip(groups, results):
            ids.extend(s.id for s in group)
            profiles.append(shares)
            entropies.append(entropy)
        bar.update(len(chunk))
        if on_progress:
            on_progress(min(start + batch_size, len(samples)), len(samples))
    bar.close()
    n_layers, n_heads = adapter.num_layers, adapter.num_heads
    return Extraction(
        ids=ids,
        profiles=np.concatenate(profiles).astype(np.float32) if profiles else np.zeros((0, n_layers, n_heads, 3), np.float32),
        vision_entropy=np.concatenate(entropies).astype(np.float32) if entropies else np.zeros((0, n_layers), np.float32),
        skipped=skipped,
    )


def in_order(extraction: Extraction, ids: Sequence[str]) -> Extraction:
    """The same extraction with its rows in the order of `ids` (a dataset's), and only those samples."""
    row = {sample_id: i for i, sample_id in enumerate(extraction.ids)}
    rows = [row[i] for i in ids if i in row]
    wanted = set(ids)
    return Extraction(ids=[extraction.ids[r] for r in rows], profiles=extraction.profiles[rows],
                      vision_entropy=extraction.vision_entropy[rows],
                      skipped={i: why for i, why in extraction.skipped.items() if i in wanted},
                      base_logprob=None if extraction.base_logprob is None else extraction.base_logprob[rows])


def concatenate(parts: Sequence[Extraction]) -> Extraction:
    """One extraction from parts over disjoint samples (chunks, shards), in the given order."""
    if not parts:
        raise ValueError("nothing to concatenate")
    skipped = {}
    for part in parts:
        skipped.update(part.skipped)
    base = [part.base_logprob for part in parts]
    return Extraction(ids=[i for part in parts for i in part.ids],
                      profiles=np.concatenate([part.profiles for part in parts]),
                      vision_entropy=np.concatenate([part.vision_entropy for part in parts]), skipped=skipped,
                      base_logprob=None if any(b is None for b in base) else np.concatenate(base))
