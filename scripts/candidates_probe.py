"""Looking past the selected heads when their finding is not confirmed (docs/LEVERS.md): each of the
next candidate heads' groups, by separation score, confirmed by the trigger it hangs on.

    python scripts/candidates_probe.py badnet_left-10-s3 clean-s3     # runs under runs/report/runs/

For each run and each of the first ``--heads`` candidate heads that were not selected: the head's
target group (its mixture's target posterior over ``tau_vote``), split by answer as the anatomy
splits a flagged set, each group's located trigger, its carriers and the share of them answering
alike, and whether it is confirmed (``tcap_viz.anatomy.confirm``). Ground truth only scores.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.anatomy import anatomy  # noqa: E402
from tcap_viz.detection import detection_metrics, head_statistic  # noqa: E402
from tcap_viz.review.session import ReviewSession  # noqa: E402

RUNS = ROOT / "runs" / "report" / "runs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--per-group", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| run | head (SS) | group | located, carriers, answering alike | confirmed: flagged, F1 | seconds |\n"
          "|---|---|---|---|---|---|")
    for name in args.runs:
        session = ReviewSession.from_run(RUNS / f"{name}-lora-600", device="cpu")
        result, table = session.result, session.result.samples
        tcap = result.tcap
        scanned = table[table["skipped"] == ""].reset_index(drop=True)
        truth = scanned["poisoned_truth"].astype(bool).to_numpy()
        stat = head_statistic(result.extraction.profiles.astype(float), tcap.statistic, tcap.transform)
        heads = result.heads
        selected = set(map(tuple, tcap.profiler_.selected_heads_))
        order = heads[heads["candidate"]].sort_values("separation", ascending=False)
        others = [row for row in order.itertuples() if (row.layer, row.head) not in selected][:args.heads]
        for row in others:
            posterior = tcap.profiler_.head_mixture(row.layer, row.head).target_posterior(stat[:, row.layer, row.head])
            votes = posterior > tcap.tau_vote
            pseudo = scanned.assign(flagged=votes, posterior=posterior, voting_heads=np.where(votes, "1", "0"))
            started = time.time()
            for card in anatomy(session.adapter, result.dataset, pseudo, [(row.layer, row.head)],
                                per_group=args.per_group):
                g = card.to_dict()
                flagged = scanned["id"].isin(card.answering).to_numpy() if card.confirmed() else np.zeros(len(truth), bool)
                score = detection_metrics(truth, flagged)
                where = ", ".join(([f"cell {tuple(g['region'])}"] if g["region"] else []) + g["trigger_words"]) or "-"
                carriers = "none" if g["carriers"] is None else f"{len(g['carriers'])}, {g['consistency']:.2f}"
                print(f"| {name} | L{row.layer}H{row.head} ({row.separation:.0f}) | {g['size']} {g['response']!r} "
                      f"({int(truth[scanned['id'].isin(g['ids']).to_numpy()].sum())} poisoned) | {where}: {carriers} | "
                      f"{int(flagged.sum())}, {score['f1']:.2f} | {time.time() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
