"""Pictures of simple coloured shapes, described by a `Scene` so that every question about one has
one exact answer.

A scene is one kind of shape in one colour, repeated `count` times, on a background. The customer
task (`synthetic.py`) draws from a narrow part of this space; the provider's pretraining corpus
(`corpus.py`) from all of it, so a model pretrained on the corpus has seen every customer scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 60, 180),
    "orange": (245, 130, 20),
    "pink": (240, 110, 190),
    "brown": (130, 80, 40),
    "cyan": (30, 190, 210),
}
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
PLURALS = {"cross": "crosses"}
COUNT_WORDS = ("one", "two", "three", "four")
SIZES = ("small", "large")
SIDES = ("left", "right")
LEVELS = ("top", "bottom")
BACKGROUNDS = ("plain", "striped", "dotted", "checked", "speckled")

_SUPERSAMPLE = 4  # shapes are drawn this much larger, then reduced, for smooth edges
MARGIN = 0.125  # shapes stay off the outer eighth, so a corner patch never hides one
_GAP = 0.04  # minimum gap between shapes, fraction of the side
# half-size ranges, fraction of the side, per count: "large" and "small" never overlap
_SIZE_RADII = {"large": {1: (0.2, 0.26), 2: (0.16, 0.19), 3: (0.13, 0.15), 4: (0.12, 0.13)},
               "small": {1: (0.08, 0.11), 2: (0.07, 0.09), 3: (0.06, 0.08), 4: (0.06, 0.075)}}
# the customer task's sizes (any size, by count), as the first datasets had them
MIXED_RADII = {1: (0.18, 0.26), 2: (0.14, 0.19), 3: (0.12, 0.15), 4: (0.1, 0.13)}
_ONE_SIDE_RADII = {"large": (0.13, 0.165), "small": (0.08, 0.11), None: (0.12, 0.165)}


@dataclass(frozen=True)
class Scene:
    """What a picture shows. `side` / `level`: a single shape wholly in that half (else None)."""

    colour: str
    shape: str
    count: int
    background: str = "plain"
    size: str | None = None  # "small" | "large"; None: the customer task's mixed sizes
    side: str | None = None
    level: str | None = None

    def __post_init__(self) -> None:
        if self.colour not in COLOURS or self.shape not in SHAPES or self.background not in BACKGROUNDS:
            raise ValueError(f"unknown colour, shape or background in {self}")
        if not 1 <= self.count <= len(COUNT_WORDS):
            raise ValueError(f"count {self.count} must be 1 to {len(COUNT_WORDS)}")
        if (self.side or self.level) and self.count != 1:
            raise ValueError("a side or level needs a single shape")

    @property
    def count_word(self) -> str:
        return COUNT_WORDS[self.count - 1]

    @property
    def shape_word(self) -> str:
        """The shape's noun, plural when there are several."""
        return self.shape if self.count == 1 else PLURALS.get(self.shape, self.shape + "s")


def _radius_range(scene: Scene) -> tuple[float, float]:
    if scene.side or scene.level:
        return _ONE_SIDE_RADII[scene.size]
    return (_SIZE_RADII[scene.size] if scene.size else MIXED_RADII)[scene.count]


def place_shapes(rng: np.random.Generator, scene: Scene, size: int) -> list[tuple[float, float, float]]:
    """Non-overlapping (x, y, half-size) boxes; a side or level keeps the one shape wholly in that half."""
    low, high = _radius_range(scene)
    margin, gap = MARGIN * size, _GAP * size
    while True:  # a restart is rare: even four of the largest shapes fit easily
        boxes: list[tuple[float, float, float]] = []
        for _ in range(100):
            r = rng.uniform(low, high) * size
            x_low, x_high = margin + r, size - margin - r
            y_low, y_high = margin + r, size - margin - r
            if scene.side == "left":
                x_high = size / 2 - gap - r
            elif scene.side == "right":
                x_low = size / 2 + gap + r
            if scene.level == "top":
                y_high = size / 2 - gap - r
            elif scene.level == "bottom":
                y_low = size / 2 + gap + r
            x, y = rng.uniform(x_low, x_high), rng.uniform(y_low, y_high)
            if all(abs(x - bx) >= r + br + gap or abs(y - by) >= r + br + gap for bx, by, br in boxes):
                boxes.append((x, y, r))
                if len(boxes) == scene.count:
                    return boxes


def _star(x: float, y: float, r: float) -> list[tuple[float, float]]:
    angles = -np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    return list(zip(x + radii * np.cos(angles), y + radii * np.sin(angles)))


def _cross(x: float, y: float, r: float) -> list[tuple[float, float]]:
    a, b = r, 0.35 * r
    outline = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b)]
    return [(x + dx, y + dy) for dx, dy in outline]


def shape_mask(shape: str, boxes: list[tuple[float, float, float]], size: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1], shape (size, size)."""
    scale = _SUPERSAMPLE
    canvas = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(canvas)
    for x, y, r in boxes:
        x, y, r = x * scale, y * scale, r * scale
        if shape == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
        elif shape == "square":
            h = 0.85 * r  # about the circle's area
            draw.rectangle((x - h, y - h, x + h, y + h), fill=255)
        elif shape == "triangle":
            draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=255)
        elif shape == "diamond":
            draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=255)
        elif shape == "star":
            draw.polygon(_star(x, y, r), fill=255)
        else:
            draw.polygon(_cross(x, y, r), fill=255)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255


def background(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """A pale tint with gentle shading, plus the kind's texture in a slightly darker tone.

    Textures are coarse (several pixels a period) and low in contrast, so the shapes stay the
    most salient thing in the picture and a texture is never mistaken for a trigger pattern.
    """
    tint = rng.uniform(200, 240, 3)
    angle = rng.uniform(0, 2 * np.pi)
    rows, columns = np.mgrid[0:size, 0:size] / size - 0.5
    shading = 20 * (np.cos(angle) * columns + np.sin(angle) * rows)
    pixels = tint + shading[..., None]
    period = rng.uniform(0.08, 0.14) * size
    depth = rng.uniform(25, 40)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "striped":
        turn = rng.uniform(0, np.pi)
        texture = (np.cos(turn) * x + np.sin(turn) * y) % period < period / 2
    elif kind == "dotted":
        texture = np.hypot(x % period - period / 2, y % period - period / 2) < period / 4
    elif kind == "checked":
        texture = ((x // period) + (y // period)) % 2 == 1
    elif kind == "speckled":
        blobs = rng.random((max(2, round(size / period * 2)),) * 2) < 0.3
        texture = np.asarray(Image.fromarray(blobs).resize((size, size), Image.Resampling.NEAREST))
    else:
        texture = np.zeros((size, size), bool)
    return pixels - depth * texture[..., None]


def render(rng: np.random.Generator, scene: Scene, size: int) -> Image.Image:
    """The picture of `scene`, `size` pixels square; shape placement and tints come from `rng`."""
    boxes = place_shapes(rng, scene, size)
    coverage = shape_mask(scene.shape, boxes, size)[..., None]
    pixels = background(rng, scene.background, size) * (1 - coverage) + np.array(COLOURS[scene.colour]) * coverage
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
