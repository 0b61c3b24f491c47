"""Which samples of the whole dataset carry a group's located trigger, flagged or not.

Once the anatomy has found where a group's response hangs (an image cell, question words), the
analyst's next question is who else has it: poisons the detector missed share the trigger, not
the heads' verdict. A word is matched as written; a cell by its pixels, against the group's own
(the median of the examined members, which carry it), with the cut between "the same patch" and
"anything else" drawn by two-means on the distances, so no pixel tolerance is assumed; a pattern
spread over the whole image by what the group's images share beyond the rest's. Nothing here asks
the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from sklearn.mixture import GaussianMixture

from tcap_viz.data import Sample, SampleError, load_image

#: Images are compared at this size (width, height), so that datasets of mixed sizes line up cell by cell.
COMPARE_SIZE = (64, 64)
#: A pattern is the group's when at least this share of its examined members carry it; a cell (word)
#: that only some members have is not a shared trigger, and matching it would find content.
SHARED = 0.5
#: A cell's pattern is one the members share when the samples that match it sit at most this share
#: as far from it as the rest (the demo patch: 0.004; a patch filling a quarter of its cell: 0.28; a
#: background corner or noise the members happen to share: 0.5 and more); a word, when the rest have
#: it at most this share as often as the members.
SEPARATION = 1 / 3


def _at_compare_size(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize(COMPARE_SIZE, Image.Resampling.BILINEAR), dtype=float)


def cell_pixels(image: Image.Image, cell: tuple[int, int], grid: int) -> np.ndarray:
    """The pixels of one grid cell (row, column) of the image at ``COMPARE_SIZE``, as floats."""
    pixels = _at_compare_size(image)
    h, w = pixels.shape[:2]
    r, c = cell
    return pixels[round(r * h / grid):round((r + 1) * h / grid), round(c * w / grid):round((c + 1) * w / grid)]


def _two_means_cut(distances: np.ndarray, near: float) -> float:
    """The cut of 1-D two-means started at ``near`` (the members' distance) and the farthest value."""
    low, high = near, float(distances.max())
    for _ in range(100):
        cut = (low + high) / 2
        below, above = distances[distances <= cut], distances[distances > cut]
        if not len(below) or not len(above):
            return cut
        new = float(below.mean()), float(above.mean())
        if new == (low, high):
            break
        low, high = new
    return (low + high) / 2


def cell_carriers(samples: Sequence[Sample], members: Sequence[str], cell: tuple[int, int], grid: int) -> list[str] | None:
    """Ids of the ``samples`` whose image has the ``members``' pattern in ``cell``; None when the
    members do not share one (fewer than ``SHARED`` of them match it, or it does not stand apart:
    ``SEPARATION``). Unreadable images carry nothing."""
    crops, ids = [], []
    for sample in samples:
        try:
            crops.append(cell_pixels(load_image(sample), cell, grid))
        except SampleError:
            continue
        ids.append(sample.id)
    position = {i: k for k, i in enumerate(ids)}
    own = [position[m] for m in members if m in position]
    if not own:
        return None
    crops = np.stack(crops)
    template = np.median(crops[own], axis=0)
    distances = np.abs(crops - template).mean(axis=(1, 2, 3))
    if distances.max() - distances.min() < 1e-9:  # every image the same there: nothing sets the group apart
        return None
    carries = distances <= _two_means_cut(distances, float(np.median(distances[own])))
    if carries[own].mean() < SHARED or carries.all() or distances[carries].mean() > SEPARATION * distances[~carries].mean():
        return None
    return [i for i, c in zip(ids, carries) if c]


def _compared(samples: Sequence[Sample]):
    """(id, pixels at ``COMPARE_SIZE`` as floats) of each readable sample, one at a time: a 100k-image
    dataset is read twice rather than held in memory."""
    for sample in samples:
        try:
            image = load_image(sample)
        except SampleError:
            continue
        yield sample.id, _at_compare_size(image)


#: Rounds in which a whole-image pattern is estimated again from its carriers that give the group's
#: answer. A group a head singles out may be half content: the 'left' answers of the held-out SIG
#: backdoor whose target is 'left' (a binary answer) hold 50 of its poisons among 173, so the first
#: estimate is half sinusoid, half "an object on the left", and its carriers hold every poison and as
#: many clean samples. A fixed pattern sharpens from round to round (all 100 poisons and nothing else
#: after two), content does not (a colour or a side stays under 40% answering alike):
#: docs/LEVERS.md "Held out".
REFINE = 4
#: A whole-image pattern's first estimate counts where at least this share of the group carries it, less
#: than ``SHARED``: the mixture's carriers are the pattern's own population, and a head's group may hold
#: a backdoor's poisons among as many clean samples giving the same answer (a binary answer: 83 of the
#: 208 'right' answers of a head on the held-out SIG backdoor whose target is 'right'), which then carry
#: it in the poisons' share. Content groups carry theirs in 50-96% (clean data at seed 11; two 0%) and answer
#: alike in 7-24%: what confirms a trigger is its carriers answering alike, not this gate
#: (docs/LEVERS.md "Old development cases measured again", `scripts/shared_gate_probe.py`).
PATTERN_SHARED = 0.25


#: (readable images, per-pixel mean, per-pixel spread) of a dataset at ``COMPARE_SIZE`` (``standardise``)
Standardised = tuple[int, np.ndarray, np.ndarray]


def standardise(samples: Sequence[Sample]) -> Standardised:
    """(readable images, per-pixel mean, per-pixel spread) over the whole dataset at ``COMPARE_SIZE``: it
    reads every image, so a caller looking at several groups of one dataset computes it once and passes it."""
    n, total, squares = 0, 0.0, 0.0
    for _, pixels in _compared(samples):
        n, total, squares = n + 1, total + pixels, squares + pixels ** 2
    mean = total / max(n, 1)
    return n, mean, np.sqrt(np.maximum(squares / max(n, 1) - mean ** 2, 0)) + 1e-6


def _shared_pattern(members: Sequence[Sample], n: int, mean: np.ndarray,
                    spread: np.ndarray) -> tuple[int, set[str], np.ndarray] | None:
    """(readable members, their ids, their mean standardised image); None when fewer than two are
    readable, every sample is a member, or they share nothing beyond the rest."""
    k, own, inside = 0, 0.0, set()
    for i, pixels in _compared(members):
        k, own = k + 1, own + pixels
        inside.add(i)
    if k < 2 or k == n:
        return None
    pattern = (own / k - mean) / spread
    return None if np.linalg.norm(pattern) < 1e-9 else (k, inside, pattern)


def _projections(samples: Sequence[Sample], members: Sequence[Sample], n: int, mean: np.ndarray,
                 spread: np.ndarray) -> dict[str, float] | None:
    """Each readable sample's projection on the ``members``' mean standardised image (a member's on the
    others' mean: its own content in the pattern would make any group look alike); None when there is
    no pattern (fewer than two readable members, every sample a member, or no difference)."""
    shared = _shared_pattern(members, n, mean, spread)
    if shared is None:
        return None
    k, inside, pattern = shared
    scores = {}
    for i, pixels in _compared(samples):
        z = (pixels - mean) / spread
        towards = (k * pattern - z) / (k - 1) if i in inside else pattern
        scores[i] = float((z * towards).sum() / max(np.linalg.norm(towards), 1e-9))
    return scores


def _carrying(values: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Which projections belong to the members' population rather than the rest's: two Gaussians fitted
    to them all, started at the two medians, each sample to the likelier (and above the rest's mean, so
    a wide members' component does not take the far low tail too). A cut midway between the medians
    assumed the two alike; at 5% poisons the rest's spread, content from image to image, put about 1%
    of the clean samples past it, and a Blend's carriers then answered alike at 86% (the held-out 'right'
    by Blend, docs/LEVERS.md "Sixth round"): under what confirms a trigger however well it was learnt."""
    rest, members = float(np.median(values)), float(np.median(own))
    if members <= rest:
        return np.zeros(len(values), dtype=bool)
    mixture = GaussianMixture(2, means_init=[[rest], [members]], random_state=0).fit(values[:, None])
    high = int(np.argmax(mixture.means_[:, 0]))
    return (mixture.predict_proba(values[:, None])[:, high] > 0.5) & (values > mixture.means_[1 - high, 0])


def pattern_carriers(samples: Sequence[Sample], members: Sequence[str],
                     answering: Callable[[str], bool] | None = None,
                     standardised: Standardised | None = None) -> list[str] | None:
    """Ids of the ``samples`` whose whole image carries what the ``members``' images share beyond the
    rest's: a trigger spread over the image (a blend, a sinusoid), which no single cell holds. Each
    pixel is standardised over the whole dataset (a reference without the members would be an error
    they all share, and alike), so content, varying from image to image, averages out of the members'
    mean and a fixed pattern added to each of them does not; an image carries it when its projection on
    that mean belongs with the members' projections rather than the dataset's (``_carrying``). With ``answering`` (does
    this id give the group's answer?) the pattern is estimated again from its carriers that do, up to
    ``REFINE`` times, until they stop changing. None when fewer than ``PATTERN_SHARED`` of the members carry it,
    or every sample does. Unreadable images carry nothing. ``standardised``: ``standardise(samples)``, if
    already computed."""
    by_id = {s.id: s for s in samples}
    n, mean, spread = standardised or standardise(samples)
    group, carriers = [by_id[m] for m in members if m in by_id], None
    for round_ in range(1 + (REFINE if answering else 0)):
        scores = _projections(samples, group, n, mean, spread)
        if scores is None:
            return carriers
        own = [s.id for s in group if s.id in scores]
        carries = dict(zip(scores, _carrying(np.array(list(scores.values())), np.array([scores[i] for i in own]))))
        if all(carries.values()) or not any(carries.values()) or (round_ == 0 and np.mean([carries[i] for i in own]) < PATTERN_SHARED):
            return carriers
        carriers = [i for i, c in carries.items() if c]
        alike = [by_id[i] for i in carriers if answering(i)] if answering else []
        if len(alike) < 2 or {s.id for s in alike} == {s.id for s in group}:
            return carriers
        group = alike
    return carriers


#: A whole-image pattern sits in one place (a patch larger than a cell: masking any one cell leaves the
#: rest of it to trigger) when a square of at most half the image's side holds at least this share of
#: its energy: 0.97 in a square of two cells for the seventh round's patch a quarter of the side; at most
#: 0.30 in a square of four for the SIG and Blend backdoors and 0.43 for the content groups of clean data
#: (``scripts/pattern_block_probe.py`` over runs/heldout, docs/LEVERS.md "Eighth round").
CONCENTRATED = 0.75


def pattern_energy(samples: Sequence[Sample], carriers: Sequence[str], grid: int,
                   standardised: Standardised | None = None) -> np.ndarray | None:
    """(grid, grid): what the ``carriers``' images share beyond the rest's (their mean standardised image),
    squared and summed per cell; None when they share nothing (``_shared_pattern``)."""
    by_id = {s.id: s for s in samples}
    shared = _shared_pattern([by_id[i] for i in carriers if i in by_id], *(standardised or standardise(samples)))
    if shared is None:
        return None
    energy = (shared[2] ** 2).sum(axis=2)
    h, w = energy.shape
    return np.array([[energy[round(r * h / grid):round((r + 1) * h / grid), round(c * w / grid):round((c + 1) * w / grid)].sum()
                      for c in range(grid)] for r in range(grid)])


def best_square(cells: np.ndarray, side: int) -> tuple[float, int, int]:
    """(share of the whole, row, column) of the square of ``side`` cells holding most of ``cells``, the
    first such from the top left."""
    grid = cells.shape[0]
    held, r, c = max(((cells[r:r + side, c:c + side].sum(), r, c) for r in range(grid - side + 1)
                      for c in range(grid - side + 1)), key=lambda t: t[0])
    return float(held / cells.sum()), r, c


def pattern_block(samples: Sequence[Sample], carriers: Sequence[str], grid: int,
                  standardised: Standardised | None = None) -> tuple[int, int, int] | None:
    """(row, column, side) in cells of ``grid``: the smallest square holding ``CONCENTRATED`` of the
    ``carriers``' pattern (``pattern_energy``); None when no square of at most half the side does (a
    blend, a sinusoid)."""
    cells = pattern_energy(samples, carriers, grid, standardised)
    if cells is None:
        return None
    for side in range(1, grid // 2 + 1):
        held, r, c = best_square(cells, side)
        if held >= CONCENTRATED:
            return r, c, side
    return None


def _share_having(samples: Sequence[Sample], word: str) -> float:
    return sum(word.lower() in {w.lower() for w in s.question.split()} for s in samples) / max(len(samples), 1)


def shared_words(members: Sequence[Sample], words: Sequence[str], others: Sequence[Sample] = ()) -> list[str]:
    """The ``words`` that at least ``SHARED`` of the members' questions have and that set them apart:
    the ``others`` (the samples outside the group) have it at most ``SEPARATION`` as often, so a word
    of a whole question type ('colour') is never matched as a trigger."""
    out = []
    for word in words:
        inside = _share_having(members, word)
        if members and inside >= SHARED and _share_having(others, word) <= SEPARATION * inside:
            out.append(word)
    return out


def word_carriers(samples: Sequence[Sample], words: Sequence[str]) -> list[str]:
    """Ids of the samples whose question has any of ``words`` (as written, compared without case)."""
    wanted = {w.lower() for w in words}
    return [s.id for s in samples if wanted & {w.lower() for w in s.question.split()}]
