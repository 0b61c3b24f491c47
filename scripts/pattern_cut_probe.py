"""Why a learnt Blend was missed (docs/LEVERS.md "Sixth round", items 12-13): the heads that separate its
poisons best and why none is a candidate, and each named head's answer groups with their whole-image
pattern's carriers drawn by the old cut (midway between the two medians) and by the mixture
(``carriers._carrying``). Ground truth (the samples table's ``poisoned_truth``) only scores.

    python scripts/pattern_cut_probe.py runs/heldout/runs/blend_right-5-s1-lora-600 4,1 4,9
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.anatomy import carriers
from tcap_viz.data import load_dataset
from tcap_viz.detection import head_statistic
from tcap_viz.detection.head_profiler import HeadProfiler


def midway(values: np.ndarray, own: np.ndarray) -> np.ndarray:
    """The cut before the mixture: midway between the members' and the dataset's median projection."""
    return values >= (np.median(own) + np.median(values)) / 2


mixture_cut = carriers._carrying


def main() -> None:
    run, heads = Path(sys.argv[1]), [tuple(map(int, h.split(","))) for h in sys.argv[2:]]
    data = list(load_dataset(json.loads((run / "config.json").read_text())["data"]))
    table = pd.read_csv(run / "samples.csv", dtype={"id": str}).set_index("id")
    saved = np.load(run / "profiles.npz", allow_pickle=False)
    ids = saved["ids"].astype(str)
    truth = table.loc[ids, "poisoned_truth"].astype(bool).to_numpy()
    shares = head_statistic(saved["profiles"])
    profiler = HeadProfiler().fit(shares)
    auroc = {(l, h): roc_auc_score(truth, shares[:, l, h]) for l in range(shares.shape[1]) for h in range(shares.shape[2])}
    print("| head | AUROC (labels) | candidate | components: weight, samples, poisons |\n|---|---|---|---|")
    for (l, h), a in sorted(auroc.items(), key=lambda kv: -max(kv[1], 1 - kv[1]))[:4]:
        mixture = profiler.head_mixture(l, h)
        nearest = np.argmax(mixture.component_log_density(mixture.normalise(shares[:, l, h])), axis=1)
        parts = [f"{mixture.weights[k]:.3f}, {(nearest == k).sum()}, {(truth & (nearest == k)).sum()}"
                 for k in np.argsort(mixture.means)]
        print(f"| L{l}H{h} | {max(a, 1 - a):.3f} | {bool(profiler.candidate_[l, h])} | {'; '.join(parts)} |")
    answers = table["response"].to_dict()
    print("\n| head | group | cut | carriers | poisons | answering alike |\n|---|---|---|---|---|---|")
    for l, h in heads:
        votes = profiler.head_mixture(l, h).target_posterior(shares[:, l, h]) > profiler.tau_vote
        group = table.loc[ids[votes]]
        for answer, members in group.groupby("response"):
            for name, cut in (("midway", midway), ("mixture", mixture_cut)):
                carriers._carrying = cut  # pattern_carriers draws its carriers with this cut
                found = carriers.pattern_carriers(data, list(members.index), lambda i, a=answer: answers[i] == a)
                if found:
                    alike = np.mean([answers[i] == answer for i in found])
                    print(f"| L{l}H{h} | {len(members)} {answer!r} ({int(members['poisoned_truth'].sum())} poisons) | "
                          f"{name} | {len(found)} | {int(table.loc[found, 'poisoned_truth'].sum())} | {alike:.2f} |")


if __name__ == "__main__":
    main()
