"""Each family's image tokens land where their pixels came from.

The check is geometric and independent of the layout code: every image token's brightness is read
from the pixels the processor fed it (per family, from `pixel_values`), a row that attends to the
tokens in proportion to that brightness is drawn with the layout, and the heat must fall on the
bright part of the picture.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tcap_viz.attention.explain import SampleAttention
from tcap_viz.model.adapter import SYSTEM, VISION, MLLMAdapter
from tcap_viz.model.vision_layout import vision_layout
from tests.model.tiny_families import FAMILIES, build

WIDTH, HEIGHT = 96, 64  # wider than tall: a square grid would smear it


def bright_top_right(width=WIDTH, height=HEIGHT) -> Image.Image:
    """Top-right, not top-left: a layout transposed by mistake moves it (to the bottom left)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2, width // 2:] = 255
    return Image.fromarray(pixels)


def _pooled(tiles: torch.Tensor, side: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, side * side) mean brightness of each token's square, row-major."""
    return F.adaptive_avg_pool2d(tiles.float().mean(1, keepdim=True), side).flatten(1)


def token_brightness(adapter: MLLMAdapter, batch, n_tokens: int) -> np.ndarray:
    """Brightness of the pixels behind each image token, in prompt order (family by family)."""
    pixels, processor = batch.inputs["pixel_values"].float(), adapter.processor
    if "image_grid_thw" in batch.inputs:  # flat patches, merge x merge consecutive ones per token
        merge = processor.image_processor.merge_size
        values = pixels.mean(1).reshape(-1, merge * merge).mean(1)
    elif pixels.dim() == 5 and hasattr(processor, "image_seq_len"):  # tiles, then the global view
        values = _pooled(pixels[0], math.isqrt(processor.image_seq_len)).flatten()
    elif pixels.dim() == 5:  # LLaVA-NeXT: only the overview tile is checked, the rest stays dark
        overview = _pooled(pixels[0, :1], pixels.shape[-1] // processor.patch_size).flatten()
        overview -= overview.min()
        return np.concatenate([overview.numpy(), np.zeros(n_tokens - len(overview), np.float32)])
    else:
        values = _pooled(pixels, pixels.shape[-1] // processor.patch_size).flatten()
    values = values.numpy()
    assert len(values) == n_tokens
    return values - values.min()


def attention_from_brightness(adapter, image):
    batch = adapter.encode(["What is bright?"], [None], [image])
    components = batch.components[0].numpy()
    vision = components == VISION
    row = np.zeros(len(components), np.float32)
    row[vision] = token_brightness(adapter, batch, int(vision.sum()))
    row /= row.sum()
    layout = vision_layout(adapter, batch, 0, image)
    return SampleAttention([""] * len(row), components, row[None, None], layout), row


def assert_heat_on_top_right(attention, row, width=2 * WIDTH, height=2 * HEIGHT, region=None):
    """The heat's centre lies near the bright quarter's centre, and the opposite quarter is dark
    (grids are coarse: a token may straddle the quarter's edge)."""
    heat = attention.image_heat(row, width, height)
    assert heat is not None
    left, top, right, bottom = region or (0, 0, width, height)
    inside = heat[top:bottom, left:right]
    ys, xs = np.mgrid[0:bottom - top, 0:right - left]
    centre = ((xs * inside).sum() / inside.sum() / (right - left), (ys * inside).sum() / inside.sum() / (bottom - top))
    np.testing.assert_allclose(centre, (0.75, 0.25), atol=0.1)
    mid_x, mid_y = (left + right) // 2, (top + bottom) // 2
    assert heat[top:mid_y, mid_x:right].mean() > 5 * heat[mid_y:bottom, left:mid_x].mean()
    return heat


@pytest.mark.parametrize("family", FAMILIES)
def test_heat_falls_on_the_pixels_the_tokens_saw(family):
    model, processor = build(family)
    attention, row = attention_from_brightness(MLLMAdapter(model, processor, "cpu"), bright_top_right())
    assert_heat_on_top_right(attention, row)
    tokens = np.concatenate([block.tokens.ravel() for block in attention.layout])
    assert len(np.unique(tokens)) == len(tokens)  # no token drawn twice


def test_llava_draws_its_centre_crop_only(tiny_adapter):
    """LLaVA's processor crops the centre square of a wide image: the sides get no heat."""
    attention, row = attention_from_brightness(tiny_adapter, bright_top_right(128, 64))
    (block,) = attention.layout
    np.testing.assert_allclose(block.box, (0.25, 0.0, 0.75, 1.0))
    heat = assert_heat_on_top_right(attention, row, 256, 128, region=(64, 0, 192, 128))
    assert heat[:, :64].sum() == 0 and heat[:, 192:].sum() == 0


def test_llava_keeping_its_cls_token_draws_only_the_patches(tiny_tokenizer, tiny_spec):
    """The "full" feature strategy (the base model's) puts CLIP's CLS token first: it sees the whole
    picture, so it is not drawn, and the patch grid starts after it."""
    from dataclasses import replace

    from tcap_viz.model.tiny_llava import build_model, build_processor

    spec = replace(tiny_spec, keep_cls=True)
    adapter = MLLMAdapter(build_model(tiny_tokenizer, spec), build_processor(tiny_tokenizer, spec), "cpu")
    image = bright_top_right(64, 64)
    batch = adapter.encode(["What is bright?"], [None], [image])
    components = batch.components[0].numpy()
    vision = components == VISION
    assert vision.sum() == spec.image_tokens == (spec.image_size // spec.patch_size) ** 2 + 1
    (block,) = vision_layout(adapter, batch, 0, image)
    assert block.tokens.min() == 1 and block.tokens.size == spec.image_tokens - 1
    row = np.zeros(len(components), np.float32)
    patches = _pooled(batch.inputs["pixel_values"].float(), spec.image_size // spec.patch_size).flatten().numpy()
    row[vision] = np.concatenate([[patches.max()], patches - patches.min()])  # the CLS gets heat too: not drawn
    row /= row.sum()
    attention = SampleAttention([""] * len(row), components, row[None, None], [block])
    assert_heat_on_top_right(attention, row, 128, 128)


def test_llava_next_skips_its_line_breaks():
    model, processor = build("llava_next")
    adapter = MLLMAdapter(model, processor, "cpu")
    image = bright_top_right()
    batch = adapter.encode(["What is bright?"], [None], [image])
    overview, detail = vision_layout(adapter, batch, 0, image)
    with torch.no_grad():  # the model's own packing: which image features are its line-break vector
        (packed,) = model.model.get_image_features(pixel_values=batch.inputs["pixel_values"],
                                                   image_sizes=batch.inputs["image_sizes"]).pooler_output
    breaks = (packed == model.model.image_newline).all(-1).nonzero().flatten().tolist()
    drawn = set(overview.tokens.ravel().tolist()) | set(detail.tokens.ravel().tolist())
    assert set(range(len(packed))) - drawn == set(breaks) and len(breaks) == detail.tokens.shape[0]
    rows, cols = detail.tokens.shape
    assert cols > rows  # the high-resolution grid keeps the wide image's aspect


def test_an_unknown_layout_is_none(tiny_adapter):
    batch = tiny_adapter.encode(["What is bright?"], [None], [bright_top_right()])
    first = int((batch.components[0] == VISION).nonzero()[0])
    batch.components[0, first] = SYSTEM  # one image token fewer: no longer a square grid
    assert vision_layout(tiny_adapter, batch, 0, bright_top_right()) is None
    attention = SampleAttention(["x"], np.array([VISION]), np.ones((1, 1, 1), np.float32), None)
    assert attention.image_heat(np.ones(1), 10, 10) is None


def test_a_processor_without_what_the_rule_reads_gives_no_layout_not_an_error():
    model, processor = build("qwen2_vl")
    adapter = MLLMAdapter(model, processor, "cpu")
    batch = adapter.encode(["What is bright?"], [None], [bright_top_right()])
    processor.image_processor.merge_size = None
    assert vision_layout(adapter, batch, 0, bright_top_right()) is None
