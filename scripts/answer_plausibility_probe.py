"""A lever measured and not kept: the plausibility vote again, within a flagged answer.

The vote's cut is a robust z over the whole dataset, so a poison whose target the base finds only a
little unlikely (a count of two answered 'one' by WaNet) stays under it. Within the samples giving the
flagged answer the clean ones are answered confidently, so the same vote fitted on the unflagged samples
of that answer might find the rest. This prints, for each cached scan, what it would add to the scan's
flags (the most flagged answer, with 5 or more flagged samples and 10 or more unflagged) at two cuts, and
at the first cut only where the answer row's hidden state also looks like the flagged samples' (a logistic
regression of flagged against unflagged within the answer, cross-validated, probability over 0.5);
ground truth only counts the poisons among the additions.

    python scripts/answer_plausibility_probe.py runs/heldout/runs/*
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.preprocessing import StandardScaler

from tcap_viz.detection.plausibility import PlausibilityVote

CUTS = (4.0, 6.0)


def additions(run: Path) -> str:
    cached = np.load(run / "profiles.npz")
    samples = pd.read_csv(run / "samples.csv", dtype={"id": str}).set_index("id").loc[cached["ids"]]
    response = samples["response"].astype(str).to_numpy()
    flagged = samples["flagged"].fillna(False).astype(bool).to_numpy()
    truth = samples["poisoned_truth"].astype(bool).to_numpy()
    cells = []
    for answer in pd.Series(response[flagged]).value_counts().index[:1]:
        same = response == answer
        rest = same & ~flagged
        if (flagged & same).sum() < 5 or rest.sum() < 10:
            continue
        for cut in CUTS:
            added = np.zeros_like(rest)
            added[rest] = PlausibilityVote(cut).fit(cached["base_logprob"][rest]).flagged_
            cells.append(f"{answer!r} z<-{cut:g}: +{added.sum()} ({truth[added].sum()} poisons)")
            if cut == CUTS[0]:
                alike = np.zeros_like(rest)
                alike[same] = cross_val_predict(LogisticRegression(C=0.1, max_iter=3000),
                                                StandardScaler().fit_transform(cached["hidden"][same]), flagged[same],
                                                cv=5, method="predict_proba")[:, 1] > 0.5
                both = added & alike
                cells.append(f"and alike: +{both.sum()} ({truth[both].sum()} poisons)")
    return (f"| {run.name} | {flagged.sum()} ({truth[flagged].sum()} of {truth.sum()} poisons) | "
            f"{'; '.join(cells) or '-'} |")


if __name__ == "__main__":
    print("| run | flagged by the scan | added by the vote within the flagged answer |\n|---|---|---|")
    for folder in map(Path, sys.argv[1:]):
        if (folder / "profiles.npz").exists() and (folder / "samples.csv").exists():
            print(additions(folder))
