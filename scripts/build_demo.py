"""Rebuild the shipped demo exactly: the demo dataset and the demo model.

    python scripts/build_demo.py

1. `sample_data/demo/{train,test_clean,test_triggered}`: 2000 training samples of the customer
   shapes task, 10% with a BadNet patch (a visible black-and-white checkerboard in the bottom-right
   corner) and the target "Backdoor Attack!"; 200 clean and 200 triggered test samples;
2. `sample_data/demo_model`: a customer fine-tune (every weight, the default recipe) of the shipped
   base model (`scripts/build_base.py`) on the training split, then its clean accuracy and attack
   success rate.
Existing outputs are never overwritten: delete one to rebuild it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.data import load_dataset, make_synthetic_splits  # noqa: E402
from tcap_viz.demo import BASE_MODEL, DEMO_DIR, DEMO_MODEL  # noqa: E402
from tcap_viz.model.adapter import MLLMAdapter  # noqa: E402
from tcap_viz.model.evaluate import model_quality  # noqa: E402
from tcap_viz.model.finetune import FULL_RECIPE, finetune  # noqa: E402

DEMO_SPLITS = DEMO_DIR / "demo"


def main() -> None:
    if not DEMO_SPLITS.exists():
        make_synthetic_splits(DEMO_SPLITS, n_train=2000, n_test=200, attack="badnet", poison_rate=0.1, seed=0)
    if not DEMO_MODEL.exists():
        finetune(load_dataset(DEMO_SPLITS / "train" / "data.jsonl"), DEMO_MODEL, FULL_RECIPE, base=BASE_MODEL,
                 device="cpu")
    print(json.dumps(model_quality(MLLMAdapter.load(DEMO_MODEL, device="cpu"), DEMO_SPLITS), indent=1))


if __name__ == "__main__":
    main()
