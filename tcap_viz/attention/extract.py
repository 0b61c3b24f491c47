"""Tri-component profiles of a dataset: for every sample, layer and head, the system / vision /
query shares of the answer-producing row, plus what the baselines read from the same forward pass:
the per-layer vision entropy (BYE) and the answer row's last hidden state (Activation Clustering,
Spectral Signatures). A sample that cannot be read or does not fit the model is skipped with its reason.
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
    #: (M, D) float32, the answer row's hidden state as the output head reads it (the
    #: representation the classic poison defences cluster); None only in extractions built by hand.
    hidden: np.ndarray | None = None
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
def read_rows(adapter: MLLMAdapter, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one forward pass; return the answer rows of every layer, (B, L, H, S) float32, and the
    answer row's hidden state at the output head's input, (B, D) float32."""
    inputs = {k: v.to(adapter.device) for k, v in batch.inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(adapter.model.dtype)
    use_row_attention(adapter.model)
    hidden = []

    def keep_answer_row(_module, args):  # the head's input, every family alike: (B, S, D) after the final norm
        states = args[0]
        hidden.append(states[torch.arange(len(states), device=states.device),
                             batch.answer_rows.to(states.device)].float())

    hook = adapter.model.get_output_embeddings().register_forward_pre_hook(keep_answer_row)
    try:
        with capture_rows(batch.answer_rows) as capture:
            adapter.model(**inputs, use_cache=False)
    finally:
        hook.remove()
    return torch.stack([capture.weights[l] for l in sorted(capture.weights)], dim=1), hidden[0]


def _encode(adapter: MLLMAdapter, samples: Sequence[Sample], images) -> EncodedBatch:
    return adapter.encode([s.question for s in samples], [s.system for s in samples], images)


def _profile_batch(adapter, samples, images):
    batch = _encode(adapter, samples, images)
    rows, hidden = read_rows(adapter, batch)
    comps = batch.components.to(rows.device)
    return (shares_from_rows(rows, comps).cpu().numpy(), vision_entropy(rows, comps).cpu().numpy(),
            hidden.cpu().numpy())


def extract_profiles(adapter: MLLMAdapter, samples: Sequence[Sample], batch_size: int = 16,
                     on_progress: Callable[[int, int], None] | None = None, show_progress: bool = True) -> Extraction:
    """Profile every sample; a failing batch is retried one sample at a time so only the bad one is skipped."""
    ids, profiles, entropies, hidden, skipped = [], [], [], [], {}
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
        for (group, _), (shares, entropy, states) in zip(groups, results):
            ids.extend(s.id for s in group)
            profiles.append(shares)
            entropies.append(entropy)
            hidden.append(states)
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
        hidden=np.concatenate(hidden).astype(np.float32) if hidden else np.zeros((0, adapter.hidden_size), np.float32),
    )


def in_order(extraction: Extraction, ids: Sequence[str]) -> Extraction:
    """The same extraction with its rows in the order of `ids` (a dataset's), and only those samples."""
    row = {sample_id: i for i, sample_id in enumerate(extraction.ids)}
    rows = [row[i] for i in ids if i in row]
    wanted = set(ids)
    return Extraction(ids=[extraction.ids[r] for r in rows], profiles=extraction.profiles[rows],
                      vision_entropy=extraction.vision_entropy[rows],
                      skipped={i: why for i, why in extraction.skipped.items() if i in wanted},
                      hidden=None if extraction.hidden is None else extraction.hidden[rows],
                      base_logprob=None if extraction.base_logprob is None else extraction.base_logprob[rows])


def concatenate(parts: Sequence[Extraction]) -> Extraction:
    """One extraction from parts over disjoint samples (chunks, shards), in the given order."""
    if not parts:
        raise ValueError("nothing to concatenate")
    skipped = {}
    for part in parts:
        skipped.update(part.skipped)
    def joined(name: str) -> np.ndarray | None:  # an optional array: present only if every part has it
        arrays = [getattr(part, name) for part in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    return Extraction(ids=[i for part in parts for i in part.ids], profiles=joined("profiles"),
                      vision_entropy=joined("vision_entropy"), skipped=skipped, hidden=joined("hidden"),
                      base_logprob=joined("base_logprob"))
