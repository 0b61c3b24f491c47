"""A backdoor's anatomy: the flagged samples in groups, and per group which modality carries it and
where its trigger sits (issue 14). Groups are model-free; the rest asks the model again, on a few
of each group's samples, so it runs after detection and is cached with the run."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tcap_viz.data import Dataset, Sample, SampleError, load_image
from tcap_viz.model.adapter import MLLMAdapter

from .carriers import (
    Standardised,
    cell_carriers,
    pattern_block,
    pattern_carriers,
    shared_words,
    standardise,
    word_carriers,
)
from .confirm import (
    CONSISTENT,
    FOLLOWED,
    HEADS_ONLY,
    NEXT_HEADS,
    ODD,
    REPEATED,
    VOTE_ONLY,
    confirmation_summary,
    confirmed_posterior,
    followed_apart,
    is_trigger,
    judges_disagreements,
    odd_answers,
    repeats,
    sample_verdict,
    unexamined,
    vote_joins,
)
from .groups import FlaggedGroup, answer_key, flagged_groups, group_line
from .localise import (
    attention_summary,
    block_drop,
    masked,
    occlusion_map,
    word_deletion,
)
from .modality import (
    DOMINANT,
    MIN_EFFECT,
    MIN_ROUTE,
    ModalityAttribution,
    donor_questions,
    modality_attribution,
)

__all__ = ["CONSISTENT", "FOLLOWED", "HEADS_ONLY", "NEXT_HEADS", "NO_DONORS", "ODD", "PER_GROUP", "REPEATED", "VOTE_ONLY", "FlaggedGroup",
           "GroupAnatomy", "ModalityAttribution", "anatomy", "attention_summary", "block_drop", "cell_carriers", "confirmation_summary", "confirmed_posterior",
           "donor_questions", "examine", "flagged_groups", "followed_apart", "group_line", "is_trigger", "judges_disagreements", "masked", "modality_attribution",
           "occlusion_map", "odd_answers", "pattern_block", "pattern_carriers", "repeats", "sample_verdict", "unexamined", "vote_joins", "word_carriers", "word_deletion"]

#: Samples per group the model is asked about (the most suspicious first): enough for a mean
#: that a stray sample does not move, few enough that a group costs seconds on the demo.
PER_GROUP = 12
#: Unflagged samples drawn (seeded) as donor candidates: enough for a near question of every kind,
#: without reading every image of a 100k-sample dataset to check it opens.
DONOR_POOL = 2000
#: A masked cell or a deleted word "holds the trigger" when it costs the group's response at least
#: this share of what the whole modality does (the Shapley effect) and this many nats: a trigger
#: spread over the image (a blend) or a response resting on content everywhere has no such cell. A
#: word counts by what it costs beyond what deleting it costs clean questions' own answers (those
#: with the group's answer first), over the whole group (as the effect is), and only when clean
#: answers barely need it (under MIN_DROP): 'colour' costs every colour question its answer, and a
#: backdoor taught on colour questions needs it too, but a trigger word costs nothing where it is absent.
CARRIES = 0.25
MIN_DROP = 0.1
#: A word in fewer of the examined questions says nothing of the group: one question's wording
#: matters to its own answer and holds no shared trigger.
MIN_WORD_SAMPLES = 2
#: The group's mean attention heatmap is kept at this size (width, height): a card's picture.
HEAT_SIZE = (64, 64)


@dataclass
class GroupAnatomy:
    """One group's card: who is in it, which modality carries its response, where the trigger is."""

    group: FlaggedGroup
    examined: list[str]  # the member ids the model was asked about
    modality: ModalityAttribution | None  # None when every sample is flagged: no clean donor to swap in
    occlusion: np.ndarray  # (grid, grid) mean drop of the response log-probability per masked cell
    words: pd.DataFrame  # word, drop, samples, share, clean_drop (word_deletion)
    heat: np.ndarray | None  # mean attention of the group's heads over the image
    tokens: pd.DataFrame  # token, attention, samples
    #: every sample of the dataset carrying the located trigger (carriers.py); None: nothing located to match
    carriers: list[str] | None = None
    missed: list[str] = field(default_factory=list)  # the carriers not flagged
    answering: list[str] = field(default_factory=list)  # the carriers that give the group's response
    #: the carriers were matched by a pattern spread over the whole image (carriers.pattern_carriers)
    spread: bool = False
    #: question words the group shares beyond the rest, each forcing its answer, where the question carries
    #: the response and deleting any one word costs it nothing (each stands in for the others)
    phrase: list[str] = field(default_factory=list)
    #: (row, column, side) of the square of cells a whole-image pattern's carriers share it in, when masking it
    #: at once costs the response a lot (``CARRIES``): a patch larger than a cell; and that cost in nats
    block: tuple[int, int, int] | None = None
    block_drop: float | None = None
    #: the examined ids per route ("image", "text") when the group goes two ways (``ModalityAttribution.routes``):
    #: the occlusion is then over the image route's samples and the words over the question route's
    routes: dict[str, list[str]] = field(default_factory=dict)
    #: each occluded member's own drops (members, grid, grid), in the order of ``occluded``: who holds a cell
    member_occlusion: np.ndarray | None = None
    occluded: list[str] = field(default_factory=list)

    def _over(self, route: str) -> str:
        """", over the N samples the image carries" where the trigger was located route by route."""
        kind = "image" if route == "image" else "question"
        return f", over the {len(self.routes[route])} samples the {kind} carries" if self.routes else ""

    def _carries(self, drop: float) -> bool:
        effect = self.modality.effect if self.modality is not None else 0.0
        return drop >= MIN_DROP and drop >= CARRIES * max(effect, 0.0)

    def region(self) -> tuple[int, int] | None:
        """(row, column) of the cell whose masking costs the response most, if that is a lot
        (``CARRIES``); None when no single cell holds it."""
        cell = np.unravel_index(int(np.argmax(self.occlusion)), self.occlusion.shape)
        return tuple(int(i) for i in cell) if self._carries(float(self.occlusion[cell])) else None

    def holders(self) -> list[str]:
        """The occluded members whose own answer the located cell costs at least ``MIN_DROP``: those
        carrying its trigger. A patch OR a word whose model barely answers to either read "neither" on
        every examined sample, and the median of all twelve, seven without the patch, matched nearly every
        image (the eleventh round's 'square': 1952 carriers; its 3 holders' pattern, its 48 patched poisons)."""
        region = self.region()
        if region is None or self.member_occlusion is None:
            return []
        return [i for i, drops in zip(self.occluded, self.member_occlusion) if drops[region] >= MIN_DROP]

    def cell_owners(self) -> list[str]:
        """Whose pixels set the located cell's pattern: its holders (``MIN_ROUTE`` or more), else the
        image route's samples of a group going two ways, else every examined member."""
        holders = self.holders()
        return holders if len(holders) >= MIN_ROUTE else self.routes.get("image", self.examined)

    def trigger_words(self) -> list[str]:
        """The question words whose deletion costs the response a lot (``CARRIES``), strongest first."""
        w = self.words
        beyond = (w["drop"] - w["clean_drop"]).clip(lower=0)
        return [word for word, n, extra, share, clean in zip(w["word"], w["samples"], beyond, w["share"], w["clean_drop"])
                if n >= MIN_WORD_SAMPLES and clean < MIN_DROP and extra >= MIN_DROP and self._carries(float(extra * share))]

    def named_words(self) -> list[str]:
        """The trigger words the card names: none where a pattern over the whole image (``spread``) or words the
        group's questions share (``phrase``) were matched, which are sought only when no located word forced the
        answer, and whose carriers replace theirs ('on' of every position question beside the development case
        'right' by SIG read as where it hung; 'colour' beside an appended 'ok?', docs/FOREIGN.md)."""
        return [] if self.spread or self.phrase else self.trigger_words()

    def location(self) -> tuple:
        """What ``where`` names, without its numbers: the cell, the square of cells, the words, the phrase, a
        pattern over the whole image, and whether the model barely answers to it. Two seeds locating the same
        trigger give the same key, whatever masking it costs or how many samples each route holds."""
        region = self.region()
        block = self.block if region is None else None
        words, phrase = tuple(self.named_words()), tuple(self.phrase)
        spread = self.spread and not (region or block or words or phrase)
        weak = self.modality is not None and self.modality.effect < MIN_EFFECT
        return region, block, words, phrase, spread, weak

    def where(self) -> str:
        """Where the trigger sits, in plain words."""
        parts = []
        region, block, words, phrase, spread, weak = self.location()
        if region is not None:
            grid = self.occlusion.shape[0]
            parts.append(f"the image's {_place(region, grid)} (cell {region[0] + 1},{region[1] + 1} of {grid}x{grid}: "
                         f"masking it costs {self.occlusion[region]:.2f} nats{self._over('image')})")
        if block is not None:
            grid, (r, c, side) = self.occlusion.shape[0], block
            parts.append(f"the image's {_place(_square_at(block, grid), grid)} (the {side}x{side} cells "
                         f"from cell {r + 1},{c + 1} of {grid}x{grid}, where what its images share sits: masking them at "
                         f"once costs {self.block_drop:.2f} nats, no one cell alone does)")
        if words:
            parts.append("the question's word" + ("s " if len(words) > 1 else " ") + ", ".join(repr(w) for w in words)
                         + (f" ({self._over('text')[2:]})" if self.routes else ""))
        if phrase:
            parts.append("the question's word" + ("s " if len(phrase) > 1 else " ")
                         + ", ".join(repr(w) for w in phrase) + " (shared by the group's questions beyond the rest's, "
                         "each forcing the answer wherever it appears)")
        if spread:
            return ("No single image region or question word holds it, but a pattern over the whole image does: the "
                    "group's images share it beyond the rest's (a blend, a sinusoid)"
                    + (f", though the model barely answers to it (v(both) - v(none) {self.modality.effect:.2f} nats): "
                       "a trigger in the data that the model learnt only in part." if weak else "."))
        if not parts and weak:
            return "Nothing to locate: neither the image nor the question moves this response much."
        if not parts:
            return "No single image region or question word holds it: spread over the image, or the content itself."
        line = "The response hangs on " + " and ".join(parts)
        if weak:  # the reading says nothing moves it
            return line + (f", though neither modality as a whole moves it much (v(both) - v(none) "
                           f"{self.modality.effect:.2f} nats): a backdoor the model barely learnt, an ordinary "
                           "answer, or none.")
        return line + "."

    def consistency(self) -> float | None:
        """The share of the carriers that give the group's response (None: nothing located)."""
        return len(self.answering) / len(self.carriers) if self.carriers else None

    def confirmed(self) -> bool:
        """Whether what the response hangs on forces it wherever it appears: a backdoor's trigger
        (``confirm.CONSISTENT``)."""
        return is_trigger(self.answering, self.carriers)

    def carriers_line(self) -> str:
        """Who else carries the trigger, and whether they answer alike, in plain words."""
        if self.carriers is None:
            return ("No shared image cell, whole-image pattern or question word located, so nothing to look for in the "
                    "other samples.")
        inside = len(set(self.carriers) & set(self.group.ids))
        verdict = ("a pattern that forces the answer wherever it appears: a trigger" if self.confirmed() else
                   "they answer many things, so it is content the answer uses, not a trigger")
        return (f"{len(self.carriers)} samples of the dataset carry what it hangs on: {inside} of this group's "
                f"{self.group.size}, and {len(self.missed)} not flagged at all. {len(self.answering)} of them "
                f"({self.consistency():.0%}) answer {self.group.response!r}: {verdict}.")

    def to_dict(self) -> dict:
        g = self.group
        return {"name": g.name, "response": g.response, "size": g.size, "outside": g.outside,
                "ids": g.ids, "heads": [list(h) for h in g.heads], "examined": self.examined,
                "modality": None if self.modality is None else self.modality.to_dict(), "occlusion": self.occlusion.round(4).tolist(),
                "region": None if self.region() is None else list(self.region()),
                "trigger_words": self.named_words(), "spread": self.spread, "phrase": self.phrase,
                "block": None if self.block is None else list(self.block), "block_drop": self.block_drop,
                "where": self.where(), "routes": self.routes, "holders": self.holders(),
                "carriers": self.carriers,
                "missed": self.missed, "answering": self.answering, "consistency": self.consistency(),
                "confirmed": self.confirmed(), "carriers_line": self.carriers_line(),
                "words": self.words.head(10).to_dict("records"), "tokens": self.tokens.head(10).to_dict("records"),
                "heat": None if self.heat is None else self.heat.round(6).tolist()}


