"""Where each image token of a prompt sits on the image, so attention can be drawn over it.

Families lay their image tokens out differently: one square patch grid (LLaVA-1.5, after a centre
crop), a grid of the image's own aspect (Qwen-VL's dynamic resolution), a stretched overview plus a
high-resolution grid with a line-break token per row (LLaVA-NeXT), or tiles plus a global view
(Idefics3, SmolVLM). Each becomes a list of blocks: a grid of token indices and the region of the
image it covers. Facts come from the processor's outputs and settings, not from a table of models;
a layout that cannot be worked out is None, and the caller shows the image without a heatmap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tcap_viz.model.adapter import VISION, EncodedBatch, MLLMAdapter

FULL = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class VisionBlock:
    """Image tokens forming one grid over one region of the image."""

    tokens: np.ndarray  # (rows, cols) indices into the sample's image tokens, in prompt order
    # left, top, right, bottom as fractions of the image; beyond 0..1 where the model padded it
    box: tuple[float, float, float, float]


def vision_layout(adapter: MLLMAdapter, batch: EncodedBatch, index: int, image: Image.Image) -> list[VisionBlock] | None:
    """The blocks of sample `index` of `batch` (encoded with `image`), or None if unknown.

    A processor that does not have what a family's rule reads gives None, never an error: the
    layout only decides how the picture is drawn, and the rest of the sample view must still open.
    """
    try:
        return _blocks(adapter.processor, batch.inputs, index, image, int((batch.components[index] == VISION).sum()))
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return None


def _blocks(processor, inputs, index: int, image: Image.Image, n: int) -> list[VisionBlock] | None:
    if "image_grid_thw" in inputs:
        blocks = _merged_grid(inputs["image_grid_thw"][index].tolist(), processor.image_processor.merge_size)
    elif "image_sizes" in inputs and hasattr(processor, "_get_unpadded_features"):
        blocks = _overview_and_high_resolution(processor, inputs, index, n)
    elif hasattr(processor, "image_seq_len"):
        blocks = _tiles_and_global(processor, image, n)
    else:
        side = math.isqrt(n)  # n = side^2, or side^2 + 1 when the CLS token leads ("full" strategy; not drawn)
        first = n - side * side
        blocks = [_grid(first, side, side, _square_view(processor.image_processor, *image.size))] if first <= 1 else None
    if blocks is None or sum(b.tokens.size for b in blocks) > n or max(int(b.tokens.max()) for b in blocks) >= n:
        return None
    return blocks


def _grid(start: int, rows: int, cols: int, box=FULL, stride: int | None = None) -> VisionBlock:
    """Row-major tokens from `start`; `stride` > cols skips tokens at each row's end (line breaks)."""
    stride = stride or cols
    return VisionBlock(start + np.arange(rows)[:, None] * stride + np.arange(cols)[None, :], box)


def _merged_grid(grid_thw: list[int], merge: int) -> list[VisionBlock]:
    """Qwen-VL: patches of the resized image (one frame), merged `merge` x `merge` into one token each."""
    _, height, width = grid_thw
    return [_grid(0, height // merge, width // merge)]


def _overview_and_high_resolution(processor, inputs, index: int, n: int) -> list[VisionBlock] | None:
    """LLaVA-NeXT: the image squeezed to one tile, then the unpadded grid of the best-fitting
    resolution, each row closed by a line-break token."""
    from transformers.image_processing_utils import select_best_resolution

    orig_height, orig_width = (int(v) for v in inputs["image_sizes"][index])
    height, width = inputs["pixel_values"].shape[-2:]
    pinpoints = processor.image_processor.image_grid_pinpoints
    best_height, best_width = select_best_resolution([orig_height, orig_width], pinpoints)
    unpadded, rows = processor._get_unpadded_features(orig_height, orig_width, height // processor.patch_size,
                                                      width // processor.patch_size, best_height // height,
                                                      best_width // width)
    overview = n - unpadded - rows
    side = math.isqrt(overview)
    if overview <= 0 or side * side not in (overview, overview - 1):  # a CLS token may lead the overview
        return None
    first = overview - side * side
    return [_grid(first, side, side), _grid(overview, rows, unpadded // rows, stride=unpadded // rows + 1)]


def _tiles_and_global(processor, image: Image.Image, n: int) -> list[VisionBlock] | None:
    """Idefics3 / SmolVLM: rows x cols tiles of `image_seq_len` tokens each, then a global view
    (only the global view when the image is not split)."""
    per_tile = processor.image_seq_len
    side = math.isqrt(per_tile)
    if side * side != per_tile or n % per_tile:
        return None
    if n == per_tile:
        return [_grid(0, side, side)]
    info = processor.image_processor([[image.convert("RGB")]], return_row_col_info=True)
    rows, cols = int(info["rows"][0][0]), int(info["cols"][0][0])
    if rows * cols + 1 != n // per_tile:
        return None
    tiles = [_grid((r * cols + c) * per_tile, side, side, (c / cols, r / rows, (c + 1) / cols, (r + 1) / rows))
             for r in range(rows) for c in range(cols)]
    return tiles + [_grid(rows * cols * per_tile, side, side)]


def _size(settings, key: str):
    return settings.get(key) if isinstance(settings, dict) else getattr(settings, key, None)


def _square_view(image_processor, width: int, height: int) -> tuple[float, float, float, float]:
    """The part of the image a fixed square grid sees: LLaVA's processor may pad the image to a
    square first, and CLIP-style processors resize the shortest edge, then crop the centre."""
    x, y, w, h = 0.0, 0.0, float(width), float(height)
    if getattr(image_processor, "do_pad", False) and type(image_processor).__name__.startswith("LlavaImageProcessor"):
        side = max(w, h)
        x, y, w, h = (w - side) / 2, (h - side) / 2, side, side
    size, crop = getattr(image_processor, "size", None), getattr(image_processor, "crop_size", None)
    if getattr(image_processor, "do_center_crop", False) and size and crop:
        shortest = _size(size, "shortest_edge")
        if shortest:
            resized_w, resized_h = w * shortest / min(w, h), h * shortest / min(w, h)
        elif _size(size, "height") and _size(size, "width"):
            resized_w, resized_h = _size(size, "width"), _size(size, "height")
        else:
            resized_w, resized_h = w, h
        keep_x, keep_y = min(_size(crop, "width") / resized_w, 1.0), min(_size(crop, "height") / resized_h, 1.0)
        x, y, w, h = x + w * (1 - keep_x) / 2, y + h * (1 - keep_y) / 2, w * keep_x, h * keep_y
    return (x / width, y / height, (x + w) / width, (y + h) / height)
