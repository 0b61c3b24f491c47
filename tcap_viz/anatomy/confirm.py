"""Confirming what the heads found on their own: a backdoor's trigger forces its answer wherever it
appears (issue 12).

Where the base model's plausibility vote has nothing to say (a target the base finds plausible, or a
scan without a base), the heads alone decide, and they single out a clean content group as readily
as a backdoor: the position questions of a clean dataset, the colour questions beside the 'left'
backdoor (docs/LEVERS.md). The anatomy locates what each flagged group's answer hangs on (an image
cell, question words) and lists every sample that carries it. In a dirty-label backdoor's training
data every carrier of the trigger gives the target; what a content group seems to hang on is carried
by samples answering many things (on the report's runs: 1.00 for every located 'left' backdoor, 0.50
and 0.17 for the two groups of the clean dataset of seed 3). So a finding of the heads alone stands
as the carriers of a trigger that nearly all of its carriers answer alike, and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .groups import MIN_SIZE, FlaggedGroup, answer_key

#: The share of a located pattern's carriers that must give the group's response for it to count
#: as a trigger. A learnt dirty-label backdoor has all of them; one in ten answering otherwise is
#: room for a few carriers matched by chance (a patch-coloured corner), not for a content cell.
CONSISTENT = 0.9
#: When none of TCAP's groups hangs on a trigger, the selected heads singled out content; the
#: backdoor may still sit in a head not selected (on the "left" backdoor of seed 3, the first and
#: the seventh candidate heads by separation hold 49 and 57 poisons and nothing else, docs/LEVERS.md).
#: This many of the next candidate heads are examined, one at a time, until one's group is confirmed:
#: each costs an anatomy per group, 10-40 s on 2 cores. 8 were too few where content has many heads: on
#: the held-out 'right' by Blend, the next heads' first 11 single out colour, shape, count and side
#: answers, and the twelfth and thirteenth hold 91 and 51 of its poisons (docs/LEVERS.md "Sixth round").
NEXT_HEADS = 16
#: A head's group repeats one already judged when it gives the same answer and the two share at least
#: this share of their members together (Jaccard): its verdict would repeat too. Heads singling out the
#: same content are common (on the held-out word 'pls', 5 of the 8 next heads re-judged the colour and
#: shape groups of the 3 before them, and the 'left' group holding the poisons came after them), so only
#: a head with a group not yet judged counts as one of the ``NEXT_HEADS``.
REPEATED = 0.5
#: Where the plausibility vote is used, the groups judged are where it and the heads disagree
#: (``source`` of a judged group): what only the heads flag, whose answers the base model finds
#: plausible, and what only the vote flags.
HEADS_ONLY = "heads only"
VOTE_ONLY = "vote only"
#: The ``source`` of a flagged group with an ordinary answer, followed to its trigger's carriers
#: (``pipeline.follow``): the plausibility vote sees such a backdoor only where the picture disagrees.
FOLLOWED = "followed"
#: The ``source`` of the flagged samples left out at the end of the following (``odd_answers``): each gives
#: an answer fewer than a group's worth of flagged samples give, and carries no confirmed trigger.
ODD = "odd answers"


def followed_apart(groups: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """(the groups judged by the confirmation or the reconciling, the ordinary answers followed and the odd
    answers left out after them): two stories, told apart wherever a run's groups are."""
    last = (FOLLOWED, ODD)
    return [g for g in groups if g.get("source") not in last], [g for g in groups if g.get("source") in last]


def odd_answers(responses: Sequence[str], flagged: np.ndarray, confirmed: np.ndarray) -> np.ndarray:
    """Which ``flagged`` samples give an answer that fewer than ``MIN_SIZE`` flagged samples give, and carry no
    confirmed trigger (``confirmed``: ``confirmed_posterior``, 0 where none). A backdoor maps every poison to
    its one target, so its poisons share one answer, a group of them; the plausibility vote also flags the odd
    clean sample whose answer the base model does not believe for that picture (7 clean 'square' and 'three'
    answers beside the ninth round's 'purple' backdoor, and the same 7 beside the second's: docs/LEVERS.md),
    and nothing else flagged shares it. Answers are compared as groups compare them (``answer_key``)."""
    answers = pd.Series(list(responses), dtype=object).map(answer_key)
    counts = answers[flagged].value_counts()
    return flagged & answers.isin(counts[counts < MIN_SIZE].index).to_numpy() & (np.asarray(confirmed) == 0)


def repeats(group: FlaggedGroup, judged: Sequence[dict]) -> bool:
    """Whether ``group`` repeats one of the ``judged`` records (``GroupAnatomy.to_dict``, ``unexamined``):
    the same answer (or both pooled) and at least ``REPEATED`` of their members in common."""
    key = None if group.response is None else answer_key(group.response)
    ids = set(group.ids)
    return any((None if g.get("response") is None else answer_key(g["response"])) == key
               and len(ids & set(g["ids"])) >= REPEATED * len(ids | set(g["ids"])) for g in judged)


