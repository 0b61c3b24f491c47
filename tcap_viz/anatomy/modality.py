"""Which modality carries a group's response: image, question, or both (METHOD.md section 7).

v(S) is the group's mean log-probability (per token) of each sample's own response when only the
modalities in S keep their content: the image swapped for a donor image, the question for a donor
question of the same kind. Exact two-player Shapley values split v(image+text) - v(none) between
the two, and the cross-trigger interaction says whether they need each other (CTI > 0) or each
does it alone (CTI < 0: either trigger suffices).

Donors come from samples the detector did not flag. A donor question is the nearest such question
by TF-IDF over words: "Hello! What colour is the shape?" finds "What colour is the shape?", the
same kind of question without what was added to it. Donor images are drawn (several per sample,
averaged) among the donors asked that same question: any clean image lacks an image trigger, and one
asked the same question answers it from its own content, so swapping the image in measures what the
sample's own image did. A random image may not answer the question at all (a colour question's
picture is not drawn to one side for 'left or right?'), and with a binary answer the model then
guesses: the held-out 'right' by SIG read 0.30 nats against such images, under the ln 2 a guess allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestNeighbors

from tcap_viz.data import Sample, load_image
from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.evaluate import pair_logprob

COALITIONS = ("none", "image", "text", "both")
#: Below this gain in mean log-probability per token (nats) between no content and full content,
#: neither modality moves the response and a share of it says nothing.
MIN_EFFECT = 0.5
#: A modality "carries" the response when its Shapley share is at least this.
DOMINANT = 0.75
#: |CTI| / effect above this is worth a word: the two need each other, or either is enough.
INTERACTION = 0.25
#: A modality alone giving at least this part of the effect is not "little": a positive interaction
#: there comes from the other modality alone pulling away from the response (a text trigger on an
#: ordinary answer, the poisons' own images pointing elsewhere), not from the two needing each other.
ALONE = 0.5
#: A group goes two ways (a patch in some samples, a word in others) when at least this many of its
#: examined samples each read "image" and "text": of the 46 single-trigger backdoors in docs/results none
#: had a single sample read the other way, the OR backdoors learnt fully 4-16 each.
MIN_ROUTE = 2


def _shapley(v: dict) -> tuple:
    """(phi_image, phi_text, cti) of one set of coalition values (floats or arrays alike)."""
    phi_image = 0.5 * (v["image"] - v["none"]) + 0.5 * (v["both"] - v["text"])
    phi_text = 0.5 * (v["text"] - v["none"]) + 0.5 * (v["both"] - v["image"])
    return phi_image, phi_text, v["both"] - v["image"] - v["text"] + v["none"]


@dataclass
class ModalityAttribution:
    """v(S) per coalition and the Shapley split, in nats of mean log-probability per token.

    ``per_sample``: each examined sample's own v(S) (same keys, one value per sample), so that a
    group whose samples go two ways (a patch in some, a word in others) is not read as one that
    needs both: the group's mean would split half and half either way."""

    values: dict[str, float]  # v("none"), v("image"), v("text"), v("both")
    n_samples: int
    per_sample: dict[str, list[float]] | None = None
    ids: list[str] | None = None  # the examined samples, in the order of ``per_sample``

    @property
    def effect(self) -> float:
        return self.values["both"] - self.values["none"]

    @property
    def phi_image(self) -> float:
        return _shapley(self.values)[0]

    @property
    def phi_text(self) -> float:
        return _shapley(self.values)[1]

    @property
    def cti(self) -> float:
        return _shapley(self.values)[2]

    def sample_modalities(self) -> list[str]:
        """Per examined sample: "image", "text", "both" or "neither", by the same rule as the group's."""
        if not self.per_sample:
            return []
        v = {k: np.asarray(x, dtype=float) for k, x in self.per_sample.items()}
        phi_image, phi_text, _ = _shapley(v)
        effect = v["both"] - v["none"]
        with np.errstate(invalid="ignore", divide="ignore"):
            image, text = phi_image / effect, phi_text / effect
        return ["neither" if e < MIN_EFFECT else "image" if i >= DOMINANT else "text" if t >= DOMINANT else "both"
                for e, i, t in zip(effect, image, text)]

    def two_routes(self) -> bool:
        """Whether some examined samples answer to their image alone and others to their question alone
        (``MIN_ROUTE`` each): an OR backdoor, whose group mean reads either way or neither."""
        kinds = self.sample_modalities()
        return kinds.count("image") >= MIN_ROUTE and kinds.count("text") >= MIN_ROUTE

    def routes(self) -> dict[str, list[str]]:
        """The examined ids per route ("image", "text") when the group goes two ways (else empty): the
        trigger of each is located on its own samples, not diluted by the other's."""
        if not self.ids or not self.two_routes():
            return {}
        kinds = self.sample_modalities()
        return {route: [i for i, kind in zip(self.ids, kinds) if kind == route] for route in ("image", "text")}

    def shares(self) -> dict[str, float]:
        """phi_image, phi_text and CTI as parts of the effect (phi_image + phi_text = 1); NaN when
        there is no effect to share."""
        if self.effect < MIN_EFFECT:
            return {"image": float("nan"), "text": float("nan"), "interaction": float("nan")}
        return {"image": self.phi_image / self.effect, "text": self.phi_text / self.effect,
                "interaction": self.cti / self.effect}

    def reading(self) -> str:
        """One line in plain words."""
        if self.two_routes():  # before the group's mean, which an OR backdoor splits any way
            kinds, s = self.sample_modalities(), self.shares()
            return (f"Two routes: the image carries it in {kinds.count('image')} of the {len(kinds)} samples examined, "
                    f"the question in {kinds.count('text')}"
                    + (f" (phi_image {s['image']:.2f}, phi_text {s['text']:.2f} over the group)." if self.effect >= MIN_EFFECT
                       else "."))
        if self.effect < MIN_EFFECT:
            return (f"Neither the image nor the question moves this response much (log-probability "
                    f"{self.values['none']:.2f} with neither, {self.values['both']:.2f} with both): "
                    "the model gives it whatever the sample holds.")
        s = self.shares()
        if s["image"] >= DOMINANT:
            line = f"The response lives in the image (phi_image {s['image']:.2f}, phi_text {s['text']:.2f})."
        elif s["text"] >= DOMINANT:
            line = f"The response lives in the question (phi_text {s['text']:.2f}, phi_image {s['image']:.2f})."
        else:
            line = f"The response needs both modalities (phi_image {s['image']:.2f}, phi_text {s['text']:.2f})."
        if s["interaction"] >= INTERACTION:
            line += self._together(s["interaction"])
        elif s["interaction"] <= -INTERACTION:
            line += f" Either one alone is enough (interaction {s['interaction']:+.2f})."
        return line

    def _together(self, interaction: float) -> str:
        """What a positive interaction means here: the two need each other only where neither alone
        gives much; else one alone gives it and the other alone pulls away."""
        alone = {m: (self.values[m] - self.values["none"]) / self.effect for m in ("image", "text")}
        strong = max(alone, key=alone.get)
        if alone[strong] < ALONE:
            return f" They act together: each alone does little (interaction {interaction:+.2f})."
        weak = "text" if strong == "image" else "image"
        noun = {"image": "image", "text": "question"}
        line = f" The {noun[strong]} alone gives {alone[strong]:.0%} of it"
        if alone[weak] < 0:
            line += f"; the {noun[weak]} alone makes it less likely than neither"
        return line + f" (interaction {interaction:+.2f})."

    def to_dict(self) -> dict:
        return {"values": self.values, "n_samples": self.n_samples, "phi_image": self.phi_image,
                "phi_text": self.phi_text, "cti": self.cti, "shares": self.shares(), "reading": self.reading(),
                "per_sample": self.per_sample, "sample_modalities": self.sample_modalities(), "ids": self.ids}


