"""Measure detection on the fine-tuning-service testbed, the way the paper does; write docs/DETECTION.md.

    python scripts/detection_report.py                             # every case, 3 seeds (hours on 2 cores)
    python scripts/detection_report.py --device cuda --workers 6   # the same on a GPU machine
    python scripts/detection_report.py --cases badnet-10 clean --seeds 1
    python scripts/detection_report.py --render                    # only rewrite the report from cached results

A case is an attack variant at a poison rate (or clean data) with one seed. Each: `make-data`
(2000 training samples, 200 clean and 200 triggered test samples, the attack's defaults), a
customer fine-tune of the shipped base with the default recipe of `--finetune` (LoRA unless said),
its clean accuracy and attack success rate (ASR), a scan (TCAP and the BYE baseline with default
parameters, float32; the base model's plausibility vote included, since the service knows the
base), the detectors scored against ground truth they never saw, and a retraining
from the base without the flagged samples (its clean accuracy and ASR).
Every step's output stays under runs/report/ and is reused, so an interrupted report resumes; a
case measured with other settings (attack parameters, recipe, base model) is refused, not mixed in.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.data import DEFAULT_TARGET, load_dataset, make_synthetic_splits, write_dataset  # noqa: E402
from tcap_viz.data.attacks import make_attack  # noqa: E402
from tcap_viz.demo import BASE_MODEL  # noqa: E402

WORK = ROOT / "runs" / "report"
REPORT = ROOT / "docs" / "DETECTION.md"
# name -> make-data settings; badnet_blue: a backdoor whose target is an ordinary answer of the task
VARIANTS = {
    "badnet": {"attack": "badnet"},
    "blend": {"attack": "blend"},
    "sig": {"attack": "sig"},
    "wanet": {"attack": "wanet"},
    "ftrojan": {"attack": "ftrojan"},
    "text_prefix": {"attack": "text_prefix"},
    "text_word": {"attack": "text_word"},
    "badnet_blue": {"attack": "badnet", "target": "blue", "poison_question_type": "colour"},
}
RATES = (10, 5)
CASES = [f"{v}-{r}" for v in VARIANTS for r in RATES] + ["clean"]
# what the scan's detection is; a cached case of another kind is refused, not mixed in
DETECTION = "TCAP with the base model's plausibility vote (issue 12, first lever)"
TARGETS = {"f1": 0.95, "clean_flagged": 0.01, "retrained_asr": 0.05, "clean_accuracy": 0.9, "asr": 0.9}


def customer_recipe(finetune_kind: str, steps: int | None, seed: int):
    """The service's default recipe of that kind (`steps`: another length, for an earlier report)."""
    from tcap_viz.model.finetune import FULL_RECIPE, LORA_RECIPE

    return (LORA_RECIPE if finetune_kind == "lora" else FULL_RECIPE).with_overrides(steps=steps, seed=seed)


def case_settings(case: str, seed: int, finetune_kind: str, steps: int | None = None) -> dict:
    """Everything that decides a case's numbers; a cached result must match it exactly."""
    variant, _, rate = case.rpartition("-") if case != "clean" else ("clean", "", "0")
    settings = dict(VARIANTS.get(variant, {"attack": "none"}))
    settings.setdefault("target", DEFAULT_TARGET)
    settings["attack_params"] = dataclasses.asdict(make_attack(settings["attack"]))
    recipe = customer_recipe(finetune_kind, steps, seed)
    weights = BASE_MODEL / "model.safetensors"
    settings |= {"detection": DETECTION, "case": case, "variant": variant, "poison_rate": int(rate) / 100, "seed": seed,
                 "finetune": finetune_kind, "recipe": dataclasses.asdict(recipe),
                 "base": hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.exists() else None}
    return json.loads(json.dumps(settings))  # as a cached copy reads back (tuples become lists)