def is_trigger(answering: Sequence[str], carriers: Sequence[str] | None) -> bool:
    """Whether a located pattern forces its answer: at least ``CONSISTENT`` of its carriers, and
    at least a group's worth (``groups.MIN_SIZE``) of them, give the group's response."""
    return bool(carriers) and len(answering) >= MIN_SIZE and len(answering) >= CONSISTENT * len(carriers)


def confirmed_posterior(ids: Sequence[str], groups: Sequence[dict]) -> np.ndarray:
    """Per sample of ``ids``: the consistency of a confirmed trigger it carries and answers (the
    highest when several), else 0. ``groups``: ``GroupAnatomy.to_dict`` records."""
    score = dict.fromkeys(ids, 0.0)
    for group in groups:
        if group.get("confirmed"):
            for i in group["answering"]:
                if i in score:
                    score[i] = max(score[i], float(group["consistency"]))
    return np.array([score[i] for i in ids])


def judges_disagreements(groups: Sequence[dict]) -> bool:
    """Whether judged groups are where the heads and the vote disagreed (else a finding of the heads alone)."""
    return any(g.get("source") in (HEADS_ONLY, VOTE_ONLY) for g in groups)


def unexamined(source: str, name: str, ids: Sequence[str], response: str | None = None, **extra) -> dict:
    """A judged group the model was not asked about, with the keys of ``GroupAnatomy.to_dict`` that
    the summaries and the report read."""
    return {"source": source, "name": name, "response": response, "size": len(ids), "ids": list(ids),
            "examined": None, "region": None, "trigger_words": [], "carriers": None, "answering": [],
            "consistency": None, "confirmed": False} | extra


def vote_joins(responses: Sequence[str], agreed: np.ndarray, vote_only: np.ndarray,
               ids: Sequence[str]) -> tuple[np.ndarray, list[dict]]:
    """Which samples only the plausibility vote flags join the finding: those giving an answer that at
    least ``MIN_SIZE`` of the samples both signals flag give. The vote finds the answer implausible and it
    is the backdoor's, so the sample is a poison the heads do not see (a second route: on dual_or-10,
    seed 3, the heads chosen by agreement with the vote caught the patch's 102 poisons and EM dropped
    the prefix's 98); an odd answer the heads do not corroborate stays out. Answers are compared as
    groups compare them (``answer_key``). Returns the mask and the judged groups (``unexamined``
    records, ``joined`` and ``agreed``: how many samples both flag with that answer), the odd answers
    pooled."""
    responses = pd.Series(list(responses), dtype=object)
    answers = responses.map(answer_key)
    agreed_counts = answers[agreed].value_counts()
    joined = vote_only & answers.isin(agreed_counts[agreed_counts >= MIN_SIZE].index).to_numpy()
    ids = np.asarray(ids, dtype=object)
    records = []
    for a in answers[joined].value_counts().index:
        members = joined & (answers == a).to_numpy()
        response = responses[members].mode()[0]
        records.append(unexamined(VOTE_ONLY, f"vote only: {response!r}", list(ids[members]), response, joined=True,
                                  agreed=int(agreed_counts[a]), answering=list(ids[members])))
    rest = vote_only & ~joined
    if rest.any():
        records.append(unexamined(VOTE_ONLY, "vote only: other answers", list(ids[rest]), joined=False, agreed=0))
    return joined, records


def _verdict(g: dict) -> str:
    name = f"{g['name']} ({g['size']} samples, " + (f"answer {g['response']!r})" if g.get("response") is not None
                                                    else "other answers)")
    if g.get("confirmed"):
        return (f"- {name}: confirmed: {len(g['carriers'])} samples carry what it hangs on and {len(g['answering'])} "
                f"of them ({g['consistency']:.0%}) give its answer; those are flagged, whether the heads caught them "
                "or not.")
    if g.get("carriers"):
        return (f"- {name}: not confirmed: what it hangs on is carried by {len(g['carriers'])} samples, only "
                f"{g['consistency']:.0%} of them giving its answer (content, not a trigger).")
    return f"- {name}: not confirmed: no image cell, whole-image pattern or question word it hangs on was located."


def _disagreement_summary(groups: Sequence[dict]) -> str:
    heads = [g for g in groups if g.get("source") == HEADS_ONLY]
    vote = [g for g in groups if g.get("source") == VOTE_ONLY]
    lines = ["**Where the heads and the plausibility vote disagree.** Samples both flag stand as EM scored them; "
             "the others were judged here."]
    if heads:
        lines.append(f"{sum(g['size'] for g in heads)} samples only the heads flag: the base model finds their answers "
                     "plausible, so each group was checked as a finding of the heads alone is: does its answer hang on "
                     "something whose carriers across the dataset nearly all give that answer, as a trigger's do?")
        lines += [_verdict(g) if g.get("examined") is not None else
                  f"- {g['name']} ({g['size']} samples): too few alike to be a group, not examined; not flagged."
                  for g in heads]
    for g in vote:
        lines.append(f"- {g['name']} ({g['size']} samples): " + (
            f"only the vote flags them, and they give {g['response']!r}, the answer of {g['agreed']} samples both "
            "flag: a route of the backdoor the heads do not see. Flagged." if g["joined"] else
            "only the vote flags them, and no sample both signals flag gives their answers: odd answers the heads "
            "do not corroborate. Not flagged."))
    return "\n".join(lines)