def _place(cell: tuple[float, float], grid: int) -> str:
    """"bottom-right corner", "centre", ... for a grid cell (or the centre of a square of them)."""
    def side(i, low, high):
        third = grid / 3
        return low if i < third else high if i >= grid - third else ""
    vertical, horizontal = side(cell[0], "top", "bottom"), side(cell[1], "left", "right")
    if vertical and horizontal:
        return f"{vertical}-{horizontal} corner"
    return f"{vertical or horizontal} edge" if vertical or horizontal else "centre"


def _square_at(block: tuple[int, int, int], grid: int) -> tuple[float, float]:
    """The cell a square of cells (row, column, side) is placed by: on the edge it touches, else its centre."""
    r, c, side = block

    def at(start: int) -> float:
        return 0 if start == 0 else grid - 1 if start + side == grid else start + (side - 1) / 2
    return at(r), at(c)


def _readable(samples: Sequence[Sample], limit: int | None = None) -> list[Sample]:
    out = []
    for sample in samples:
        try:
            load_image(sample)
        except SampleError:
            continue
        out.append(sample)
        if limit is not None and len(out) >= limit:
            break
    return out


#: Words named beside a located cell are matched as shared words only when the question carries at least
#: this share of the response (two routes, or both needed): when the image carries it they may be the kind
#: of question the backdoor was taught on ('colour' beside a patch whose target is 'blue'), and matching
#: them would list every question of that kind, so they count there only where they force the answer alone
#: (a trigger word of a few examined samples). Where neither modality moves the response (no share to
#: read) they are matched, and stay only where they force the answer (``_carriers``).
WORD_ROUTE = 0.25