def _device_name(device: str | None) -> str:
    import platform

    import torch

    if (device or "").startswith("cuda") or (device is None and torch.cuda.is_available()):
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def run_case(case: str, seed: int, finetune_kind: str, device: str | None, threads: int | None = None,
             steps: int | None = None) -> dict:
    """All measurements of one case, cached as JSON so the report can be rebuilt without rerunning."""
    import torch

    from tcap_viz.model.adapter import MLLMAdapter
    from tcap_viz.model.evaluate import model_quality
    from tcap_viz.model.finetune import finetune
    from tcap_viz.pipeline import ScanConfig, scan

    if threads:
        torch.set_num_threads(threads)
    settings = case_settings(case, seed, finetune_kind, steps)
    recipe = customer_recipe(finetune_kind, steps, seed)
    name = f"{case}-s{seed}-{finetune_kind}-{recipe.schedule.steps}"
    result_file = WORK / "results" / f"{name}.json"
    if result_file.exists():
        result = json.loads(result_file.read_text())
        if result["settings"] != settings:
            raise SystemExit(f"{result_file} was measured with other settings than today's defaults; delete "
                             f"runs/report/*/{name}* to measure it again")
        return result
    splits = WORK / "data" / f"{case}-s{seed}"
    stamp = splits / "settings.json"
    data_settings = {k: settings[k] for k in ("attack", "attack_params", "target", "poison_rate", "seed")} \
        | {"poison_question_type": settings.get("poison_question_type")}
    if not splits.exists():
        make_synthetic_splits(splits, n_train=2000, n_test=200, attack=settings["attack"],
                              poison_rate=settings["poison_rate"], target=settings["target"], seed=seed,
                              poison_question_type=settings.get("poison_question_type"))
        stamp.write_text(json.dumps(data_settings))
    if json.loads(stamp.read_text()) != data_settings:
        raise SystemExit(f"{splits} was made with other settings; delete it and the case's models and runs")
    train = load_dataset(splits / "train" / "data.jsonl")

    def trained(data, out: Path) -> tuple[Path, float]:
        started = time.time()
        if not out.exists():
            finetune(data, out, recipe, base=BASE_MODEL, device=device, show_progress=False)
        return out, time.time() - started

    def loaded(out: Path) -> MLLMAdapter:
        if finetune_kind == "lora":
            return MLLMAdapter.load(BASE_MODEL, device=device, dtype="float32", adapter=out)
        return MLLMAdapter.load(out, device=device, dtype="float32")

    model, seconds = trained(train, WORK / "models" / name)
    result = {"settings": settings, "machine": _device_name(device), "finetune_s": round(seconds, 1),
              "model": model_quality(loaded(model), splits)}
    # the service knows the base either way: with an adapter the scan finds it, a full fine-tune names it
    config = ScanConfig(device=device, dtype="float32", adapter=str(model) if finetune_kind == "lora" else None,
                        base_model=None if finetune_kind == "lora" else str(BASE_MODEL))
    started = time.time()
    scanned = scan(BASE_MODEL if finetune_kind == "lora" else model, splits / "train" / "data.jsonl",
                   WORK / "runs" / name, config, show_progress=False)
    result["scan_s"] = round(time.time() - started, 1)
    result["metrics"] = scanned.metrics
    result["selected_heads"] = [list(h) for h in scanned.tcap.profiler_.selected_heads_]
    if settings["attack"] != "none":
        table = scanned.samples
        keep = set(table.loc[~table["flagged"].fillna(False).astype(bool), "id"])
        # named by what was removed, so a changed detector never reuses a stale retraining
        removed = hashlib.sha256(" ".join(sorted(s.id for s in train if s.id not in keep)).encode()).hexdigest()[:12]
        cleaned = WORK / "cleaned" / f"{name}-{removed}" / "data.jsonl"
        if not cleaned.exists():
            write_dataset([s for s in train if s.id in keep], cleaned)
        retrained, _ = trained(load_dataset(cleaned), WORK / "models" / f"{name}-retrained-{removed}")
        result["retrained"] = model_quality(loaded(retrained), splits) | {"removed": len(train) - len(keep)}
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=1))
    return result