def _odd_line(g: dict) -> str:
    return (f"**Odd answers left out.** {g['size']} flagged samples give answers that fewer than {MIN_SIZE} flagged "
            "samples give, and carry no confirmed trigger. A backdoor's poisons all give its one target, so these are "
            "answers the base model doubts for their own picture (a hard or mislabelled sample, worth a look), not a "
            "backdoor's. Not flagged.")


def _followed_summary(groups: Sequence[dict]) -> str:
    followed = [g for g in groups if g.get("source") == FOLLOWED]
    parts = ["\n".join([f"**Ordinary answers followed.** {sum(g['size'] for g in followed)} flagged samples give an "
                        "answer that samples not flagged give too, which the base model finds plausible wherever the "
                        "picture agrees, so its vote may see only part of such a backdoor. Each group was followed to "
                        "what its answer hangs on, and the carriers of a confirmed trigger that give its answer are "
                        "flagged too:", *map(_verdict, followed)])] if followed else []
    return "\n\n".join(parts + [_odd_line(g) for g in groups if g.get("source") == ODD])


def confirmation_summary(groups: Sequence[dict]) -> str:
    """What the confirmation decided, group by group, in plain words (markdown; the app's overview
    and the CLI)."""
    rest, followed = followed_apart(groups)
    if followed:
        return "\n\n".join([*([confirmation_summary(rest)] if rest else []), _followed_summary(followed)])
    if judges_disagreements(groups):
        return _disagreement_summary(groups)
    own = [g for g in groups if g.get("source", "TCAP") == "TCAP"]
    further = [g for g in groups if g.get("source", "TCAP") != "TCAP"]
    question = ("does the answer hang on something (an image cell, question words) whose carriers across the "
                "dataset nearly all give that answer, as a trigger's do?")
    heads = list(dict.fromkeys(g["source"] for g in further))
    if not own:  # the heads agreed only by nesting: TCAP flagged nothing, each head's group was judged alone
        intro = ("**Confirmation.** No plausibility vote was used, and the heads flagged nothing together: fewer "
                 "than two of them corroborate a group. So each head's group was checked on its own, the selected "
                 "heads first, then the next by separation score, one head at a time until one's group holds up (a "
                 "group judged before is not judged again): "
                 f"{question} ({', '.join(heads) or 'no head singles out a group'})")
        lines = [intro, *map(_verdict, further)]
    else:
        lines = [f"**Confirmation.** No plausibility vote was used, so the {sum(g['size'] for g in own)} samples the "
                 f"heads singled out on their own were checked group by group: {question}", *map(_verdict, own)]
    if own and further:
        lines.append(f"None of them does, so the groups of the next heads by separation score were examined, one "
                     f"head at a time until one's group does, each group judged before left out ({', '.join(heads)}):")
        lines += map(_verdict, further)
    if not any(g.get("confirmed") for g in groups):
        lines.append("**Nothing is flagged: no group's answer hangs on a trigger.** The heads' own posterior is "
                     "the `tcap_posterior` column.")
    return "\n".join(lines)


def sample_verdict(groups: Sequence[dict], sample_id: str) -> str:
    """Why the confirmation flags one sample or not, in plain words (markdown; the app's "why"); empty
    where the heads and the plausibility vote agree on it."""
    for g in groups:
        if g.get("confirmed") and sample_id in g["answering"]:
            return (f"**Confirmed:** it carries what group {g['name']}'s answer hangs on and gives that answer, as "
                    f"{g['consistency']:.0%} of the samples carrying it do: a trigger. That is what flags it here.")
    for g in groups:
        if g.get("source") == ODD and sample_id in g["ids"]:
            return ("**Odd answer:** the base model doubts its answer, but fewer than "
                    f"{MIN_SIZE} flagged samples give it and it carries no confirmed trigger, while a backdoor's poisons "
                    "all give its one target. Not flagged: worth a look as a hard or mislabelled sample.")
    groups, _ = followed_apart(groups)  # a followed group flags only the confirmed carriers above
    if not groups:
        return ""  # EM's story stands
    if judges_disagreements(groups):
        for g in groups:
            if sample_id not in g["ids"]:
                continue
            if g["source"] == VOTE_ONLY:
                return (f"**Joined:** only the base model's vote flags it, and it gives {g['response']!r}, the answer of "
                        f"the {g['agreed']} samples the heads and the vote both flag: a route of the backdoor the heads "
                        "do not see." if g["joined"] else
                        "**Not joined:** only the base model's vote flags it, and no sample both signals flag gives its "
                        "answer; the heads do not corroborate it.")
            return ("**Not confirmed:** only the heads flag it, the base model finds its answer plausible, and its "
                    "group's answer hangs on no trigger (the Overview says why).")
        return ""
    return ("**Not confirmed:** it carries no trigger that a group's answer was confirmed to hang on, so the heads' "
            "votes alone do not flag it (the Overview says why each group was or was not confirmed).")
