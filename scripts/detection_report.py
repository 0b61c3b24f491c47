"""Measure detection the way the paper does and write docs/DETECTION.md.

    python scripts/detection_report.py                      # all cases (about an hour on 2 cores)
    python scripts/detection_report.py --cases badnet-10 clean
    python scripts/detection_report.py --cases                # only rewrite the report from cached results

For each attack (BadNet, Blend, WaNet, text prefix) at 10% and 5% poison, and for a clean dataset:
make the data (2000 training samples, 200 test samples), train the embedded LLaVA on it with the
shipped recipe (about 10 minutes per case on 2 cores; badnet-10 is the shipped demo itself),
measure clean accuracy and attack success rate (ASR), scan it, and score TCAP and the BYE baseline
against the ground truth they never saw. For the cases in RETRAIN whose model learnt the backdoor
(ASR >= 50%), the flagged samples are removed and the model is trained again on what is left:
clean accuracy and ASR of that model.
Every step's output is kept under runs/report/ and reused, so an interrupted report resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import time

import torch

from build_demo import DEMO_SPLITS, model_quality
from tcap_viz.data import DEFAULT_TARGET, load_dataset, make_synthetic_splits, write_dataset
from tcap_viz.data.attacks import make_attack
from tcap_viz.demo import DEMO_MODEL, ROOT
from tcap_viz.model.finetune import FinetuneRecipe, finetune
from tcap_viz.pipeline import scan

WORK = ROOT / "runs" / "report"
REPORT = ROOT / "docs" / "DETECTION.md"
ATTACKS = ("badnet", "blend", "wanet", "text_prefix")
CASES = {f"{a}-{rate}": (a, rate / 100) for a in ATTACKS for rate in (10, 5)} | {"clean": ("none", 0.0)}
RETRAIN = ("badnet-10", "blend-10", "badnet-5", "blend-5")
ORDER = ("badnet-10", "clean", "text_prefix-10", "badnet-5", "blend-10", "wanet-10", "text_prefix-5", "blend-5", "wanet-5")
STALE = ("delete runs/report/data/{name}, runs/report/models/{name}*, runs/report/runs/{name}, "
         "runs/report/cleaned/{name}-* and runs/report/results/{name}.json, then run the case again")
TARGETS = {"f1": 0.95, "clean_flagged": 0.01, "retrained_asr": 0.05}


def run_case(name: str, seed: int) -> dict:
    """All measurements of one case; cached as JSON so the report can be rebuilt without rerunning."""
    result_file = WORK / "results" / f"{name}.json"
    attack, rate = CASES[name]
    params = dataclasses.asdict(make_attack(attack))  # the attack's defaults: what the report measures
    if result_file.exists():
        result = json.loads(result_file.read_text())
        if result.get("attack_params") != params:
            raise SystemExit(f"{result_file} was measured with {attack} parameters {result.get('attack_params')}, "
                             f"the defaults are now {params}: {STALE.format(name=name)}")
        return result
    # badnet-10 is the shipped demo itself: same recipe, no need to train it twice
    splits = DEMO_SPLITS if name == "badnet-10" else WORK / "data" / name
    if splits != DEMO_SPLITS:  # (build_demo.py makes the demo's data with the same defaults)
        stamp = splits / "attack.json"  # the data, and all trained on it, belongs to these parameters
        if not splits.exists():
            make_synthetic_splits(splits, n_train=2000, n_test=200, attack=attack, poison_rate=rate, seed=seed)
            stamp.write_text(json.dumps(params))
        made_with = json.loads(stamp.read_text()) if stamp.exists() else "unknown (no attack.json)"
        if made_with != params:
            raise SystemExit(f"{splits} was made with {attack} parameters {made_with}, the defaults are "
                             f"now {params}: {STALE.format(name=name)}")
    model = DEMO_MODEL if name == "badnet-10" else WORK / "models" / name
    started = time.time()
    if not model.exists():
        finetune(load_dataset(splits / "train" / "data.jsonl"), model, FinetuneRecipe())
    result = {"case": name, "attack": attack, "attack_params": params, "poison_rate": rate,
              "finetune_s": round(time.time() - started)}
    result["model"] = model_quality(model, splits)
    started = time.time()
    scanned = scan(model, splits / "train" / "data.jsonl", WORK / "runs" / name, show_progress=False)
    result["scan_s"] = round(time.time() - started)
    result["metrics"] = scanned.metrics
    result["selected_heads"] = [list(h) for h in scanned.tcap.profiler_.selected_heads_]
    if name in RETRAIN and result["model"].get("asr", 0) >= 0.5:  # no backdoor learnt: nothing to remove
        table = scanned.samples
        keep = set(table.loc[~table["flagged"].fillna(False).astype(bool), "id"])
        dataset = load_dataset(splits / "train" / "data.jsonl")
        # named by what was removed, so a changed detector never reuses a stale retraining
        removed = hashlib.sha256(" ".join(sorted(s.id for s in dataset if s.id not in keep)).encode()).hexdigest()[:12]
        cleaned = WORK / "cleaned" / f"{name}-{removed}" / "data.jsonl"
        if not cleaned.exists():
            write_dataset([s for s in dataset if s.id in keep], cleaned)
        retrained = WORK / "models" / f"{name}-retrained-{removed}"
        if not retrained.exists():
            finetune(load_dataset(cleaned), retrained, FinetuneRecipe())
        result["retrained"] = model_quality(retrained, splits) | {"removed": len(dataset) - len(keep)}
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=1))
    return result


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _median(results: list[dict], key: str) -> int:
    values = sorted(r[key] for r in results if r.get(key))
    return values[len(values) // 2] if values else 0


def _minutes(results: list[dict]) -> str:
    return f"{_median(results, 'finetune_s') / 60:.1f}"


def render(results: list[dict]) -> str:
    lines = [
        "# Detection report",
        "",
        "Produced by `python scripts/detection_report.py` (all cases; each case's numbers are cached in",
        "`runs/report/results/`). Every case: 2000 training samples of the synthetic shapes dataset,",
        "the embedded LLaVA trained on them with the shipped recipe, 200 clean and 200 triggered",
        "test samples. Detectors run with their default parameters; ground truth is used only to score.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}. Training one model took {_minutes(results)} minutes there (median; about 10",
        "alone, more while other work shared the 2 cores).",
        "",
        f"Attacks, with the defaults of `tcap-viz make-data` (target {DEFAULT_TARGET!r}): "
        + "; ".join(sorted({f"{r['attack']} {json.dumps(r['attack_params'])}" for r in results if r["attack"] != "none"}))
        + ".",
        "",
        "## Detection (percent)",
        "",
        "| case | poisoned | model clean acc | model ASR | TCAP P | TCAP R | TCAP F1 | BYE P | BYE R | BYE F1 | TCAP flagged |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t, b, q = r["metrics"]["tcap"], r["metrics"]["baseline"], r["model"]
        lines.append(f"| {r['case']} | {t['n_true']} | {_pct(q['clean_accuracy'])} | {_pct(q.get('asr'))} | "
                     f"{_pct(t['precision'])} | {_pct(t['recall'])} | {_pct(t['f1'])} | {_pct(b['precision'])} | "
                     f"{_pct(b['recall'])} | {_pct(b['f1'])} | {t['n_flagged']} ({_pct(t['flagged_fraction'])}) |")
    retrained = [r for r in results if "retrained" in r]
    if retrained:
        lines += ["", "## Retrained on the cleaned data (flagged samples removed)", "",
                  "| case | removed | clean acc before | clean acc after | ASR before | ASR after |", "|---|---|---|---|---|---|"]
        for r in retrained:
            lines.append(f"| {r['case']} | {r['retrained']['removed']} | {_pct(r['model']['clean_accuracy'])} | "
                         f"{_pct(r['retrained']['clean_accuracy'])} | {_pct(r['model'].get('asr'))} | "
                         f"{_pct(r['retrained'].get('asr'))} |")
    skipped = [r["case"] for r in results if r["case"] in RETRAIN and "retrained" not in r]
    if skipped:
        lines += ["", f"Not retrained: {', '.join(skipped)}: their models learnt no backdoor (ASR under 50%), "
                  "so there is no attack for a cleaned dataset to remove."]
    lines += ["", "## Against the targets", ""] + [f"- {line}" for line in target_notes(results)]
    missing = [name for name in ORDER if name not in {r["case"] for r in results}]
    if missing:
        lines += ["", "## Not measured yet", "", f"{', '.join(missing)}: not run yet (each needs one training of "
                  f"about {_minutes(results)} minutes); `python scripts/detection_report.py --cases NAME` adds one."]
    return "\n".join(lines) + "\n"


def target_notes(results: list[dict]) -> list[str]:
    notes = []
    for r in results:
        t = r["metrics"]["tcap"]
        if r["attack"] == "none":
            ok = t["flagged_fraction"] <= TARGETS["clean_flagged"]
            notes.append(f"clean data: {_pct(t['flagged_fraction'])}% flagged, target <= 1%: {'met' if ok else 'MISSED'}"
                         + ("" if ok else " (why: docs/METHOD_CHOICES.md, 'Known limitation')"))
        else:
            ok = t["f1"] >= TARGETS["f1"]
            notes.append(f"{r['case']}: TCAP F1 {_pct(t['f1'])}, target >= 95: {'met' if ok else 'MISSED'}"
                         + ("" if ok else " (why: docs/METHOD_CHOICES.md, 'Known limitation')"
                            if r["model"].get("asr", 0) >= 0.5 else
                            f" (the model learnt the backdoor poorly: ASR {_pct(r['model'].get('asr'))}%)"))
        if "retrained" in r:
            ok = r["retrained"]["asr"] < TARGETS["retrained_asr"]
            notes.append(f"{r['case']} retrained: ASR {_pct(r['retrained']['asr'])}%, target < 5%: {'met' if ok else 'MISSED'}"
                         + ("" if ok else f" (the {r['retrained']['removed']} removed samples held "
                                          f"{t['tp']} of the {t['n_true']} poisoned)"))
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", default=list(ORDER), choices=list(CASES))
    args = parser.parse_args()
    for name in args.cases:
        print(f"== {name}", flush=True)
        run_case(name, seed=list(CASES).index(name) + 1)
    done = [json.loads((WORK / "results" / f"{n}.json").read_text())
            for n in ORDER if (WORK / "results" / f"{n}.json").exists()]
    REPORT.write_text(render(done))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
