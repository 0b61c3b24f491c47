"""Data, LoRA fine-tune, model quality and a default scan for each case of `scripts/foreign_data.py`.

A case is ATTACK-RATE-sSEED (RATE in percent; ``none-0-s1`` is clean). Each step is skipped when its
output exists, so an interrupted check resumes; one JSON per case goes to --results:

    python scripts/foreign_check.py --cases none-0-s1 patch_word-5-s1 noise_blend-10-s1 --work runs/foreign \
        --results docs/results/foreign
    python scripts/foreign_check.py --results docs/results/foreign --diagnose --render docs/FOREIGN_RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import foreign_data

from tcap_viz.anatomy.confirm import confirmation_summary
from tcap_viz.benchmark.run_case import machine
from tcap_viz.data import load_dataset
from tcap_viz.demo import BASE_MODEL
from tcap_viz.detection.response_classes import dominant_response
from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.evaluate import model_quality
from tcap_viz.model.finetune import LORA_RECIPE, finetune
from tcap_viz.pipeline import ANATOMY_VERSION, ScanConfig, scan


def run_case(case: str, work: Path, results: Path) -> dict:
    attack, rate, seed = case.rsplit("-", 2)
    data, model, run = work / "data" / case, work / "models" / case, work / "runs" / case
    if not data.exists():
        foreign_data.make(attack, int(rate) / 100, int(seed[1:]), 2000, 200, data)
    train = data / "train" / "data.jsonl"
    if not model.exists():
        finetune(load_dataset(train), model, LORA_RECIPE.with_overrides(seed=int(seed[1:])))
    recipe = json.loads((model / "tcap_recipe.json").read_text())
    quality = model_quality(MLLMAdapter.load(BASE_MODEL, adapter=model), data)
    started = time.time()
    result = scan(BASE_MODEL, train, run, ScanConfig(adapter=str(model)))
    table = result.samples
    flagged = table["flagged"].fillna(False).astype(bool).to_numpy()
    top = dominant_response(table["response"], flagged)
    groups = result.confirmation or []
    record = {
        "case": case, "settings": json.loads((data / "settings.json").read_text()),
        "command": "python scripts/foreign_check.py --cases " + case,
        "machine": machine(None), "anatomy_version": ANATOMY_VERSION, "finetune_s": recipe["seconds"], "model": quality,
        "scan_s": round(time.time() - started, 1), "metrics": result.metrics,
        "flagged": int(flagged.sum()), "implausible": int(table["implausible"].fillna(False).astype(bool).sum()),
        "dominant": None if top is None else {"response": top[0], "share": top[1], "outside": top[2]},
        "selected_heads": [[int(l), int(h)] for l, h in result.tcap.profiler_.selected_heads_],
        "vote_used": bool(result.tcap.vote_used_),
        "groups": [{k: g.get(k) for k in ("source", "response", "size", "confirmed", "consistency")}
                   for g in groups],
        "summary": confirmation_summary(groups) if groups else "",
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{case}.json").write_text(json.dumps(record, indent=1))
    return record


def diagnose(case: str, work: Path) -> dict:
    """What the docs quote about why a case was found or missed, from the run folder and the data (ground truth
    scores only): the plausibility vote's centre and spread and the target's mean z; the best single head's AUROC
    over all samples and within the target answer; how many samples TCAP itself flagged of the poisoned type."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from tcap_viz.detection import PlausibilityVote
    from tcap_viz.detection.tcap import head_statistic

    run, data = work / "runs" / case, work / "data" / case
    settings = json.loads((data / "settings.json").read_text())
    profiles = np.load(run / "profiles.npz", allow_pickle=False)
    records = {r["id"]: r for r in map(json.loads, (data / "train" / "data.jsonl").read_text().splitlines())}
    ids = [str(i) for i in profiles["ids"]]
    truth = np.array([records[i]["poisoned"] for i in ids])
    answers = np.array([records[i]["conversations"][1]["value"] for i in ids])
    vote = PlausibilityVote().fit(profiles["base_logprob"])
    out = {"vote_median": vote.median_, "vote_scale": vote.scale_}
    table = pd.read_csv(run / "samples.csv", dtype={"id": str})
    tcap = table["tcap_posterior"].fillna(0).to_numpy() > 0.5 if "tcap_posterior" in table else table["flagged"]
    types = table["id"].map(lambda i: records[i]["question_type"])
    out["tcap_flagged_by_type"] = {str(k): int(v) for k, v in types[tcap].value_counts().items()}
    if truth.any():
        target = answers == settings["target"]
        out["target_z"] = float(np.nanmean(vote.z_[target]))
        shares = head_statistic(profiles["profiles"])
        flat = shares.reshape(len(ids), -1)

        def best(mask):
            if len(set(truth[mask])) < 2:
                return None
            auc = np.array([roc_auc_score(truth[mask], column) for column in flat[mask].T])
            return float(np.max(np.maximum(auc, 1 - auc)))

        out["best_head_auroc"], out["best_head_auroc_within_target"] = best(np.ones(len(ids), bool)), best(target)
    return out


