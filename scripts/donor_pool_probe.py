"""Why the development case 'right' by SIG was missed (docs/LEVERS.md "Old development cases measured
again"): the modality of the next head's group holding its poisons (L3H14's 'right' answers), with the swap's
donors as the scan took them before item 21 (outside everything TCAP flagged, giving another answer) and
outside only the group judged (since item 21 the scan takes those outside what the head flagged). TCAP
flagged every 'left' answer, so the first pool has no position question.

    python scripts/donor_pool_probe.py runs/heldout/runs/sig_right-5-s1-lora-600 "g1 of L3H14"
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.anatomy import answer_key
from tcap_viz.anatomy.modality import modality_attribution
from tcap_viz.data import load_dataset
from tcap_viz.pipeline import ScanConfig, load_model


def main() -> None:
    run, name = Path(sys.argv[1]), sys.argv[2]
    config = json.loads((run / "config.json").read_text())
    data = {s.id: s for s in load_dataset(config["data"])}
    groups = json.loads((run / "confirmation.json").read_text())["groups"]
    group = next(g for g in groups if g["name"] == name)
    flagged = set().union(*[set(g["ids"]) for g in groups if g["source"] == "TCAP"])
    members, inside, answer = [data[i] for i in group["examined"]], set(group["ids"]), answer_key(group["response"])
    adapter = load_model(ROOT / "sample_data" / "base_model", ScanConfig(**{**config["scan"], "device": "cpu"}))
    for pool, outside in (("outside what TCAP flagged (before item 21)", flagged), ("outside the group judged", inside)):
        donors = [s for i, s in data.items() if i not in outside and answer_key(s.response) != answer]
        m = modality_attribution(adapter, members, donors)
        print(f"{pool}: {len(donors)} donors, v(S) {({k: round(v, 2) for k, v in m.values.items()})}: {m.reading()}")


if __name__ == "__main__":
    main()
