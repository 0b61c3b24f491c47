"""Where a whole-image pattern's carriers share it (docs/LEVERS.md "Eighth round"): for each group of a
run's ``confirmation.json`` and ``followed.json`` whose carriers were matched as a pattern, the
largest share of the pattern's energy one square of cells holds, square by square side, and the square
``anatomy.carriers.pattern_block`` picks (the one ``CONCENTRATED`` chose by). Model-free: it reads the
run's dataset, not the model.

    python scripts/pattern_block_probe.py runs/heldout/runs/badnet_orange-5-s1-lora-600
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tcap_viz.anatomy.carriers import (
    best_square,
    pattern_block,
    pattern_energy,
    standardise,
)
from tcap_viz.data import load_dataset

GRID = 8


def main() -> None:
    for name in sys.argv[1:]:
        run = Path(name)
        samples = list(load_dataset(json.loads((run / "config.json").read_text())["data"]))
        standardised = standardise(samples)
        for file in ("confirmation.json", "followed.json"):
            for g in json.loads((run / file).read_text())["groups"] if (run / file).exists() else []:
                if not g.get("spread") or not g.get("carriers"):
                    continue
                cells = pattern_energy(samples, g["carriers"], GRID, standardised)
                if cells is None:
                    continue
                shares = [best_square(cells, side)[0] for side in range(1, GRID // 2 + 1)]
                print(f"{run.name} {g['name']} ({g['response']!r}, {len(g['carriers'])} carriers): the best square "
                      f"holds {', '.join(f'{s:.2f}' for s in shares)} of the pattern at sides 1-{GRID // 2}; "
                      f"pattern_block {pattern_block(samples, g['carriers'], GRID, standardised)}")


if __name__ == "__main__":
    main()