def _carriers(found: GroupAnatomy, members: Sequence[Sample], samples: Sequence[Sample],
              standardised: Callable[[], Standardised] | None = None) -> list[str] | None:
    """Every sample with the group's located cell pattern or its shared trigger words (None: neither).
    Each is a route, and so is each shared word; when one forces the group's answer on its own
    (``is_trigger``), only the routes that do count: a word located beside a trigger cell the image carries
    may be a kind of question, and its carriers would drown the cell's (docs/LEVERS.md item 6), so it is a
    route only where it forces the answer alone (a patch OR a word with too few examined samples answering to
    the question alone to read two routes: the seventh round's 'Yo!', docs/LEVERS.md item 23), and so would a word
    of the question type beside a trigger word ('see?' of counting questions beside the held-out 'fyi',
    docs/LEVERS.md "Sixth round"). A word named in fewer than
    ``carriers.SHARED`` of the examined questions is a route too, but only where it forces the answer on
    its own: a group a head singles out may be mostly content (the 'left' answers around the held-out
    word 'pls', two of five examined having it), and its carriers then are the trigger's. When the image carries
    the response (``DOMINANT``) and no cell holds it, the route is a pattern spread over the whole image
    (``pattern_carriers``, over the whole group: SIG on the held-out 'square' backdoor), and
    ``found.spread`` says so; a located word that does not force the answer is no reason to stop there. When the question carries it and no word's deletion costs it anything, the
    words may stand in for each other (the held-out prefix 'Quick question:': either word alone forces
    'right'), or a located word does not force it (the kind of question: 'colour' of a group of colour answers
    whose trigger is an appended 'ok?', on a dataset written outside the project, docs/FOREIGN.md), the words the
    group's questions share beyond the rest's that force its answer alone are then its routes, and
    ``found.phrase`` names them. Where neither modality moves the response much
    (``MIN_EFFECT``: a backdoor the model learnt only in part, as the sixth round's 'square' by Blend at
    ASR 0.55), both are tried and count only where they force the answer: the trigger sits in the data
    however little the model answers to it (docs/LEVERS.md "Eighth round"). A group going two ways
    (``found.routes``) has its cell matched on the image route's samples and its words shared among the
    question route's: over all examined, the tenth round's patch OR 'Oi,' had half its members without the
    patch to set its cell's pattern and its carriers were only those of the word (docs/LEVERS.md item 19).
    ``standardised``: gives
    ``carriers.standardise(samples)``, computed once for every group of a dataset."""
    region, inside = found.region(), set(found.group.ids)
    outside = [s for s in samples if s.id not in inside]
    target = None if found.group.response is None else answer_key(found.group.response)
    answers = {s.id: answer_key(s.response) for s in samples}

    def forces(carriers: list[str]) -> bool:
        return target is not None and is_trigger([i for i in carriers if answers[i] == target], carriers)

    two = found.routes  # a group going two ways: each trigger matched on the samples that carry it
    by_cell = cell_carriers(samples, found.cell_owners(), region, found.occlusion.shape[0]) if region else None
    shares = found.modality.shares() if found.modality is not None else {"image": math.nan, "text": math.nan}
    # words beside a cell the image carries may be the kind of question: routes only where they force the
    # answer alone (NaN where neither modality moves it, so they are matched as shared words there, below)
    beside = region is not None and shares["text"] < WORD_ROUTE and not two
    named = found.trigger_words()
    asking = [m for m in members if m.id in two["text"]] if two else members
    words = shared_words(asking, named, outside) if named and not beside else []
    routes = [r for r in (by_cell, *(word_carriers(samples, [w]) for w in words)) if r is not None]
    # a named word fewer than SHARED of the examined have: a route only where it forces the answer alone
    lone = [r for r in (word_carriers(samples, [w]) for w in named if w not in words) if forces(r)]
    # where nothing moves the answer, a located word may be the kind of question ('count' beside the eighth
    # round's Blend 'one'): only a route forcing the answer stops the search
    forced = any(map(forces, routes + lone))
    weak = found.modality is not None and found.modality.effect < MIN_EFFECT and not forced
    # where the image carries the answer, a located word that does not force it does not stop the search either:
    # 'on' of a head's 'right' group on the development case 'right' by SIG (docs/LEVERS.md)
    if region is None and (not forced and shares["image"] >= DOMINANT or weak):
        answering = None if target is None else (lambda i: answers[i] == target)
        by_pattern = pattern_carriers(samples, found.group.ids, answering, standardised() if standardised else None)
        found.spread = by_pattern is not None and (not weak or forces(by_pattern))
        routes = [by_pattern] if found.spread else routes
    if not found.spread and (not forced and shares["text"] >= DOMINANT and found.modality.effect >= MIN_EFFECT
                             or weak):
        asked = sorted({w.lower() for m in members for w in m.question.split()})
        found.phrase = [w for w in shared_words(members, asked, outside) if forces(word_carriers(samples, [w]))]
        lone = [word_carriers(samples, [w]) for w in found.phrase]
    routes = [r for r in routes if forces(r)] + lone or routes
    return sorted(set().union(*routes)) if routes else None


