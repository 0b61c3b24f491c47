"""A followed group's located cell, matched two ways (docs/LEVERS.md item 20): each examined member's own
drop of its answer when the cell is masked, and the carriers of the cell's pattern taken from every examined
member against those taken from its holders (a drop of at least ``MIN_DROP``). Asks the model again; ground
truth (the data's ``poisoned``) only scores.

    python scripts/cell_holders_probe.py runs/heldout dual_or_square-5-s1-lora-600
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tcap_viz.anatomy import MIN_DROP, cell_carriers, masked
from tcap_viz.data import load_dataset, load_image
from tcap_viz.demo import BASE_MODEL
from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.evaluate import pair_logprob


def main() -> None:
    work, name = Path(sys.argv[1]), sys.argv[2]
    case = name.split("-lora-")[0]
    group = next(g for g in json.loads((work / "runs" / name / "followed.json").read_text())["groups"] if g["region"])
    data = load_dataset(work / "data" / case / "train" / "data.jsonl")
    adapter = MLLMAdapter.load(BASE_MODEL, device="cpu", dtype="float32", adapter=work / "models" / name)
    cell, grid = tuple(group["region"]), len(group["occlusion"])
    members = [data.by_id(i) for i in group["examined"]]
    pairs = [p for m in members for image in [load_image(m)] for p in ((m, image), (m, masked(image, cell, grid)))]
    scores = pair_logprob(adapter, pairs, 32)
    drops = scores[0::2] - scores[1::2]
    for member, drop in zip(members, drops):
        print(f"{member.id}  drop {drop:6.3f}  poisoned {member.poisoned!s:5}  {member.question}")
    holders = [m.id for m, drop in zip(members, drops) if drop >= MIN_DROP]
    samples = list(data)
    for label, owners in (("every examined member", group["examined"]), ("its holders", holders)):
        found = cell_carriers(samples, owners, cell, grid)
        told = "no shared pattern" if found is None else (
            f"{len(found)} carriers, {sum(data.by_id(i).poisoned for i in found)} poisoned, "
            f"{sum(data.by_id(i).response == group['response'] for i in found)} answering {group['response']!r}")
        print(f"cell {cell} by the pattern of {label} ({len(owners)}): {told}")


if __name__ == "__main__":
    main()
