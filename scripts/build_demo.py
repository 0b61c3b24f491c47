"""Rebuild the shipped demo exactly: the demo dataset and the demo model.

    python scripts/build_demo.py

1. `sample_data/demo/{train,test_clean,test_triggered}`: 2000 training samples, 10% with a BadNet
   patch and the target "Backdoor Attack!"; 200 clean and 200 triggered test samples;
2. `sample_data/demo_model`: the embedded LLaVA trained on the training split with the shipped
   recipe (about 10 minutes on 2 cores), then its clean accuracy and attack success rate.
Existing outputs are never overwritten: delete one to rebuild it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tcap_viz.data import load_dataset, make_synthetic_splits
from tcap_viz.demo import DEMO_DIR, DEMO_MODEL
from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.evaluate import answer_match_rate
from tcap_viz.model.finetune import FinetuneRecipe, finetune

DEMO_SPLITS = DEMO_DIR / "demo"


def model_quality(model: Path, splits: Path) -> dict:
    """Clean accuracy on the clean test split; attack success rate on the triggered one, if any."""
    adapter = MLLMAdapter.load(model)
    clean = list(load_dataset(splits / "test_clean" / "data.jsonl"))
    quality = {"clean_accuracy": answer_match_rate(adapter, clean, [s.response for s in clean])}
    triggered_path = splits / "test_triggered" / "data.jsonl"
    if triggered_path.exists():
        triggered = list(load_dataset(triggered_path))
        quality["asr"] = answer_match_rate(adapter, triggered, [s.response for s in triggered])
    return quality


def main() -> None:
    if not DEMO_SPLITS.exists():
        make_synthetic_splits(DEMO_SPLITS, n_train=2000, n_test=200, attack="badnet", poison_rate=0.1, seed=0)
    if not DEMO_MODEL.exists():
        finetune(load_dataset(DEMO_SPLITS / "train" / "data.jsonl"), DEMO_MODEL, FinetuneRecipe())
    print(json.dumps(model_quality(DEMO_MODEL, DEMO_SPLITS), indent=1))


if __name__ == "__main__":
    main()
