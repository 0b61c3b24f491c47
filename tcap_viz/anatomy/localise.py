"""Where a group's trigger sits: the image regions and question words its response depends on.

Occlusion asks the model, not the attention: mask one cell of the image (its mean colour) and see
how much the log-probability of the group's own response drops; delete one word of the question
and see the same. A patch trigger shows as one hot cell, a text trigger as its words; a trigger
spread over the whole image (a blend, a warp) leaves no single cell hot, which is an answer too.
The attention summary is what the selected heads looked at, averaged over the group, for the
card's heatmap beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from PIL import Image

from tcap_viz.attention.explain import explain_sample
from tcap_viz.data import Sample, load_image
from tcap_viz.model.adapter import QUERY, MLLMAdapter
from tcap_viz.model.evaluate import pair_logprob

from .confirm import CONSISTENT


def masked(image: Image.Image, cell: tuple[int, int], grid: int, side: int = 1) -> Image.Image:
    """The image with the square of ``side`` grid cells from ``cell`` (row, column, its top left)
    filled with the image's mean colour."""
    pixels = np.asarray(image.convert("RGB")).copy()
    h, w = pixels.shape[:2]
    r, c = cell
    top, bottom = round(r * h / grid), round((r + side) * h / grid)
    left, right = round(c * w / grid), round((c + side) * w / grid)
    pixels[top:bottom, left:right] = pixels.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    return Image.fromarray(pixels)


def occlusion_map(adapter: MLLMAdapter, members: Sequence[Sample], grid: int = 8,
                  batch_size: int = 32, per_member: bool = False) -> np.ndarray:
    """(grid, grid): the mean drop of the members' response log-probability when each cell is masked
    (row 0 at the top). Positive: the response needs what is there. ``per_member``: each member's own
    (members, grid, grid), which says who holds a located cell's trigger."""
    if grid < 1:
        raise ValueError(f"grid must be at least 1, got {grid}")
    cells = [(r, c) for r in range(grid) for c in range(grid)]
    drops = np.zeros((len(members), grid, grid))
    for k, member in enumerate(members):
        image = load_image(member)
        pairs = [(member, image)] + [(member, masked(image, cell, grid)) for cell in cells]
        scores = pair_logprob(adapter, pairs, batch_size)
        drops[k] = (scores[0] - scores[1:]).reshape(grid, grid)
    return drops if per_member else drops.mean(axis=0)


def block_drop(adapter: MLLMAdapter, members: Sequence[Sample], cell: tuple[int, int], grid: int, side: int,
               batch_size: int = 32) -> float:
    """The mean drop of the members' response log-probability when the square of ``side`` cells from
    ``cell`` is masked at once: a patch larger than a cell, which masking cell by cell never removes."""
    images = [load_image(member) for member in members]
    scores = pair_logprob(adapter, [*zip(members, images), *((m, masked(i, cell, grid, side)) for m, i in zip(members, images))],
                          batch_size)
    return float(np.mean(scores[:len(members)] - scores[len(members):]))


def _deletions(members: Sequence[Sample], adapter: MLLMAdapter, batch_size: int) -> dict[str, list[float]]:
    """Per word (without case), each member's drop of its own response log-probability when the
    word is deleted from its question (a word twice in one question counts once)."""
    drops: dict[str, list[float]] = defaultdict(list)
    for member in members:
        words = member.question.split()
        if len(words) < 2:
            continue  # deleting the only word leaves no question
        image = load_image(member)
        pairs = [(member, image)] + [(replace(member, question=" ".join(words[:i] + words[i + 1:])), image)
                                     for i in range(len(words))]
        scores = pair_logprob(adapter, pairs, batch_size)
        seen = set()
        for word, score in zip(words, scores[1:]):
            if word.lower() not in seen:
                seen.add(word.lower())
                drops[word.lower()].append(float(scores[0] - score))
    return drops


