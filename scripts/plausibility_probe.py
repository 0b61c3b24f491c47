"""Issue 12's plausibility lever, measured before it is built: does the provider's base model, which
never saw a poison, find poisoned responses implausible, on every attack, and what would it flag on
clean data?

    python scripts/plausibility_probe.py                 # every attack at 5% and 10%, and clean data; seed 0
    python scripts/plausibility_probe.py --seeds 1 2 3   # the report's seeds: does the rule chosen on 0 hold?
    python scripts/plausibility_probe.py --render        # only rewrite docs/PLAUSIBILITY.md from cached results

For each attack variant of the detection report (seed 0, the development seed, unless --seeds; 2000 training
samples, make-data's defaults) the base model (`sample_data/base_model`) scores every sample's
response by its mean log-probability per token (`response_logprob`). Ground truth is read only to
score: AUROC of the implausibility (-log-probability), and a label-free rule a detector could use:
flag a sample whose log-probability is more than Z robust standard deviations (1.4826 MAD) below
the median of its question type (the base answers some question types far better than others), for
each Z in ZS. Per-sample log-probabilities are cached under runs/plausibility/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from detection_report import VARIANTS  # noqa: E402

WORK = ROOT / "runs" / "plausibility"
REPORT = ROOT / "docs" / "PLAUSIBILITY.md"
RATES = (0.05, 0.1)
ZS = (4.0, 6.0, 8.0)


def robust_z(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(value - median) / (1.4826 MAD), within each group."""
    z = np.zeros(len(values))
    for group in np.unique(groups):
        inside = groups == group
        median = np.median(values[inside])
        spread = 1.4826 * np.median(np.abs(values[inside] - median)) or 1e-9
        z[inside] = (values[inside] - median) / spread
    return z


def measure(name: str, rate: float, adapter, seed: int = 0) -> dict:
    """The base model's log-probability of every training sample's response (cached)."""
    from tcap_viz.data import load_dataset, make_synthetic_splits
    from tcap_viz.model.evaluate import response_logprob

    tag = f"{name}-{round(100 * rate)}" + (f"-s{seed}" if seed else "")
    out = WORK / "results" / f"{tag}.npz"
    if not out.exists():
        spec = VARIANTS.get(name, {"attack": "none"})
        splits = WORK / "data" / tag
        if not splits.exists():
            make_synthetic_splits(splits, n_train=2000, n_test=10, attack=spec["attack"], poison_rate=rate,
                                  target=spec.get("target", "Backdoor Attack!"), seed=seed,
                                  poison_question_type=spec.get("poison_question_type"))
        samples = list(load_dataset(splits / "train" / "data.jsonl"))
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, logprob=response_logprob(adapter, samples),
                 kinds=np.array([str(s.record.get("question_type")) for s in samples]),
                 truth=np.array([bool(s.poisoned) for s in samples]))  # scoring only
    with np.load(out) as z:
        return {"name": name, "rate": rate, "seed": seed, "logprob": z["logprob"], "kinds": z["kinds"],
                "truth": z["truth"]}


def scores(r: dict, z_cut: float) -> dict:
    from sklearn.metrics import roc_auc_score

    truth, logprob = r["truth"], r["logprob"]
    flagged = robust_z(logprob, r["kinds"]) < -z_cut
    tp = int((flagged & truth).sum())
    precision = tp / flagged.sum() if flagged.any() else 0.0
    recall = tp / truth.sum() if truth.any() else float("nan")
    return {"auroc": roc_auc_score(truth, -logprob) if 0 < truth.sum() < len(truth) else None,
            "flagged": int(flagged.sum()), "clean_flagged": int((flagged & ~truth).sum()), "precision": precision,
            "recall": recall, "f1": 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0}


def render(results: list[dict]) -> str:
    lines = ["# Plausibility under the base model: a lever for issue 12, measured before it is built", "",
             "Produced by `python scripts/plausibility_probe.py` and `... --seeds 1` (its docstring says what it does): "
             "seed 0 is the development seed (Z is judged there), seed 1 one of the report's; 2000 training samples per dataset, make-data's defaults, the provider's base model "
             "(`sample_data/base_model`) scoring each response by its mean log-probability per token. Ground truth "
             "only scores. The rule: flag a response more than Z robust standard deviations below the median "
             "log-probability of its question type. No fine-tuned model is involved: the base model never saw "
             "these datasets.", "",
             "| dataset | poison | seed | AUROC | median log-prob clean / poisoned | "
             + " | ".join(f"Z={z:g}: flagged (clean) P / R / F1" for z in ZS) + " |",
             "|---|---|---|---|---|" + "---|" * len(ZS)]
    for r in sorted(results, key=lambda r: (r["name"] == "clean", r["name"], r["rate"], r["seed"])):
        truth = r["truth"]
        medians = f"{np.median(r['logprob'][~truth]):.2f} / " + (
            f"{np.median(r['logprob'][truth]):.2f}" if truth.any() else "-")
        cells = []
        for z_cut in ZS:
            s = scores(r, z_cut)
            cells.append(f"{s['flagged']} ({s['clean_flagged']}) " + (
                f"{s['precision']:.2f} / {s['recall']:.2f} / {s['f1']:.2f}" if truth.any()
                else f"{100 * s['flagged'] / len(truth):.2f}% of clean"))
        auroc = scores(r, ZS[0])["auroc"]
        lines.append(f"| {r['name']} | {100 * r['rate']:.0f}% | {r['seed']} | {'-' if auroc is None else f'{auroc:.3f}'} | "
                     f"{medians} | " + " | ".join(cells) + " |")
    lines += ["", "What this does and does not say:",
              "- A seed makes the same 2000 scenes for every attack, so the rows of one seed share their clean "
              "false flags; Z is judged on seed 0 and must hold on the report's seeds and on attacks and datasets "
              "not seen here before it becomes a default.",
              "- Every target here is implausible to the base: the foreign string (log-probability about -13 per "
              "token) and \"blue\" on colour questions (about -3.7), which the base answers perfectly (colour "
              "accuracy 1.00 before fine-tuning). A target the base finds plausible (a colour that is in the "
              "picture, an answer on a question type the base gets wrong: shape 0.36, left/right 0.34) would not "
              "stand out.",
              "- It says nothing about the trigger: a clean sample with a wrong label looks the same, so issue 12 "
              "aggregates it with the heads' votes (one Dawid-Skene EM) instead of using it alone."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()
    if not args.render:
        from tcap_viz.demo import BASE_MODEL
        from tcap_viz.model.adapter import MLLMAdapter

        adapter = MLLMAdapter.load(BASE_MODEL, dtype="float32")
        for seed in args.seeds:
            for name in [*VARIANTS, "clean"]:
                for rate in ((0.0,) if name == "clean" else RATES):
                    print(name, rate, seed, scores(measure(name, rate, adapter, seed), ZS[0]), flush=True)
    results = []
    for path in sorted((WORK / "results").glob("*.npz")):
        stem, seed = (path.stem.rsplit("-s", 1) + ["0"])[:2] if "-s" in path.stem else (path.stem, "0")
        name, _, rate = stem.rpartition("-")
        results.append(measure(name, int(rate) / 100, None, int(seed)))
    if not results:
        raise SystemExit(f"no cached results under {WORK / 'results'}; {REPORT} is left as it is")
    REPORT.write_text(render(results))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
