"""How many true poisons each group a scan judged holds (docs/LEVERS.md "Held out"): the groups of
``confirmation.json`` and ``followed.json`` in a run folder, with their answer, what was located and
the modality effect. Ground truth (the samples table's ``poisoned_truth``) only scores.

    python scripts/judged_poisons.py runs/heldout/runs/blend_right-5-s1-lora-600
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def main() -> None:
    for name in sys.argv[1:]:
        run = Path(name)
        table = pd.read_csv(run / "samples.csv", dtype={"id": str})
        truth = set(table.loc[table["poisoned_truth"].astype(bool), "id"])
        print(f"{run.name}: {len(truth)} poisons")
        for file in ("confirmation.json", "followed.json"):
            for g in json.loads((run / file).read_text())["groups"] if (run / file).exists() else []:
                values = (g.get("modality") or {}).get("values")
                effect = None if values is None else values["both"] - values["none"]
                print(f"  {g['name']}: {g['size']} samples, answer {g['response']!r}, {len(set(g['ids']) & truth)} "
                      f"poisons; effect {'-' if effect is None else f'{effect:.2f}'} nats; confirmed {g['confirmed']}")


if __name__ == "__main__":
    main()