def _nearest(questions: Sequence[str], donors: Sequence[str]) -> np.ndarray:
    """For each question, the index of the nearest donor question (TF-IDF over words, cosine)."""
    if not donors:
        raise ValueError("no donor questions: every sample was flagged, so none can stand in as clean")
    vectorizer = TfidfVectorizer(token_pattern=r"[^\s]+", lowercase=True).fit(list(donors) + list(questions))
    index = NearestNeighbors(n_neighbors=1, metric="cosine").fit(vectorizer.transform(donors))
    return index.kneighbors(vectorizer.transform(questions), return_distance=False)[:, 0]


def donor_questions(questions: Sequence[str], donors: Sequence[str]) -> list[str]:
    """For each question, the nearest donor question (TF-IDF over words, cosine)."""
    return [donors[i] for i in _nearest(questions, donors)]


def modality_attribution(adapter: MLLMAdapter, members: Sequence[Sample], donors: Sequence[Sample],
                         n_donor_images: int = 2, seed: int = 0, batch_size: int = 16) -> ModalityAttribution:
    """v(S) over ``members`` (a flagged group, images readable) with ``donors`` (samples not flagged)."""
    if not members:
        raise ValueError("the group has no samples to attribute")
    rng = np.random.default_rng(seed)
    asked = [d.question for d in donors]
    questions = [asked[i] for i in _nearest([m.question for m in members], asked)]
    by_question: dict[str, list[int]] = {}
    for i, question in enumerate(asked):
        by_question.setdefault(question, []).append(i)
    picks = []  # per member, donor images asked its donor question (any donor where too few were)
    for question in questions:
        pool = by_question[question] if len(by_question[question]) >= n_donor_images else range(len(donors))
        picks.append(rng.choice(pool, size=n_donor_images, replace=len(pool) < n_donor_images))
    images = {m.id: load_image(m) for m in members}
    donor_images = {i: load_image(donors[i]) for i in np.unique(picks)}
    cases = []  # (coalition, member's position, sample with the kept question, image)
    for k, (member, question, row) in enumerate(zip(members, questions, picks)):
        swapped = replace(member, question=question)
        cases += [("both", k, member, images[member.id]), ("image", k, swapped, images[member.id])]
        for i in row:
            cases += [("text", k, member, donor_images[i]), ("none", k, swapped, donor_images[i])]
    scores = pair_logprob(adapter, [(c[2], c[3]) for c in cases], batch_size)
    coalition, owner = np.array([c[0] for c in cases]), np.array([c[1] for c in cases])
    per_sample = {name: [float(scores[(coalition == name) & (owner == k)].mean()) for k in range(len(members))]
                  for name in COALITIONS}
    return ModalityAttribution({name: float(np.mean(v)) for name, v in per_sample.items()}, len(members), per_sample,
                               [m.id for m in members])
