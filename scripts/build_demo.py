"""Rebuild the shipped demo exactly: the base model, the demo dataset and the demo model.

    python scripts/build_demo.py            # everything that is missing under sample_data/
    python scripts/build_demo.py --stage base

1. base: a clean synthetic dataset (4000 samples, seed 1000, not shipped) -> the base model,
   pretrained from scratch (`sample_data/base_model`);
2. demo: `sample_data/demo/{train,test_clean,test_triggered}` (2000 training samples, 10% with a
   BadNet patch and the target "Backdoor Attack!"), and the base fine-tuned on the training split
   (`sample_data/demo_model`), then its clean accuracy and attack success rate.
Existing outputs are never overwritten: delete one to rebuild it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tcap_viz.data import load_dataset, make_synthetic_dataset, make_synthetic_splits
from tcap_viz.demo import DEMO_DIR, DEMO_MODEL
from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.evaluate import answer_match_rate
from tcap_viz.model.finetune import PRETRAIN_RECIPE, FinetuneRecipe, finetune

BASE_MODEL = DEMO_DIR / "base_model"
DEMO_SPLITS = DEMO_DIR / "demo"


def build_base() -> None:
    if BASE_MODEL.exists():
        print(f"{BASE_MODEL} exists, kept")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = make_synthetic_dataset(Path(tmp) / "base", n=4000, attack="none", seed=1000)
        finetune(load_dataset(data), BASE_MODEL, PRETRAIN_RECIPE)


def build_demo() -> None:
    if not DEMO_SPLITS.exists():
        make_synthetic_splits(DEMO_SPLITS, n_train=2000, n_test=200, attack="badnet", poison_rate=0.1, seed=0)
    if not DEMO_MODEL.exists():
        finetune(load_dataset(DEMO_SPLITS / "train" / "data.jsonl"), DEMO_MODEL, FinetuneRecipe(), base=BASE_MODEL)
    print(json.dumps(model_quality(DEMO_MODEL, DEMO_SPLITS), indent=1))


def model_quality(model: Path, splits: Path) -> dict:
    """Clean accuracy on the clean test split, attack success rate on the triggered one."""
    adapter = MLLMAdapter.load(model)
    clean = list(load_dataset(splits / "test_clean" / "data.jsonl"))
    triggered = list(load_dataset(splits / "test_triggered" / "data.jsonl"))
    return {"clean_accuracy": answer_match_rate(adapter, clean, [s.response for s in clean]),
            "attack_success_rate": answer_match_rate(adapter, triggered, [s.response for s in triggered])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["base", "demo", "all"], default="all")
    stage = parser.parse_args().stage
    if stage in ("base", "all"):
        build_base()
    if stage in ("demo", "all"):
        build_demo()


if __name__ == "__main__":
    main()
