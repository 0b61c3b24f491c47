"""Issue 12's plausibility lever, measured before it is built: does the provider's base model, which
never saw a poison, find poisoned responses implausible, on every attack, and what would it flag on
clean data?

    python scripts/plausibility_probe.py                 # every attack at 5% and 10%, and clean data; seed 0
    python scripts/plausibility_probe.py --seeds 1 2 3   # the report's seeds: does the rule chosen on 0 hold?
    python scripts/plausibility_probe.py --customers     # with TCAP's head votes, on the testbed's LoRA-600 models
    python scripts/plausibility_probe.py --render        # only rewrite docs/PLAUSIBILITY.md from cached results

For each attack variant of the detection report (seed 0, the development seed, unless --seeds; 2000 training
samples, make-data's defaults) the base model (`sample_data/base_model`) scores every sample's
response by its mean log-probability per token (`response_logprob`). Ground truth is read only to
score: AUROC of the implausibility (-log-probability), and label-free rules a detector could use
(RULES): flag a sample whose log-probability is more than Z robust standard deviations (1.4826 MAD)
below the median of the whole dataset, or of its question type (a field only the synthetic data
has). Per-sample log-probabilities are cached under runs/plausibility/, so the rules can change
without a model.

--customers: for every LoRA-600 customer model that `scripts/testbed_recipes.py ... --recipes lora-600
--seeds S` left under runs/testbed/models/, a scan with the defaults (which, with an adapter, read the
base model's log-probabilities and give TCAP the plausibility vote), and beside it TCAP without the
vote, the vote alone, and the vote as one more annotator of TCAP's EM without choosing the heads by
it. Cached under runs/plausibility/customers/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tcap_viz.benchmark import VARIANTS  # noqa: E402

WORK = ROOT / "runs" / "plausibility"
REPORT = ROOT / "docs" / "PLAUSIBILITY.md"
RATES = (0.05, 0.1)
# name -> (group by the question type?, Z)
RULES = {"whole dataset, Z=4": (False, 4.0), "whole dataset, Z=6": (False, 6.0), "per question type, Z=8": (True, 8.0)}
DEFAULT_RULE = "whole dataset, Z=4"  # PlausibilityVote's default
TESTBED = ROOT / "runs" / "testbed"


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


def plausibility_vote(logprob: np.ndarray, kinds: np.ndarray, rule: str) -> np.ndarray:
    """The package's PlausibilityVote over the whole dataset, or within each question type."""
    from tcap_viz.detection import PlausibilityVote

    by_type, z_cut = RULES[rule]
    groups = kinds if by_type else np.zeros(len(logprob))
    flagged = np.zeros(len(logprob), dtype=bool)
    for group in np.unique(groups):
        inside = groups == group
        flagged[inside] = PlausibilityVote(z_cut=z_cut).fit(logprob[inside]).flagged_
    return flagged


def scores(r: dict, rule: str) -> dict:
    from sklearn.metrics import roc_auc_score

    truth, logprob = r["truth"], r["logprob"]
    flagged = plausibility_vote(logprob, r["kinds"], rule)
    tp = int((flagged & truth).sum())
    precision = tp / flagged.sum() if flagged.any() else 0.0
    recall = tp / truth.sum() if truth.any() else float("nan")
    return {"auroc": roc_auc_score(truth, -logprob) if 0 < truth.sum() < len(truth) else None,
            "flagged": int(flagged.sum()), "clean_flagged": int((flagged & ~truth).sum()), "precision": precision,
            "recall": recall, "f1": 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0}