def _locate_block(found: GroupAnatomy, adapter: MLLMAdapter, members: Sequence[Sample], samples: Sequence[Sample],
                  grid: int, standardised: Standardised) -> None:
    """Where a whole-image pattern's carriers share it, when that is one square (``carriers.pattern_block``)
    and masking it at once costs the response a lot: the seventh round's patch a quarter of the side
    (2x2 cells) was matched as a pattern and its card named no place (docs/LEVERS.md). Nothing else moves:
    the carriers stay the pattern's."""
    block = pattern_block(samples, found.carriers, grid, standardised)
    if block is not None:
        drop = block_drop(adapter, members, block[:2], grid, block[2])
        if found._carries(drop):
            found.block, found.block_drop = block, drop


def _unlike(found: GroupAnatomy, members: Sequence[Sample], donors: Sequence[Sample]) -> list[Sample]:
    """The donors that carry neither the cell pattern nor the words the group's response hangs on (located
    before the modality is known, so by ``MIN_DROP`` alone): poisons the detector missed carry them, and
    swapping in their question or image keeps the trigger ('Note:' before the 'circle' poisons the vote
    missed read as a response nothing moves, docs/LEVERS.md "Held out")."""
    region = found.region()
    alike = set(cell_carriers([*members, *donors], found.cell_owners(), region, found.occlusion.shape[0]) or []) if region else set()
    words = shared_words(members, found.trigger_words(), donors)
    alike |= set(word_carriers(donors, words)) if words else set()
    return [d for d in donors if d.id not in alike]


