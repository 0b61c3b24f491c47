"""Where the heads and the plausibility vote disagree, on the report's cached runs: how many runs had both
vote (a `tcap_posterior` column, EM's, and samples both EM and the vote flag; where the heads decided alone
they share none),
and among the samples only EM (heads and vote) flags and only the vote flags, how many are poisoned
(ground truth, evaluation only). The numbers docs/LEVERS.md item 7 quotes.

    python scripts/disagreements_probe.py [--runs runs/report/runs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs/report/runs"))
    args = parser.parse_args()
    runs, counts = 0, dict.fromkeys(["heads only, poisoned", "heads only, clean", "vote only, poisoned",
                                     "vote only, clean"], 0)
    for run in sorted(args.runs.iterdir()):
        table_file = run / "samples.csv"
        if not table_file.exists():
            continue
        t = pd.read_csv(table_file, dtype={"id": str})
        if "tcap_posterior" not in t or "implausible" not in t or "poisoned_truth" not in t:
            continue
        em = t["tcap_posterior"] > 0.5
        vote = t["implausible"].fillna(False).astype(bool)
        if not (em & vote).any():  # EM flagged nothing the vote did: the heads decided alone, or nothing was found
            continue
        poisoned = t["poisoned_truth"].astype(bool)
        runs += 1
        for name, mask in (("heads only", em & ~vote), ("vote only", vote & ~em)):
            counts[f"{name}, poisoned"] += int((mask & poisoned).sum())
            counts[f"{name}, clean"] += int((mask & ~poisoned).sum())
    print(f"runs where the heads and the vote both voted: {runs}")
    for name, n in counts.items():
        print(f"{name}: {n}")


if __name__ == "__main__":
    main()