def render(results: list[dict]) -> str:
    lines = ["# Plausibility under the base model: a lever for issue 12, measured before it is built", "",
             "Produced by `python scripts/plausibility_probe.py` and `... --seeds 1` (its docstring says what it does): "
             "seed 0 is the development seed (the rules are judged there), seed 1 one of the report's; 2000 "
             "training samples per dataset, make-data's defaults, the provider's base model "
             "(`sample_data/base_model`) scoring each response by its mean log-probability per token. Ground truth "
             "only scores. The rules: flag a response more than Z robust standard deviations (1.4826 MAD) below the "
             "median log-probability of the whole dataset, or of its question type (a field only the synthetic data "
             "has; tried first, it flags more clean samples: the base answers colours so consistently that small "
             "deviations count). No fine-tuned model is involved: the base model never saw these datasets.", "",
             "| dataset | poison | seed | AUROC | median log-prob clean / poisoned | "
             + " | ".join(f"{rule}: flagged (clean) P / R / F1" for rule in RULES) + " |",
             "|---|---|---|---|---|" + "---|" * len(RULES)]
    for r in sorted(results, key=lambda r: (r["name"] == "clean", r["name"], r["rate"], r["seed"])):
        truth = r["truth"]
        medians = f"{np.median(r['logprob'][~truth]):.2f} / " + (
            f"{np.median(r['logprob'][truth]):.2f}" if truth.any() else "-")
        cells = []
        for rule in RULES:
            s = scores(r, rule)
            cells.append(f"{s['flagged']} ({s['clean_flagged']}) " + (
                f"{s['precision']:.2f} / {s['recall']:.2f} / {s['f1']:.2f}" if truth.any()
                else f"{100 * s['flagged'] / len(truth):.2f}% of clean"))
        auroc = scores(r, DEFAULT_RULE)["auroc"]
        lines.append(f"| {r['name']} | {100 * r['rate']:.0f}% | {r['seed']} | {'-' if auroc is None else f'{auroc:.3f}'} | "
                     f"{medians} | " + " | ".join(cells) + " |")
    lines += ["", "What this does and does not say:",
              "- A seed makes the same 2000 scenes for every attack, so the rows of one seed share their clean "
              "false flags; the rules are judged on seed 0 and must hold on the report's seeds and on attacks and datasets "
              "not seen here before it becomes a default.",
              "- Every target here is implausible to the base: the foreign string (log-probability about -13 per "
              "token) and \"blue\" on colour questions (about -3.7), which the base answers perfectly (colour "
              "accuracy 1.00 before fine-tuning). A target the base finds plausible (a colour that is in the "
              "picture, an answer on a question type the base gets wrong: shape 0.36, left/right 0.34) would not "
              "stand out.",
              "- It says nothing about the trigger: a clean sample with a wrong label looks the same, so issue 12 "
              "aggregates it with the heads' votes (one Dawid-Skene EM) instead of using it alone."]
    return "\n".join(lines) + "\n"


def customer(model: Path) -> dict:
    """TCAP without and with the plausibility vote, and the vote alone, on one customer model (cached)."""
    from tcap_viz.data import load_dataset
    from tcap_viz.demo import BASE_MODEL
    from tcap_viz.detection import TCAPDetector, detection_metrics
    from tcap_viz.detection.dawid_skene import DawidSkene
    from tcap_viz.pipeline import ScanConfig, scan

    out = WORK / "customers" / f"{model.name}.json"
    if out.exists():
        return json.loads(out.read_text())
    setting, _, seed = model.name.partition("-lora-600")
    data = TESTBED / "data" / (setting + seed) / "train" / "data.jsonl"
    quality = json.loads((TESTBED / "results" / f"{model.name}.json").read_text())["quality"]
    # the scan's default: with an adapter it reads the base model's log-probabilities and TCAP uses the vote
    result = scan(BASE_MODEL, data, WORK / "customers" / "runs" / model.name,
                  ScanConfig(adapter=str(model), dtype="float32"), show_progress=False)
    samples = {s.id: s for s in load_dataset(data)}
    scanned = [samples[i] for i in result.extraction.ids]
    vote = result.tcap.plausibility_
    today = TCAPDetector(**result.tcap.get_params()).fit(result.extraction.profiles)  # without the vote
    combined = (DawidSkene().fit(np.column_stack([today.votes_, vote]).astype(int)).posterior_ > 0.5
                if today.votes_.shape[1] else vote)
    truth = np.array([bool(s.poisoned) for s in scanned])  # scoring only
    scored = {name: detection_metrics(truth, flags, flags.astype(float)) for name, flags in
              (("tcap", today.flagged_), ("plausibility", vote), ("combined", combined),
               ("anchored", result.tcap.flagged_))}
    row = {"model": model.name, "setting": setting, "seed": int(seed.removeprefix("-s") or 0), "quality": quality,
           "heads": int(today.votes_.shape[1]), "anchored_heads": int(result.tcap.votes_.shape[1]),
           **{k: {m: float(v[m]) for m in ("precision", "recall", "f1")} | {"flagged": int(v["n_flagged"])}
              for k, v in scored.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=1))
    return row


