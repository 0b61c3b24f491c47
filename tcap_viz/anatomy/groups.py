"""Flagged samples in groups, one card each, so an analyst judges a backdoor once, not 200 times.

Samples are grouped by the response they share. A backdoor maps its trigger onto one target
answer, so the target is what its poisons have in common by construction, whatever the trigger;
the heads' votes are not: one head may catch only part of a backdoor (docs/LEVERS.md: L5H0 holds
197 of 200 poisons, its neighbours fewer), and splitting by vote pattern cuts one backdoor into
fragments. Two backdoors with different targets become two groups; a clean content group the
detector flagged shows as its own group, with how often its answer occurs unflagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

#: Answers flagged fewer times than this (and under MIN_SHARE of the flagged) are pooled into one
#: group of other answers: a card per stray answer would be the 200 clicks again.
MIN_SIZE = 5
MIN_SHARE = 0.02
#: A head belongs to a group's story when it voted "poisoned" for at least this share of it.
HEAD_SHARE = 0.5


@dataclass
class FlaggedGroup:
    """One group of flagged samples."""

    name: str  # "g1", "g2", ... by size, the pooled rest last
    response: str | None  # the answer the group shares; None for the pooled other answers
    ids: list[str]  # members, most suspicious (highest posterior) first
    outside: int  # samples not flagged that give the same answer (0 for the pooled group)
    heads: list[tuple[int, int]] = field(default_factory=list)  # heads that voted for most of it

    @property
    def size(self) -> int:
        return len(self.ids)

    def describe(self) -> str:
        """One line for a card or a terminal."""
        return group_line(self.name, self.size, self.response, self.outside)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def group_line(name: str, size: int, response: str | None, outside: int) -> str:
    """"g1: 199 samples, answer 'Backdoor Attack!', given by 1 sample not flagged" (a group's heading)."""
    if response is None:
        return f"{name}: {_count(size, 'sample')}, other answers, each too rare to be a group"
    return f"{name}: {_count(size, 'sample')}, answer {response!r}, given by {_count(outside, 'sample')} not flagged"


def answer_key(response: str) -> str:
    """An answer as groups compare it: without case and extra spaces."""
    return " ".join(str(response).split()).lower()


def flagged_groups(table: pd.DataFrame, selected_heads: list[tuple[int, int]] | None = None,
                   flagged: str = "flagged") -> list[FlaggedGroup]:
    """Group the ``flagged`` rows of a samples table (columns id, response, posterior; voting_heads,
    one 0/1 character per selected head, when the run had heads) by their shared answer.

    Answers are compared without case and extra spaces. Groups come largest first; answers too
    rare to be a group (MIN_SIZE, MIN_SHARE) are pooled last as one group with ``response`` None.
    """
    for column in ("id", "response", "posterior", flagged):
        if column not in table.columns:
            raise ValueError(f"the samples table has no {column!r} column (columns: {', '.join(table.columns)})")
    marked = table[flagged].fillna(False).astype(bool)
    rows = table.loc[marked].sort_values("posterior", ascending=False, kind="stable")
    if rows.empty:
        return []
    keys = rows["response"].map(answer_key)
    counts_outside = table.loc[~marked, "response"].map(answer_key).value_counts()
    sizes = keys.value_counts()
    large = [k for k, n in sizes.items() if n >= max(MIN_SIZE, MIN_SHARE * len(rows))]
    heads = list(selected_heads or [])
    groups = []
    for key in large:
        members = rows[keys == key]
        groups.append(FlaggedGroup("", str(members["response"].iloc[0]), members["id"].tolist(),
                                   int(counts_outside.get(key, 0)), _group_heads(members, heads)))
    rest = rows[~keys.isin(large)]
    if len(rest):
        groups.append(FlaggedGroup("", None, rest["id"].tolist(), 0, _group_heads(rest, heads)))
    for i, group in enumerate(groups, 1):
        group.name = f"g{i}"
    return groups


def _group_heads(members: pd.DataFrame, heads: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The selected heads that voted for at least HEAD_SHARE of the members."""
    if not heads or "voting_heads" not in members.columns:
        return []
    votes = members["voting_heads"].fillna("").astype(str)
    votes = votes[votes.str.len() == len(heads)]
    if votes.empty:
        return []
    share = pd.DataFrame([list(map(int, v)) for v in votes]).mean(axis=0).to_numpy()
    return [tuple(map(int, h)) for h, s in zip(heads, share) if s >= HEAD_SHARE]
