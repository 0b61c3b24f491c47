"""One sample's full answer-producing rows, for a person to look at (the app's detail view).

The scan keeps only three shares per head; a reviewer asking "why was this flagged?" needs
to see where the attention went: which image patches, which prompt words. That is one
forward pass of one sample with the same row capture, so it costs milliseconds on the demo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tcap_viz.attention.extract import COMPONENTS, read_rows
from tcap_viz.data import Sample, load_image
from tcap_viz.model.adapter import VISION, MLLMAdapter


@dataclass
class SampleAttention:
    """The prompt's tokens and the answer row of every layer and head over them."""

    tokens: list[str]  # display text of each prompt token
    components: np.ndarray  # (T,) SYSTEM / VISION / QUERY
    rows: np.ndarray  # (L, H, T) float32, each row sums to 1

    def row(self, heads: Sequence[tuple[int, int]]) -> np.ndarray:
        """(T,) the mean row of the given (layer, head) pairs."""
        if not heads:
            raise ValueError("choose at least one (layer, head)")
        layers, cols = np.array(heads).T
        return self.rows[layers, cols].mean(axis=0)

    def shares(self) -> np.ndarray:
        """(L, H, 3) system / vision / query mass, as the scan stores it."""
        return np.stack([self.rows[..., self.components == c].sum(-1) for c in range(len(COMPONENTS))], -1)

    @property
    def grid(self) -> tuple[int, int] | None:
        """Rows x columns of the image tokens when they form a square grid (one image tile)."""
        n = int((self.components == VISION).sum())
        side = math.isqrt(n)
        return (side, side) if n and side * side == n else None

    def vision_map(self, row: np.ndarray) -> np.ndarray:
        """The row's mass on the image tokens laid out on the patch grid (a 1 x n strip otherwise)."""
        mass = np.asarray(row)[self.components == VISION]
        return mass.reshape(self.grid or (1, len(mass)))


def explain_sample(adapter: MLLMAdapter, sample: Sample, image: Image.Image | None = None) -> SampleAttention:
    """Read the sample's answer rows (its image is read unless given); raises SampleError when
    the image cannot be read."""
    batch = adapter.encode([sample.question], [sample.system], [image if image is not None else load_image(sample)])
    rows = read_rows(adapter, batch)[0].cpu().numpy()  # (L, H, S)
    n = int(batch.answer_rows[0]) + 1
    ids = batch.inputs["input_ids"][0, :n].tolist()
    tokens = [adapter.tokenizer.decode([i]) for i in ids]
    return SampleAttention(tokens, batch.components[0, :n].numpy(), rows[..., :n].astype(np.float32))