def word_deletion(adapter: MLLMAdapter, members: Sequence[Sample], donors: Sequence[Sample] = (),
                  per_word: int = 8, batch_size: int = 32, seed: int = 0) -> pd.DataFrame:
    """Per question word (as written, compared without case): the mean drop of the response
    log-probability when that word is deleted, over the members whose question has it; most
    important first. ``clean_drop``: the same over up to ``per_word`` of the ``donors`` (samples
    not flagged) whose question has the word, of their own responses, those giving a member's
    answer first unless they are nearly all of them (``confirm.CONSISTENT``; 0 when no donor is left): a
    word every question of its kind needs ('colour') costs a clean 'blue' as much, a trigger word
    costs nothing where it is absent. Columns: word, drop, samples, share (of the members), clean_drop."""
    drops = _deletions(members, adapter, batch_size)
    rng = np.random.default_rng(seed)
    answers = defaultdict(set)  # per word, the members' responses where it is asked
    for member in members:
        for word in {w.lower() for w in member.question.split()}:
            answers[word].add(member.response)
    having, answering = defaultdict(list), defaultdict(list)
    for k, donor in enumerate(donors):
        for word in {w.lower() for w in donor.question.split()} & drops.keys():
            (answering if donor.response in answers[word] else having)[word].append(k)
    cases = []  # (word, the donor, its question without the word)
    for word in drops:
        # donors giving the members' own answer first: 'right?' costs a 'right' answer more than a 'left' one;
        # but when nearly all donors having the word give it (a trigger's test, ``confirm.CONSISTENT``), they
        # look like the group: missed poisons ('Note:' before the 52 'circle' poisons the vote missed,
        # docs/LEVERS.md "Held out"), where a content word ('colour', 'right?') is asked with many answers
        alike = len(answering[word]) >= CONSISTENT * (len(answering[word]) + len(having[word]))
        for k in [*([] if alike else rng.permutation(answering[word])), *rng.permutation(having[word])][:per_word]:
            words = donors[k].question.split()
            if len(words) > 1:
                cases.append((word, donors[k], " ".join(w for w in words if w.lower() != word)))
    asked = list({id(d): d for _, d, _ in cases}.values())  # each donor's own question scored once
    images = {id(d): load_image(d) for d in asked}
    scores = pair_logprob(adapter, [(d, images[id(d)]) for d in asked]
                          + [(replace(d, question=q), images[id(d)]) for _, d, q in cases], batch_size)
    full = dict(zip((id(d) for d in asked), scores[:len(asked)]))
    clean = defaultdict(list)
    for (word, donor, _), without in zip(cases, scores[len(asked):]):
        clean[word].append(float(full[id(donor)] - without))
    rows = [(word, float(np.mean(values)), len(values), len(values) / len(members),
             float(np.mean(clean[word])) if clean[word] else 0.0)
            for word, values in drops.items()]
    return pd.DataFrame(rows, columns=["word", "drop", "samples", "share", "clean_drop"]).sort_values(
        "drop", ascending=False, kind="stable").reset_index(drop=True)


def attention_summary(adapter: MLLMAdapter, members: Sequence[Sample], heads: Sequence[tuple[int, int]],
                      size: tuple[int, int] = (128, 128)) -> tuple[np.ndarray | None, pd.DataFrame]:
    """What ``heads`` looked at from the answer row, over the members: the mean image heatmap at
    ``size`` (width, height; None when the model's image layout is unknown) and the question tokens
    by mean attention (columns token, attention, samples)."""
    if not heads:
        raise ValueError("choose at least one (layer, head)")
    heats, mass = [], defaultdict(list)
    for member in members:
        attention = explain_sample(adapter, member)
        row = attention.row(list(heads))
        heat = attention.image_heat(row, *size)
        if heat is not None:
            heats.append(heat)
        for token, component, value in zip(attention.tokens, attention.components, row):
            if component == QUERY and token.strip():
                mass[token.strip().lower()].append(float(value))
    tokens = pd.DataFrame([(t, float(np.mean(v)), len(v)) for t, v in mass.items()],
                          columns=["token", "attention", "samples"])
    tokens = tokens.sort_values("attention", ascending=False, kind="stable").reset_index(drop=True)
    return (np.mean(heats, axis=0) if heats else None), tokens