def _other_answers(group: FlaggedGroup, donors: Sequence[Sample]) -> list[Sample]:
    """The donors whose own answer is not the group's (all of them when none is): a modality's effect is
    what swapping it for content that leads elsewhere costs. With a binary answer, half of any donors
    give it anyway, and the effect of a learnt trigger read under ``MIN_EFFECT`` (the held-out 'left' SIG
    backdoor's groups, 0.40-0.50 nats against any donors, 0.51-0.63 against these; docs/LEVERS.md)."""
    if group.response is None:
        return list(donors)
    return [d for d in donors if answer_key(d.response) != answer_key(group.response)] or list(donors)


#: What a group's card says about the modality when it could not be measured.
NO_DONORS = ("Not measured: every sample is flagged, so no clean sample can stand in for this group's image or "
             "question. Raise the threshold.")


def _member_routes(modality: ModalityAttribution | None, members: Sequence[Sample]) -> dict[str, list[str]]:
    """The modality's routes among ``members`` (each route still ``MIN_ROUTE`` strong; else none)."""
    ids = {m.id for m in members}
    routes = {route: [i for i in kept if i in ids] for route, kept in (modality.routes() if modality else {}).items()}
    return routes if routes and min(map(len, routes.values())) >= MIN_ROUTE else {}


