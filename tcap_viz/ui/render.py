"""Pictures of one sample's attention: the image beside its patch attention laid over it, and the
prompt token by token, shaded by attention, with its system / image / query parts boxed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tcap_viz.attention.explain import SampleAttention
from tcap_viz.model.adapter import QUERY, SYSTEM, VISION

#: Component id -> (label, RGB used for shading and the part's frame).
PARTS = {SYSTEM: ("system", (31, 119, 180)), VISION: ("image", (44, 160, 44)), QUERY: ("query", (255, 127, 14))}
DISPLAY_SIZE = 384
GAP, BAR_HEIGHT = 8, 28  # between the plain image and the overlay; the colour scale under the overlay
BACKGROUND_DIM = 0.5  # the grey picture under the overlay, at half brightness


def _inferno_like(x: np.ndarray) -> np.ndarray:
    """Black -> red -> yellow -> white ramp for values in [0, 1], (..., 3) uint8."""
    stops = np.array([[0, 0, 4], [120, 28, 109], [237, 105, 37], [252, 255, 164]], dtype=float)
    pos = np.clip(x, 0, 1) * (len(stops) - 1)
    low = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = (pos - low)[..., None]
    return (stops[low] * (1 - frac) + stops[low + 1] * frac).astype(np.uint8)


def display_size(image: Image.Image, size: int = DISPLAY_SIZE) -> tuple[int, int]:
    """(width, height) with the longest side `size`: the image keeps its own aspect."""
    scale = size / max(image.size)
    return max(1, round(image.width * scale)), max(1, round(image.height * scale))


def _resized(image: Image.Image, width: int, height: int) -> Image.Image:
    enlarge = width >= image.width  # keep small images' pixels crisp
    return image.convert("RGB").resize((width, height), Image.Resampling.NEAREST if enlarge else Image.Resampling.BILINEAR)


def heatmap_overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.75) -> Image.Image:
    """The image at the heat map's size, in dimmed grey, with the attention (scaled to its max)
    laid on top: the more attention a pixel gets, the more opaque and brighter its colour.

    Grey and dimmed, so that the colours read the same over any picture (a yellow shape under a
    yellow ramp once hid the attention); `alpha` is the opacity at the peak."""
    height, width = heat.shape
    grey = np.asarray(_resized(image, width, height).convert("L"), dtype=float)[..., None]
    base = np.repeat(grey * BACKGROUND_DIM, 3, axis=-1)
    peak = float(heat.max())
    weight = (heat / peak if peak > 0 else heat)[..., None]
    colour = _inferno_like(weight[..., 0]).astype(float)
    opacity = alpha * np.sqrt(np.clip(weight, 0, 1))
    return Image.fromarray((base * (1 - opacity) + colour * opacity).astype(np.uint8))


def colour_bar(width: int, peak: float) -> Image.Image:
    """The ramp of the overlay with what its ends mean: no attention, and this sample's peak."""
    bar = Image.new("RGB", (width, BAR_HEIGHT), "white")
    ramp = _inferno_like(np.linspace(0, 1, width))[None].repeat(10, axis=0)
    bar.paste(Image.fromarray(ramp), (0, 0))
    draw, font = ImageDraw.Draw(bar), ImageFont.load_default(size=13)
    draw.text((0, 11), "0", fill=(60, 60, 60), font=font)
    label = f"{peak:.1%} of the answer's attention (peak token)"
    draw.text((max(0, width - int(draw.textlength(label, font=font))), 11), label, fill=(60, 60, 60), font=font)
    return bar


def attention_picture(image: Image.Image, attention: SampleAttention, row: np.ndarray,
                      size: int = DISPLAY_SIZE, alpha: float = 0.75) -> Image.Image:
    """The detail view's picture: the plain image beside the heat map over it, with the colour
    scale below; or the plain image alone when the model's image-token layout is unknown (the
    prompt view still gives the image's share)."""
    width, height = display_size(image, size)
    heat = attention.image_heat(row, width, height)
    plain = _resized(image, width, height)
    if heat is None:
        return plain
    picture = Image.new("RGB", (2 * width + GAP, height + BAR_HEIGHT), "white")
    picture.paste(plain, (0, 0))
    picture.paste(heatmap_overlay(image, heat, alpha), (width + GAP, 0))
    peak = float(row[attention.components == VISION].max(initial=0))
    picture.paste(colour_bar(width, peak), (width + GAP, height))
    return picture


def _token_text(token: str) -> str:
    text = html.escape(token).replace("\n", "↵")
    return text if text.strip() else text.replace(" ", "␣") or "∅"