def render_customers(rows: list[dict]) -> list[str]:
    lines = ["", "## With TCAP's head votes, on customer models (LoRA-600) of the report's seeds", "",
             "`python scripts/plausibility_probe.py --customers`: each model a LoRA-600 fine-tune of the base on a "
             "5% poisoned dataset of the testbed (`scripts/testbed_recipes.py`, seeds 1-3). \"TCAP without the "
             "vote\": the heads and EM alone (the default before this lever); the plausibility vote "
             "(`PlausibilityVote`, robust z < -4 over the whole dataset); \"combined\": that vote as one more "
             "annotator in the EM beside those heads; \"the scan's default\": the heads chosen by agreement with "
             "the vote instead of with the best-ranked head, then the same EM (`TCAPDetector.fit(profiles, "
             "plausibility)`, what a scan with an adapter now does). Precision / recall / F1 (flagged).", "",
             "| model | clean acc. / ASR | heads (chosen by the vote) | TCAP without the vote | plausibility alone | "
             "combined | the scan's default |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["setting"], r["seed"])):
        q = r["quality"]
        cells = [f"{r[k]['precision']:.2f} / {r[k]['recall']:.2f} / {r[k]['f1']:.2f} ({r[k]['flagged']})"
                 for k in ("tcap", "plausibility", "combined", "anchored")]
        lines.append(f"| {r['setting']} seed {r['seed']} | {100 * q['clean_accuracy']:.1f} / {100 * q['asr']:.1f} | "
                     f"{r['heads']} ({r['anchored_heads']}) | " + " | ".join(cells) + " |")
    means = [f"{np.mean([r[k]['f1'] for r in rows]):.2f}" for k in ("tcap", "plausibility", "combined", "anchored")]
    lines += [f"| mean F1 ({len(rows)} models) | | | " + " | ".join(means) + " |", "",
              "Reading: TCAP without the vote finds the text prefix and flags a clean content group (or nothing) on BadNet "
              "and Blend, although the backdoors are learnt; the plausibility vote alone finds every one. As one "
              "more annotator beside today's heads it is outvoted wherever several heads agree on a wrong group "
              "(EM trusts the majority that agrees); choosing the heads by agreement with it keeps the heads "
              "that see the trigger (Blend) and, where no head agrees (BadNet), leaves the vote alone."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--customers", action="store_true", help="also on the testbed's LoRA-600 models")
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()
    if not args.render:
        from tcap_viz.demo import BASE_MODEL
        from tcap_viz.model.adapter import MLLMAdapter

        adapter = MLLMAdapter.load(BASE_MODEL, dtype="float32")
        for seed in args.seeds:
            for name in [*VARIANTS, "clean"]:
                for rate in ((0.0,) if name == "clean" else RATES):
                    print(name, rate, seed, scores(measure(name, rate, adapter, seed), DEFAULT_RULE), flush=True)
    results = []
    for path in sorted((WORK / "results").glob("*.npz")):
        stem, seed = (path.stem.rsplit("-s", 1) + ["0"])[:2] if "-s" in path.stem else (path.stem, "0")
        name, _, rate = stem.rpartition("-")
        results.append(measure(name, int(rate) / 100, None, int(seed)))
    if not results:
        raise SystemExit(f"no cached results under {WORK / 'results'}; {REPORT} is left as it is")
    if args.customers:
        for model in sorted((TESTBED / "models").glob("*-lora-600-s*")):
            print(customer(model), flush=True)
    text = render(results)
    rows = [json.loads(p.read_text()) for p in sorted((WORK / "customers").glob("*.json"))]
    if rows:
        text += "\n".join(render_customers(rows)) + "\n"
    REPORT.write_text(text)
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