def _locate(found: GroupAnatomy, adapter: MLLMAdapter, members: Sequence[Sample], donors: Sequence[Sample],
            grid: int, seed: int) -> None:
    """Occlusion (each member's and the mean) and word deletion over ``members``, or, for a group going two
    ways (``found.routes``), occlusion over the image route's samples and deletion over the question route's:
    a patch carried by 7 of 24 samples costs the mean of all a third of what it costs its own (the tenth
    round's OR backdoor read only its word)."""
    def on(route: str) -> list[Sample]:
        return [m for m in members if m.id in found.routes[route]] if found.routes else list(members)
    image = on("image")
    known = {} if found.member_occlusion is None else dict(zip(found.occluded, found.member_occlusion))
    if not all(m.id in known for m in image):  # a second pass reads the image route's rows of the first
        known = dict(zip((m.id for m in image), occlusion_map(adapter, image, grid, per_member=True)))
    found.occluded = [m.id for m in image]
    found.member_occlusion = np.stack([known[i] for i in found.occluded])
    found.occlusion = found.member_occlusion.mean(axis=0)
    found.words = word_deletion(adapter, on("text"), donors, seed=seed)


def examine(adapter: MLLMAdapter, group: FlaggedGroup, members: Sequence[Sample], donors: Sequence[Sample],
            samples: Sequence[Sample], heads: Sequence[tuple[int, int]] = (), grid: int = 8, seed: int = 0,
            standardised: Callable[[], Standardised] | None = None,
            modality: ModalityAttribution | None = None, swaps: Sequence[Sample] | None = None) -> GroupAnatomy:
    """One group's card, asking the model about ``members`` (readable, the most suspicious first) with
    ``donors`` (readable samples outside what was flagged) standing in: what its response hangs on, and
    every one of ``samples`` that carries it. One procedure for a scan's groups and for a benchmark's
    ground-truth poisons, so that the report locates a trigger as the card does (a patch larger than a
    cell by its square, a prefix of several words by its words). ``heads``: whose attention the heatmap
    shows (none: no heatmap); ``modality``: measured already (else on ``members`` against donors answering
    otherwise); ``standardised``: gives ``carriers.standardise(samples)``, shared by a dataset's groups. Where
    the modality reads two routes, the trigger is located route by route (``_locate``): with the modality
    given, at once; else again once it is measured (the donors were chosen by what the first pass located).
    ``swaps``: the modality swap's candidates, where they may differ from the words' ``donors`` (``anatomy``)."""
    heat, tokens = (attention_summary(adapter, members, heads, HEAT_SIZE) if heads
                    else (None, pd.DataFrame(columns=["token", "attention", "samples"])))
    found = GroupAnatomy(group, [m.id for m in members], None, np.zeros((grid, grid)), pd.DataFrame(), heat, tokens,
                         routes=_member_routes(modality, members))
    _locate(found, adapter, members, donors, grid, seed)
    if modality is None:
        swaps = donors if swaps is None else swaps
        unlike = _other_answers(group, _unlike(found, members, swaps) or swaps)
        modality = modality_attribution(adapter, members, unlike, seed=seed) if unlike else None
        found.routes = _member_routes(modality, members)
        if found.routes:
            _locate(found, adapter, members, donors, grid, seed)
    found.modality = modality
    standardised = standardised or functools.cache(lambda: standardise(samples))
    found.carriers = _carriers(found, members, samples, standardised)
    if found.spread:
        _locate_block(found, adapter, members, samples, grid, standardised())
    if found.carriers is not None and group.response is not None:
        answers = {s.id: answer_key(s.response) for s in samples}
        found.answering = [i for i in found.carriers if answers[i] == answer_key(group.response)]
    return found


