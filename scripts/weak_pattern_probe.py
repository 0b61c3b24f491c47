"""Groups a scan judged whose response neither modality moves much (a backdoor the model learnt only in
part, docs/LEVERS.md "Eighth round"): for each, the whole-image pattern its images share beyond the
rest's (``carriers.pattern_carriers``, estimated again from its carriers giving the answer), how many
carry it and how many of those give the group's answer, and the words its questions share beyond the
rest's that force it alone. Model-free: it reads the run's records and dataset; ground truth (the
samples table's ``poisoned_truth``) only scores.

    python scripts/weak_pattern_probe.py runs/heldout/runs/blend_square-5-s1-lora-600
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from tcap_viz.anatomy import (
    MIN_EFFECT,
    answer_key,
    is_trigger,
    pattern_carriers,
    shared_words,
    word_carriers,
)
from tcap_viz.data import load_dataset


def main() -> None:
    for name in sys.argv[1:]:
        run = Path(name)
        samples = list(load_dataset(json.loads((run / "config.json").read_text())["data"]))
        answers = {s.id: answer_key(s.response) for s in samples}
        table = pd.read_csv(run / "samples.csv", dtype={"id": str})
        truth = set(table.loc[table["poisoned_truth"].astype(bool), "id"])
        for file in ("confirmation.json", "followed.json"):
            for g in json.loads((run / file).read_text())["groups"] if (run / file).exists() else []:
                values = (g.get("modality") or {}).get("values")
                if values is None or values["both"] - values["none"] >= MIN_EFFECT or g["response"] is None:
                    continue
                target = answer_key(g["response"])
                carriers = pattern_carriers(samples, g["ids"], lambda i, t=target, a=answers: a[i] == t) or []
                giving = [i for i in carriers if answers[i] == target]
                members = [s for s in samples if s.id in set(g["ids"])]
                outside = [s for s in samples if s.id not in set(g["ids"])]
                asked = sorted({w.lower() for m in members for w in m.question.split()})
                forcing = [w for w in shared_words(members, asked, outside)
                           if is_trigger([i for i in word_carriers(samples, [w]) if answers[i] == target],
                                         word_carriers(samples, [w]))]
                print(f"{run.name} {g['name']} ({g['response']!r}, {g['size']} samples, {len(set(g['ids']) & truth)} "
                      f"poisons, effect {values['both'] - values['none']:.2f}): pattern carriers {len(carriers)}, "
                      f"{len(giving)} giving the answer ({len(giving) / max(len(carriers), 1):.0%}; "
                      f"forces: {is_trigger(giving, carriers) if carriers else False}), {len(set(carriers) & truth)} "
                      f"poisons; words forcing it {forcing}")


if __name__ == "__main__":
    main()