def token_html(attention: SampleAttention, row: np.ndarray) -> str:
    """The prompt as shaded tokens, grouped into framed system / image / query runs.

    Image tokens are many and carry no text, so each run of them is shown as one block
    with its total attention; the heatmap shows how it spreads over the image.
    """
    peak = float(row[attention.components != VISION].max(initial=0)) or 1.0
    parts, current, run = [], None, []

    def close():
        if current is None:
            return
        label, (r, g, b) = PARTS.get(current, ("other", (120, 120, 120)))
        parts.append(f'<div class="tcap-part" style="border-color: rgb({r},{g},{b})">'
                     f'<span class="tcap-part-label" style="background: rgb({r},{g},{b})">{label}</span>{"".join(run)}</div>')

    i = 0
    while i < len(attention.tokens):
        comp = int(attention.components[i])
        if comp != current:
            close()
            current, run = comp, []
        if comp == VISION:
            j = i
            while j < len(attention.tokens) and attention.components[j] == VISION:
                j += 1
            run.append(f'<span class="tcap-token tcap-image">{j - i} image tokens: {row[i:j].sum():.1%} of the row</span>')
            i = j
            continue
        r, g, b = PARTS[comp][1]
        weight = min(float(row[i]) / peak, 1.0)
        run.append(f'<span class="tcap-token" title="{row[i]:.4f}" style="background: rgba({r},{g},{b},{weight:.2f})">'
                   f"{_token_text(attention.tokens[i])}</span>")
        i += 1
    close()
    return '<div class="tcap-prompt">' + "".join(parts) + "</div>"


TOKEN_CSS = """
.tcap-prompt { display: flex; flex-direction: column; gap: 6px; font-family: ui-monospace, monospace; font-size: 13px; }
.tcap-part { border: 2px solid; border-radius: 6px; padding: 14px 6px 6px; position: relative; line-height: 1.9; }
.tcap-part-label { position: absolute; top: -1px; left: 6px; color: white; font-size: 11px; padding: 0 6px;
                   border-radius: 0 0 4px 4px; }
.tcap-token { padding: 1px 2px; margin: 0 1px; border-radius: 3px; white-space: pre; }
.tcap-image { background: rgba(44,160,44,0.15); font-style: italic; }
"""


def shown_example(group: dict) -> str:
    """The id of the example a group's card picture shows: one whose answer its located cell costs, else one
    its occlusion was measured on (for a group going two ways, a sample of its image route: the other
    route's images have no patch to mask)."""
    return (group.get("holders") or (group.get("routes") or {}).get("image") or group["examined"])[0]


def group_picture(image: Image.Image, occlusion: np.ndarray, heat: np.ndarray | None,
                  size: int = 256, block: Sequence[int] | None = None, block_drop: float | None = None) -> Image.Image:
    """A group's card picture: one of its images, where masking costs its answer most (occlusion,
    positive drops only; a ``block`` (row, column, side) of cells masked at once, outlined, costs
    ``block_drop`` over each of its cells) over it, and where its heads looked on average (when the
    layout is known)."""
    width, height = display_size(image, size)
    drops = np.clip(np.asarray(occlusion, dtype=np.float32), 0, None)
    if block is not None:
        r, c, side = block
        drops[r:r + side, c:c + side] = np.maximum(drops[r:r + side, c:c + side], block_drop or 0.0)
    where = np.asarray(Image.fromarray(drops).resize((width, height), Image.Resampling.NEAREST))
    panels = [_resized(image, width, height), heatmap_overlay(image, where)]
    if block is not None:
        grid_h, grid_w = drops.shape
        ImageDraw.Draw(panels[1]).rectangle(
            (round(c * width / grid_w), round(r * height / grid_h),
             round((c + side) * width / grid_w) - 1, round((r + side) * height / grid_h) - 1), outline=(255, 255, 255), width=2)
    if heat is not None:
        looked = np.asarray(Image.fromarray(np.asarray(heat, dtype=np.float32)).resize((width, height),
                                                                                     Image.Resampling.BILINEAR))
        panels.append(heatmap_overlay(image, looked))
    picture = Image.new("RGB", (len(panels) * width + (len(panels) - 1) * GAP, height + BAR_HEIGHT), "white")
    draw, font = ImageDraw.Draw(picture), ImageFont.load_default(size=13)
    for k, (panel, caption) in enumerate(zip(panels, ("an example", "masking costs the answer",
                                                      "the heads' mean attention"))):
        picture.paste(panel, (k * (width + GAP), 0))
        draw.text((k * (width + GAP), height + 8), caption, fill=(60, 60, 60), font=font)
    return picture