def _percent(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def render(results: Path) -> str:
    """One row per case JSON under ``results``: the model, what the default scan flagged, and how."""
    header = ("| case | model clean acc | model ASR | flagged | precision | recall | F1 | vote used | flagged by | "
              "BYE F1 | Act. Clustering F1 | Spectral Sig. F1 | fine-tune s | scan s |")
    rows = [header, "|---" * 14 + "|"]
    for path in sorted(results.glob("*.json")):
        r = json.loads(path.read_text())
        m = (r["metrics"] or {}).get("tcap", {})
        attack = r["settings"]["attack"] != "none"
        finder = next((g["source"] for g in r["groups"] if g["confirmed"]), "EM" if r["flagged"] else "-")
        rows.append(f"| {r['case']} | {_percent(r['model']['clean_accuracy'])} | {_percent(r['model'].get('asr'))} | "
                    f"{r['flagged']} | {_percent(m.get('precision')) if attack else '-'} | "
                    f"{_percent(m.get('recall')) if attack else '-'} | {_percent(m.get('f1')) if attack else '-'} | "
                    f"{'yes' if r['vote_used'] else 'no'} | {finder} | "
                    + "".join(f"{_percent(r['metrics'][name]['f1']) if attack else '-'} | "
                              for name in ("baseline", "activation_clustering", "spectral_signatures"))
                    + f"{r['finetune_s']:.0f} | {r['scan_s']:.0f} |")
    machines = sorted({json.loads(p.read_text())["machine"] for p in results.glob("*.json")})
    return ("Made by `python scripts/foreign_check.py --results " + str(results) + " --render OUT` from the case "
            "JSONs (`--cases` makes them). Machines: " + "; ".join(machines) + ".\n\n" + "\n".join(rows) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=[])
    parser.add_argument("--work", type=Path, default=Path("runs/foreign"))
    parser.add_argument("--results", type=Path, default=Path("docs/results/foreign"))
    parser.add_argument("--render", type=Path, help="write the results table here (markdown)")
    parser.add_argument("--diagnose", action="store_true",
                        help="add each result's diagnostics (diagnose) from its run folder under --work")
    args = parser.parse_args(argv)
    for case in args.cases:
        r = run_case(case, args.work, args.results)
        m = (r["metrics"] or {}).get("tcap", {})
        print(f"{case}: acc {r['model']['clean_accuracy']:.3f} asr {r['model'].get('asr', float('nan')):.3f} "
              f"flagged {r['flagged']} (implausible {r['implausible']}) P {m.get('precision', 0):.2f} "
              f"R {m.get('recall', 0):.2f} F1 {m.get('f1', 0):.2f} dominant {r['dominant']}", flush=True)
    if args.diagnose:
        for path in sorted(args.results.glob("*.json")):
            record = json.loads(path.read_text())
            record["diagnostics"] = diagnose(record["case"], args.work)
            path.write_text(json.dumps(record, indent=1))
    if args.render:
        args.render.write_text(render(args.results))


if __name__ == "__main__":
    main()
