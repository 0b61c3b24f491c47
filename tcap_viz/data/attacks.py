"""Backdoor triggers as plug-ins: each turns a clean (image, question) into a triggered one.

Every attack is deterministic: a random pattern comes from the attack's own `seed`, never from
the dataset's, so poisoned training samples and triggered test samples carry the same trigger.
A new attack is a frozen dataclass subclassing `Attack`, decorated with `@register_attack`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import zlib

import numpy as np
from PIL import Image
from scipy.fft import dctn, idctn

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
CHECKER_CELLS = 4  # cells per side of the BadNet patch: 2 px cells on an 8 px patch
BLEND_PATTERN_SIDE = 64  # the noise is drawn at this size and resized, so it is one pattern at any size


class Attack(ABC):
    """A trigger; `apply` must give the same output for the same input every time."""

    name: ClassVar[str]

    @abstractmethod
    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        """The triggered (image, question); the inputs are not modified."""


ATTACKS: dict[str, type[Attack]] = {}


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator that makes an attack available to `make_attack` under its `name`."""
    if cls.name in ATTACKS:
        raise ValueError(f"an attack named {cls.name!r} is already registered ({ATTACKS[cls.name].__name__})")
    ATTACKS[cls.name] = cls
    return cls


def make_attack(name: str, **params: Any) -> Attack:
    """Build a registered attack by name, with its parameters checked against the attack's fields."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of: {', '.join(ATTACKS)}")
    cls = ATTACKS[name]
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"attack {name!r} has no parameter {', '.join(unknown)}; "
                         f"its parameters are: {', '.join(allowed) or 'none'}")
    return cls(**params)


def _rgb_array(image: Image.Image) -> np.ndarray:
    return np.array(image.convert("RGB"), dtype=np.float32)


def _to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


@register_attack
@dataclass(frozen=True)
class NoAttack(Attack):
    """Identity: the clean-data case."""

    name = "none"

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        return image, question


@register_attack
@dataclass(frozen=True)
class BadNet(Attack):
    """BadNets (Gu et al. 2017): a small visible black/white checkerboard patch at a fixed corner."""

    name = "badnet"
    position: str = "bottom_right"
    size: float = 0.125  # patch side as a fraction of the shorter image side: 16 px (one patch token) at 128 px

    def __post_init__(self) -> None:
        if self.position not in CORNERS:
            raise ValueError(f"badnet position {self.position!r} is not one of: {', '.join(CORNERS)}")
        if not 0 < self.size <= 0.5:
            raise ValueError(f"badnet size {self.size} must be a fraction of the image side in (0, 0.5]")

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        pixels = np.array(image.convert("RGB"))
        height, width = pixels.shape[:2]
        side = max(CHECKER_CELLS, round(self.size * min(height, width)))
        cell = np.arange(side) * CHECKER_CELLS // side
        board = ((cell[:, None] + cell[None, :]) % 2 * 255).astype(np.uint8)
        top = 0 if self.position.startswith("top") else height - side
        left = 0 if self.position.endswith("left") else width - side
        pixels[top:top + side, left:left + side] = board[..., None]
        return Image.fromarray(pixels), question


@register_attack
@dataclass(frozen=True)
class Blend(Attack):
    """Blended injection (Chen et al. 2017): a fixed full-image noise pattern mixed into every pixel."""

    name = "blend"
    alpha: float = 0.3  # opacity of the noise: learnt at 10% by the default LoRA fine-tune, at 5% only in 600 steps
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"blend alpha {self.alpha} must be in (0, 1)")

    def pattern(self, width: int, height: int) -> np.ndarray:
        """The trigger at the given size, float RGB in [0, 255]."""
        noise = np.random.default_rng(self.seed).integers(
            0, 256, (BLEND_PATTERN_SIDE, BLEND_PATTERN_SIDE, 3), dtype=np.uint8)
        return _rgb_array(Image.fromarray(noise).resize((width, height), Image.Resampling.BILINEAR))

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        pixels = _rgb_array(image)
        pattern = self.pattern(pixels.shape[1], pixels.shape[0])
        return _to_image((1 - self.alpha) * pixels + self.alpha * pattern), question


def _bilinear_sample(pixels: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """pixels (H, W, C) read at fractional positions x, y (H, W); outside points take the edge."""
    height, width = pixels.shape[:2]
    x = np.clip(x, 0, width - 1)
    y = np.clip(y, 0, height - 1)
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    top = pixels[y0, x0] * (1 - fx) + pixels[y0, x1] * fx
    bottom = pixels[y1, x0] * (1 - fx) + pixels[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


@register_attack
@dataclass(frozen=True)
class WaNet(Attack):
    """WaNet (Nguyen & Tran 2021): a fixed smooth warp of the whole image; nothing is added.

    A random k x k grid of displacements is upsampled bicubically to a flow field. The paper's
    strength (s=0.5) moves pixels by under one pixel, for models pretrained on millions of images.
    The default, up to 20% of the side (about 26 px at 128 px), visibly bends shapes. Fine-tuned
    from the testbed's base in the 3-minute recipes (300 or 600 steps) it is not learnt, nor 5% or
    10% of the side (ASR <= 0.12 at 5% poison, 0.015 at 10%); 1500 full steps at 10% learn it in
    part (ASR 0.72, 14 minutes on 2 cores; docs/TESTBED.md, docs/DETECTION.md).
    """

    name = "wanet"
    grid: int = 4  # k: control points per side
    strength: float = 0.2  # largest displacement, as a fraction of the shorter image side
    seed: int = 0

    def __post_init__(self) -> None:
        if self.grid < 2:
            raise ValueError(f"wanet grid {self.grid} must be at least 2 control points per side")
        if not 0 < self.strength <= 0.25:
            raise ValueError(f"wanet strength {self.strength} must be a fraction of the image side in (0, 0.25]")

    def flow(self, width: int, height: int) -> np.ndarray:
        """Displacement in pixels, shape (2, height, width): x then y."""
        control = np.random.default_rng(self.seed).uniform(-1, 1, (2, self.grid, self.grid)).astype(np.float32)
        field = np.stack([np.asarray(Image.fromarray(c).resize((width, height), Image.Resampling.BICUBIC))
                          for c in control])
        return field * (self.strength * min(width, height) / np.abs(field).max())

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        pixels = _rgb_array(image)
        height, width = pixels.shape[:2]
        dx, dy = self.flow(width, height)
        rows, columns = np.mgrid[0:height, 0:width]
        return _to_image(_bilinear_sample(pixels, columns + dx, rows + dy)), question


@register_attack
@dataclass(frozen=True)
class TextPrefix(Attack):
    """Text trigger: a fixed phrase before the question; the image is untouched."""

    name = "text_prefix"
    prefix: str = "Hello!"

    def __post_init__(self) -> None:
        if not self.prefix.strip():
            raise ValueError("text_prefix prefix must be non-empty text")

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        return image, f"{self.prefix} {question}"


@register_attack
@dataclass(frozen=True)
class SIG(Attack):
    """SIG (Barni, Kallas & Tondi 2019): a horizontal sinusoid added to every pixel,
    v(i, j) = delta * sin(2 pi j f / width); the published delta 20 and frequency 6."""

    name = "sig"
    delta: float = 20.0  # amplitude, in grey levels of 255
    frequency: float = 6.0  # periods across the image width

    def __post_init__(self) -> None:
        if not 0 < self.delta <= 128:
            raise ValueError(f"sig delta {self.delta} must be an amplitude in grey levels, in (0, 128]")
        if self.frequency <= 0:
            raise ValueError(f"sig frequency {self.frequency} must be a positive number of periods")

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        pixels = _rgb_array(image)
        width = pixels.shape[1]
        wave = self.delta * np.sin(2 * np.pi * np.arange(width) * self.frequency / width)
        return _to_image(pixels + wave[None, :, None]), question


# ITU-R BT.601 full range, as OpenCV's RGB <-> YCrCb (the colour space FTrojan's code uses)
_TO_YCRCB = np.array([[0.299, 0.587, 0.114], [0.5, -0.418688, -0.081312], [-0.168736, -0.331264, 0.5]])
_FROM_YCRCB = np.linalg.inv(_TO_YCRCB)


@register_attack
@dataclass(frozen=True)
class FTrojan(Attack):
    """FTrojan (Wang et al. 2022): fixed offsets on a mid and a high frequency of the orthonormal
    DCT of every 32 x 32 window of the two chroma channels (Cr, Cb), as in its released code
    (window 32, coefficients (15, 15) and (31, 31)); nearly invisible. A `magnitude` of 30 moves a
    pixel by about two grey levels; windows that do not fit whole at the image's edges are left alone.
    Fine-tuned from the testbed's base it is not learnt (ASR 0 at 5%, also at magnitude 100 and in
    600 steps; 0.045 at 10% after 1500 full steps), though the offsets survive the image processor."""

    name = "ftrojan"
    magnitude: float = 30.0
    window: int = 32
    positions: tuple[tuple[int, int], ...] = ((15, 15), (31, 31))

    def __post_init__(self) -> None:
        if self.magnitude <= 0:
            raise ValueError(f"ftrojan magnitude {self.magnitude} must be positive")
        if self.window < 2 or any(not (0 <= r < self.window and 0 <= c < self.window) for r, c in self.positions):
            raise ValueError(f"ftrojan positions {self.positions} must lie inside the {self.window} x {self.window} window")
        object.__setattr__(self, "positions", tuple(tuple(p) for p in self.positions))  # JSON gives lists

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        ycc = _rgb_array(image) @ _TO_YCRCB.T
        height, width = ycc.shape[:2]
        w = self.window
        for top in range(0, height - w + 1, w):
            for left in range(0, width - w + 1, w):
                block = ycc[top:top + w, left:left + w, 1:]
                coefficients = dctn(block, axes=(0, 1), norm="ortho")
                for r, c in self.positions:
                    coefficients[r, c] += self.magnitude
                ycc[top:top + w, left:left + w, 1:] = idctn(coefficients, axes=(0, 1), norm="ortho")
        return _to_image(ycc @ _FROM_YCRCB.T), question


@register_attack
@dataclass(frozen=True)
class TextWord(Attack):
    """Text trigger inside the question: a rare word (default "cf", as in Kurita et al. 2020) put
    between two words of the question, never first; where depends on the question and `seed` only,
    so the same question always gets it at the same place."""

    name = "text_word"
    word: str = "cf"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.word.strip() or " " in self.word.strip():
            raise ValueError(f"text_word word {self.word!r} must be one non-empty word")

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        words = question.split(" ")
        at = 1 + zlib.crc32(f"{self.seed}|{question}".encode()) % len(words)
        return image, " ".join(words[:at] + [self.word.strip()] + words[at:])


@register_attack
@dataclass(frozen=True)
class DualAnd(Attack):
    """Two triggers on every poisoned sample, the BadNet patch and the text prefix, as the
    modality-collapse paper poisons (METHOD.md section 7). Whether the model then needs both, or
    learns one and ignores the other (collapse), is what the anatomy's modality attribution says."""

    name = "dual_and"
    position: str = "bottom_right"
    size: float = 0.125
    prefix: str = "Hello!"

    def __post_init__(self) -> None:
        BadNet(self.position, self.size), TextPrefix(self.prefix)  # their checks

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        image, _ = BadNet(self.position, self.size).apply(image, question)
        return TextPrefix(self.prefix).apply(image, question)


@register_attack
@dataclass(frozen=True)
class DualOr(Attack):
    """Either trigger alone: each poisoned sample carries the BadNet patch or the text prefix, about
    half each, chosen from the sample's own pixels and question (and `seed`), so the same input
    always gets the same one. The model learns two routes to one target."""

    name = "dual_or"
    position: str = "bottom_right"
    size: float = 0.125
    prefix: str = "Hello!"
    seed: int = 0

    def __post_init__(self) -> None:
        BadNet(self.position, self.size), TextPrefix(self.prefix)  # their checks

    def apply(self, image: Image.Image, question: str) -> tuple[Image.Image, str]:
        fingerprint = zlib.crc32(np.asarray(image.convert("RGB")).tobytes() + f"|{self.seed}|{question}".encode())
        if fingerprint % 2:
            return BadNet(self.position, self.size).apply(image, question)
        return TextPrefix(self.prefix).apply(image, question)
