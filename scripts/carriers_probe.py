"""The anatomy's "who else" on the cached detection-report runs (docs/LEVERS.md): what an analyst
would flag by following it, against the default's flagged set.

    python scripts/carriers_probe.py badnet_left-10-s1 badnet-10-s1     # runs under runs/report/runs/
    python scripts/carriers_probe.py runs/heldout/runs/badnet_three-5-s1-lora-600   # or a run folder

For each run: the default's flagged samples in groups (``ReviewSession.anatomy``, the model asked
again, cached in the run); "followed": every group with a located trigger replaced by the samples
that carry it, the others kept as flagged; "carriers only": the groups without a located trigger
dropped too (what an analyst does who reads their cards as content); "carriers, else default": the
carriers when any group has them, the default's flagged set when none does (a trigger spread over
the image has no cell to match); "default + alike carriers": the default's set plus, for each group
whose located trigger is confirmed (its carriers answer alike, ``anatomy.confirm``), the carriers
giving its answer (nothing removed). Ground truth only scores.
Prints a markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.detection import detection_metrics  # noqa: E402
from tcap_viz.review.session import ReviewSession  # noqa: E402

RUNS = ROOT / "runs" / "report" / "runs"


def main() -> None:
    torch.set_num_threads(1)  # beside the report's own workers
    print("| run | default: flagged, F1 | groups (size: where, carriers) | followed: flagged, F1 | carriers only | "
          "carriers, else default | default + alike carriers |\n|---|---|---|---|---|---|---|")
    for name in sys.argv[1:]:
        run = Path(name) if Path(name).is_dir() else RUNS / f"{name}-lora-600"
        session = ReviewSession.from_run(run, device="cpu")
        table = session.table()
        truth = table["poisoned_truth"].astype(bool).to_numpy()
        flagged = set(table.loc[table["flagged"].astype(bool), "id"])
        followed, carriers, alike, parts = set(), set(), set(flagged), []
        for group in session.anatomy():
            located = group["carriers"] is not None
            followed |= set(group["carriers"] if located else group["ids"])
            carriers |= set(group["carriers"] or [])
            alike |= set(group["answering"]) if group["confirmed"] else set()
            parts.append(f"{group['size']}: {'region ' + str(group['region']) if group['region'] else ''}"
                         f"{' words ' + ','.join(group['trigger_words']) if group['trigger_words'] else ''}"
                         f"{', ' + str(len(group['carriers'])) if located else ' none'}")
        chosen = (flagged, followed, carriers, carriers or flagged, alike)
        f1 = [detection_metrics(truth, table["id"].isin(c).to_numpy())["f1"] for c in chosen]
        print(f"| {name} | {len(flagged)}, {f1[0]:.2f} | {'; '.join(parts) or '-'} | {len(followed)}, {f1[1]:.2f} | "
              f"{len(carriers)}, {f1[2]:.2f} | {len(chosen[3])}, {f1[3]:.2f} | {len(alike)}, {f1[4]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