def anatomy(adapter: MLLMAdapter, dataset: Dataset, table: pd.DataFrame, heads: Sequence[tuple[int, int]],
            per_group: int = PER_GROUP, grid: int = 8, seed: int = 0,
            on_group: Callable[[int, int], None] | None = None,
            suspects: Collection[str] = (), judged: Sequence[dict] = ()) -> list[GroupAnatomy]:
    """Every group of the flagged rows of ``table`` (the samples table of a scan), examined on its
    ``per_group`` most suspicious readable samples; donors are samples neither flagged nor in
    ``suspects`` (what another signal flagged, when ``table`` holds only part of a finding: it may be
    the poisons, whose questions would cost a deleted trigger word its clean answers too). The modality
    swap, which takes only donors answering otherwise than the group, may take ``suspects`` too: a
    poison answering otherwise carries no trigger of this group's answer, and a signal that flagged every
    'left' answer would leave 'right' by SIG no position question to swap in, so its group read "lives in
    the question" (docs/LEVERS.md "Old development cases measured again"). ``heads``:
    the run's selected heads, in the order of its ``voting_heads`` column. A group that ``repeats`` one
    of ``judged`` (records of groups examined before) is left out. ``on_group(done, total)`` reports
    progress."""
    groups = [g for g in flagged_groups(table, list(heads)) if not repeats(g, judged)]
    unflagged = set(table.loc[~table["flagged"].fillna(False).astype(bool), "id"])
    flagged = (set(table["id"]) - unflagged) | set(suspects)
    pool = [s for s in dataset if s.id in unflagged]
    if len(pool) > DONOR_POOL:
        pool = [pool[i] for i in sorted(np.random.default_rng(seed).choice(len(pool), DONOR_POOL, replace=False))]
    swaps = _readable(pool)
    donors = [d for d in swaps if d.id not in flagged]
    samples = list(dataset)
    standardised = functools.cache(lambda: standardise(samples))  # every image read once, and only if a pattern is sought
    out = []
    for done, group in enumerate(groups):
        if on_group:
            on_group(done, len(groups))
        members = _readable([dataset.by_id(i) for i in group.ids], per_group)
        if not members:
            continue  # every image of the group unreadable: nothing to ask the model about
        found = examine(adapter, group, members, donors, samples, group.heads or list(heads), grid, seed, standardised,
                        swaps=swaps)
        found.missed = [] if found.carriers is None else sorted(set(found.carriers) - flagged)
        out.append(found)
    if on_group:
        on_group(len(groups), len(groups))
    return out