def _stat(values: list[float]) -> str:
    """Mean and spread (standard deviation over seeds) in percent; an undefined value (BYE's AUROC
    when it found no sensitive layer) is left out, and the count of defined ones is shown."""
    given = [v for v in values if v is not None]
    values = [v for v in given if not math.isnan(v)]
    if not values:
        return "-"
    mean = 100 * statistics.fmean(values)
    text = f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}"
    return text if len(values) == len(given) else f"{text} ({len(values)} of {len(given)})"


def render(results: list[dict], finetune_kind: str, steps: int) -> str:
    schedule = results[0]["settings"]["recipe"]["schedule"] if results else {}
    command = f"python scripts/detection_report.py --finetune {finetune_kind} --steps {steps}"
    by_case: dict[str, list[dict]] = {}
    for r in results:
        by_case.setdefault(r["settings"]["case"], []).append(r)
    machines = sorted({r["machine"] for r in results})
    seconds = sorted(r["finetune_s"] for r in results)
    lines = [
        "# Detection report: the fine-tuning-service testbed",
        "",
        f"Produced by `{command}` (every case and seed; each one's numbers are cached in",
        "`runs/report/results/`). A case: 2000 training samples of the customer shapes task, 200 clean and 200",
        f"triggered test samples; a {finetune_kind} fine-tune of the shipped base model (`sample_data/base_model`) "
        f"with the recipe of {schedule.get('steps')} steps, batch {schedule.get('batch_size')}, learning rate "
        f"{schedule.get('learning_rate')}; the scan in float32 with every detector at its defaults. Ground truth "
        "is used only to score.",
        f"Machines: {'; '.join(machines) or '-'}. Fine-tune time per model there (16 cases sharing the machine): median "
        f"{seconds[len(seconds) // 2] if seconds else 0:.0f} s.",
        "Numbers are mean ± standard deviation over the seeds, in percent. BYE's AUROC is undefined where it",
        "found no sensitive layer (it then has no score); \"(1 of 3)\" counts the seeds where it had one.",
        "Why BYE scores what it scores on this testbed: [`BYE_FAITHFULNESS.md`](BYE_FAITHFULNESS.md).",
        "",
        "Attacks, with the defaults of `tcap-viz make-data`:",
        "",
    ]
    attacks = {}
    for r in results:
        s = r["settings"]
        if s["attack"] != "none":
            attacks[s["variant"]] = (f"{s['attack']} {json.dumps(s['attack_params'])}, target {s['target']!r}"
                                     + (f", only {s['poison_question_type']} questions" if s.get("poison_question_type")
                                        else ""))
    lines += [f"- {v}: {text}" for v, text in attacks.items()] + ["", "## Detection", "",
              "| case | seeds | poisoned | model clean acc | model ASR | TCAP P | TCAP R | TCAP F1 | BYE P | BYE R | "
              "BYE F1 | BYE AUROC | TCAP flagged |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in CASES:
        rs = by_case.get(case)
        if not rs:
            continue
        t = [r["metrics"]["tcap"] for r in rs]
        b = [r["metrics"]["baseline"] for r in rs]
        q = [r["model"] for r in rs]
        lines.append(
            f"| {case} | {len(rs)} | {rs[0]['metrics']['tcap']['n_true']} | {_stat([x['clean_accuracy'] for x in q])} | "
            f"{_stat([x.get('asr') for x in q])} | {_stat([x['precision'] for x in t])} | {_stat([x['recall'] for x in t])} | "
            f"{_stat([x['f1'] for x in t])} | {_stat([x['precision'] for x in b])} | {_stat([x['recall'] for x in b])} | "
            f"{_stat([x['f1'] for x in b])} | {_stat([x['auroc'] for x in b])} | "
            f"{statistics.fmean(x['n_flagged'] for x in t):.0f} ({_stat([x['flagged_fraction'] for x in t])}) |")
    retrained = [c for c in CASES if any("retrained" in r for r in by_case.get(c, []))]
    if retrained:
        lines += ["", "## Retrained from the base without the flagged samples", "",
                  "| case | removed (mean) | clean acc before | clean acc after | ASR before | ASR after |",
                  "|---|---|---|---|---|---|"]
        for case in retrained:
            rs = [r for r in by_case[case] if "retrained" in r]
            lines.append(f"| {case} | {statistics.fmean(r['retrained']['removed'] for r in rs):.0f} | "
                         f"{_stat([r['model']['clean_accuracy'] for r in rs])} | "
                         f"{_stat([r['retrained']['clean_accuracy'] for r in rs])} | "
                         f"{_stat([r['model'].get('asr') for r in rs])} | {_stat([r['retrained'].get('asr') for r in rs])} |")
    lines += ["", "## Against the targets", ""] + [f"- {line}" for line in target_notes(by_case)]
    missing = [c for c in CASES if c not in by_case]
    if missing:
        lines += ["", "## Not measured yet", "", ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def target_notes(by_case: dict[str, list[dict]]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    notes = []
    for case in CASES:
        rs = by_case.get(case)
        if not rs:
            continue
        t = statistics.fmean(r["metrics"]["tcap"]["f1"] if case != "clean" else r["metrics"]["tcap"]["flagged_fraction"]
                             for r in rs)
        ca = statistics.fmean(r["model"]["clean_accuracy"] for r in rs)
        if case == "clean":
            notes.append(f"clean: model clean accuracy {100 * ca:.1f} (>= 90: {verdict(ca >= TARGETS['clean_accuracy'])}); "
                         f"{100 * t:.1f}% flagged (<= 1%: {verdict(t <= TARGETS['clean_flagged'])})")
            continue
        asr = statistics.fmean(r["model"]["asr"] for r in rs)
        line = (f"{case}: model clean accuracy {100 * ca:.1f} (>= 90: {verdict(ca >= TARGETS['clean_accuracy'])}), "
                f"ASR {100 * asr:.1f} (>= 90: {verdict(asr >= TARGETS['asr'])}); TCAP F1 {100 * t:.1f} "
                f"(>= 95: {verdict(t >= TARGETS['f1'])})")
        after = [r["retrained"]["asr"] for r in rs if "retrained" in r]
        if after:
            line += f"; retrained ASR {100 * statistics.fmean(after):.1f} (< 5: {verdict(statistics.fmean(after) < TARGETS['retrained_asr'])})"
        notes.append(line)
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--finetune", default="lora", choices=["lora", "full"])
    parser.add_argument("--steps", type=int, default=None,
                        help="fine-tune steps (default: the recipe's own, LORA_RECIPE or FULL_RECIPE)")
    parser.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when available)")
    parser.add_argument("--workers", type=int, default=1, help="cases run at once (on a GPU machine with many cores)")
    parser.add_argument("--render", action="store_true", help="only rewrite the report from cached results")
    args = parser.parse_args()
    if not args.render:
        jobs = [(case, seed) for seed in args.seeds for case in args.cases]
        if args.workers == 1:
            for case, seed in jobs:
                print(f"== {case} seed {seed}", flush=True)
                run_case(case, seed, args.finetune, args.device, steps=args.steps)
        else:
            threads = max(1, (os.cpu_count() or 2) // args.workers)
            with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(run_case, case, seed, args.finetune, args.device, threads, args.steps): (case, seed)
                           for case, seed in jobs}
                for future, (case, seed) in futures.items():
                    future.result()
                    print(f"== {case} seed {seed} done", flush=True)
    steps = customer_recipe(args.finetune, args.steps, 0).schedule.steps
    results = [json.loads(p.read_text()) for p in sorted((WORK / "results").glob(f"*-{args.finetune}-{steps}.json"))]
    if not results:
        raise SystemExit(f"no cached results for {args.finetune} fine-tunes of {steps} steps under {WORK / 'results'}; "
                         f"{REPORT} is left as it is")
    REPORT.write_text(render(results, args.finetune, steps))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
