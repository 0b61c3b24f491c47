"""The whole-image pattern's first gate on a head's group (docs/LEVERS.md "Old development cases measured
again", item 21): ``carriers.pattern_carriers`` gives up when fewer than ``carriers.PATTERN_SHARED`` (a
quarter; half, ``carriers.SHARED``, before item 21) of the group's members carry the pattern. Since the
carriers are drawn by a mixture (item 12), a group that holds a backdoor's poisons among as many clean
samples giving the same answer carries it in exactly the poisons' share. For each group of each head a
scan judged (its results file's confirmation table), the share of its members carrying the pattern, and
the pattern's carriers and the share answering alike with the half gate and with today's. Ground truth
(``poisoned_truth``) only scores.

    python scripts/shared_gate_probe.py runs/heldout/runs/clean-s11-lora-600 docs/results/heldout/clean-s11-lora-600.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.anatomy import carriers
from tcap_viz.data import load_dataset
from tcap_viz.detection import head_statistic
from tcap_viz.detection.head_profiler import HeadProfiler

GATES = (carriers.SHARED, carriers.PATTERN_SHARED)


def main() -> None:
    run, results = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    data = list(load_dataset(json.loads((run / "config.json").read_text())["data"]))
    table = pd.read_csv(run / "samples.csv", dtype={"id": str}).set_index("id")
    saved = np.load(run / "profiles.npz", allow_pickle=False)
    ids = saved["ids"].astype(str)
    shares = head_statistic(saved["profiles"])
    profiler = HeadProfiler().fit(shares)
    answers = table["response"].to_dict()
    standardised = carriers.standardise(data)
    by_id = {s.id: s for s in data}
    heads = sorted({c["source"] for c in results["confirmation"] if c["source"].startswith("L")},
                   key=lambda s: tuple(map(int, s[1:].split("H"))))
    print(f"{run.name}: {int(table['poisoned_truth'].sum())} poisons; gates {GATES}\n")
    print("| head | group | " + " | ".join(f"gate {g}: carriers, poisons, answering alike" for g in GATES)
          + " |\n|---|---|" + "---|" * len(GATES))
    for head in heads:
        layer, h = map(int, head[1:].split("H"))
        votes = profiler.head_mixture(layer, h).target_posterior(shares[:, layer, h]) > profiler.tau_vote
        group = table.loc[ids[votes]]
        for answer, members in group.groupby("response"):
            if len(members) < 5:
                continue
            scores = carriers._projections(data, [by_id[m] for m in members.index if m in by_id], *standardised)
            if scores is None:
                continue
            own = np.array([scores[i] for i in members.index if i in scores])
            share = carriers._carrying(np.array(list(scores.values())), own).astype(float)
            share = float(np.mean([share[k] for k, i in enumerate(scores) if i in members.index]))
            cells = []
            for gate in GATES:  # the gate decides round 0 only: where both pass, one search says it
                if share < gate or (cells and cells[-1] != "none"):
                    cells.append("none" if share < gate else "same")
                    continue
                carriers.PATTERN_SHARED = gate  # pattern_carriers reads it at call time
                found = carriers.pattern_carriers(data, list(members.index), lambda i, a=answer: answers[i] == a,
                                                  standardised)
                cells.append("none" if not found else f"{len(found)}, {int(table.loc[found, 'poisoned_truth'].sum())}, "
                             f"{np.mean([answers[i] == answer for i in found]):.2f}")
            print(f"| {head} | {len(members)} {answer!r} ({int(members['poisoned_truth'].sum())} poisons; "
                  f"{share:.2f} carry it) | "
                  + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
