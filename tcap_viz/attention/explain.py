"""One sample's full answer-producing rows, for a person to look at (the app's detail view).

The scan keeps only three shares per head; a reviewer asking "why was this flagged?" needs
to see where the attention went: which image patches, which prompt words. That is one
forward pass of one sample with the same row capture, so it costs milliseconds on the demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tcap_viz.attention.extract import COMPONENTS, read_rows
from tcap_viz.data import Sample, load_image
from tcap_viz.model.adapter import VISION, MLLMAdapter
from tcap_viz.model.vision_layout import VisionBlock, vision_layout


@dataclass
class SampleAttention:
    """The prompt's tokens and the answer row of every layer and head over them."""

    tokens: list[str]  # display text of each prompt token
    components: np.ndarray  # (T,) SYSTEM / VISION / QUERY
    rows: np.ndarray  # (L, H, T) float32, each row sums to 1
    layout: list[VisionBlock] | None = None  # where the image tokens sit on the image; None if unknown

    def row(self, heads: Sequence[tuple[int, int]]) -> np.ndarray:
        """(T,) the mean row of the given (layer, head) pairs."""
        if not heads:
            raise ValueError("choose at least one (layer, head)")
        layers, cols = np.array(heads).T
        return self.rows[layers, cols].mean(axis=0)

    def shares(self) -> np.ndarray:
        """(L, H, 3) system / vision / query mass, as the scan stores it."""
        return np.stack([self.rows[..., self.components == c].sum(-1) for c in range(len(COMPONENTS))], -1)

    def image_heat(self, row: np.ndarray, width: int, height: int) -> np.ndarray | None:
        """(height, width): the row's attention mass per pixel of the image drawn at that size,
        summed over every view the model has of it (tiles and a global view add up); None when
        the layout is unknown. Tokens outside the image (line breaks, padding) are left out."""
        if self.layout is None:
            return None
        mass = np.asarray(row, dtype=np.float32)[self.components == VISION]
        heat = np.zeros((height, width), np.float32)
        for block in self.layout:
            left, top, right, bottom = (round(f * n) for f, n in zip(block.box, (width, height, width, height)))
            if right <= left or bottom <= top:
                continue
            cells = mass[block.tokens]
            density = cells * cells.size / ((right - left) * (bottom - top))  # each cell's mass over its pixels
            patch = np.asarray(Image.fromarray(density).resize((right - left, bottom - top), Image.Resampling.NEAREST))
            x0, y0 = max(left, 0), max(top, 0)
            x1, y1 = min(right, width), min(bottom, height)
            if x1 > x0 and y1 > y0:
                heat[y0:y1, x0:x1] += patch[y0 - top:y1 - top, x0 - left:x1 - left]
        return heat


def explain_sample(adapter: MLLMAdapter, sample: Sample, image: Image.Image | None = None) -> SampleAttention:
    """Read the sample's answer rows (its image is read unless given); raises SampleError when
    the image cannot be read."""
    image = image if image is not None else load_image(sample)
    batch = adapter.encode([sample.question], [sample.system], [image])
    rows = read_rows(adapter, batch)[0][0].cpu().numpy()  # (L, H, S)
    n = int(batch.answer_rows[0]) + 1
    ids = batch.inputs["input_ids"][0, :n].tolist()
    tokens = [adapter.tokenizer.decode([i]) for i in ids]
    return SampleAttention(tokens, batch.components[0, :n].numpy(), rows[..., :n].astype(np.float32),
                           vision_layout(adapter, batch, 0, image))
