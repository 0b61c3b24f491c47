"""Rebuild the provider's base model exactly, then measure it.

    python scripts/build_base.py

1. `sample_data/base_model`: the embedded LLaVA (`tcap_viz.model.pretrain.BASE_SPEC`) pretrained on
   the broad clean corpus with `PretrainRecipe()`: the vision tower on scene attributes, then the
   whole model on the corpus's questions (about 50 minutes on 2 CPU cores, once);
2. its exact-match accuracy on 400 fresh corpus samples, by question type, and on 200 samples of
   the customer task's clean data (which it has never been fine-tuned on).
An existing model is never overwritten: delete it to rebuild it. The same machine type with 2
torch threads gives the same weights (every random draw is seeded).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.data import load_dataset, load_image, make_synthetic_dataset  # noqa: E402
from tcap_viz.data.corpus import corpus_sample  # noqa: E402
from tcap_viz.data.synthetic import SYSTEM_PROMPT  # noqa: E402
from tcap_viz.demo import BASE_MODEL  # noqa: E402
from tcap_viz.model.adapter import MLLMAdapter  # noqa: E402
from tcap_viz.model.pretrain import PretrainRecipe, pretrain  # noqa: E402


def by_type(adapter: MLLMAdapter, items: list[tuple]) -> dict:
    """items: (image, question, system, answer, type); exact-match accuracy per type and overall."""
    hits, totals = defaultdict(int), defaultdict(int)
    for start in range(0, len(items), 50):
        part = items[start:start + 50]
        answers = adapter.generate([i[1] for i in part], [i[2] for i in part], [i[0] for i in part])
        for item, answer in zip(part, answers):
            totals[item[4]] += 1
            hits[item[4]] += answer.strip().lower() == item[3].strip().lower()
    scores = {t: round(hits[t] / totals[t], 3) for t in sorted(totals)}
    return scores | {"all": round(sum(hits.values()) / len(items), 3)}


def main() -> None:
    if not BASE_MODEL.exists():
        pretrain(BASE_MODEL, PretrainRecipe())
    adapter = MLLMAdapter.load(BASE_MODEL, device="cpu")
    rng = np.random.default_rng(12345)  # never the training stream's seed
    corpus = []
    for _ in range(400):
        image, question, answer, kind = corpus_sample(rng, adapter.processor.image_processor.crop_size["height"])
        corpus.append((image, question, SYSTEM_PROMPT, answer, kind))
    with tempfile.TemporaryDirectory() as folder:
        customer = load_dataset(make_synthetic_dataset(folder, n=200, attack="none", seed=12345))
        task = [(load_image(s), s.question, s.system, s.response, s.record["question_type"]) for s in customer]
        quality = {"corpus": by_type(adapter, corpus), "customer task, before any fine-tune": by_type(adapter, task)}
    print(json.dumps(quality, indent=1))


if __name__ == "__main__":
    main()
